// The CPU backend's table: every op, fp32, the reference the other backends are tested against.
#include "backends/backend.h"
#include "backends/cpu/cpu_ops.h"

namespace sdxl {

const Backend& cpu_backend() {
    static const Backend table = [] {
        Backend b{"cpu"};
        b.linear = &cpu::linear;
        b.matmul = &cpu::matmul;
        b.conv2d = &cpu::conv2d;
        b.upsample_nearest = &cpu::upsample_nearest;
        b.group_norm = &cpu::group_norm;
        b.group_norm_silu = &cpu::group_norm_silu;
        b.layer_norm = &cpu::layer_norm;
        b.silu = &cpu::silu;
        b.gelu = &cpu::gelu;
        b.gelu_tanh = &cpu::gelu_tanh;
        b.quick_gelu = &cpu::quick_gelu;
        b.geglu = &cpu::geglu;
        b.softmax = &cpu::softmax;
        b.attention = &cpu::attention;
        b.add = &cpu::add;
        b.sub = &cpu::sub;
        b.mul = &cpu::mul;
        b.scale = &cpu::scale;
        b.concat = &cpu::concat;
        b.timestep_embedding = &cpu::timestep_embedding;
        return b;
    }();
    return table;
}

}  // namespace sdxl
