package io.sdxl4j.ops;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.function.Supplier;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.javacpp.ShortPointer;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The independent oracle: LibTorch (CPU) through JavaCPP, called with torch's own functional ops
 * (torch::linear, torch::conv2d, torch::group_norm, torch::scaled_dot_product_attention, ...), exactly as
 * diffusers calls them. Every method takes and returns {@link HostArray}s; the torch tensors it makes live in
 * a {@link PointerScope} that frees them when the method returns.
 *
 * <p>The computing ops (all but the exact copies and the single-rounding arithmetic) take a
 * {@link Precision}: {@code F64} runs torch on the same float32 inputs widened to float64, which is the exact
 * answer for every purpose here (its own error is ~1e-16) and uses other kernels than ours (dgemm, not the
 * OpenBLAS sgemm that both torch-float32 and we call), so a bound against it measures our rounding alone;
 * {@code F32} is what diffusers computes, printed next to ours for comparison (torch's vectorised erf and its
 * float32 conv are themselves off by more than we are).
 */
final class TorchOracle {
    private TorchOracle() {}

    static {
        // BUILD-FACTS: with a system libtorch installed, the first run on an empty JavaCPP cache crashes in
        // Loader.load() unless the resources are cached before the first torch class initialises.
        try {
            Loader.cacheResources("/org/bytedeco/pytorch/" + Loader.getPlatform() + "/");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot extract LibTorch from its jar", e);
        }
    }

    /** The dtype torch computes in. */
    enum Precision {
        F32, F64
    }

    private static <T> T scoped(Supplier<T> body) {
        try (PointerScope scope = new PointerScope()) {
            return body.get();
        }
    }

    // ------------------------------------------------------------------------------------------ conversions

    static Tensor tt(HostArray a) {
        FloatPointer p = new FloatPointer(a.data());
        return torch.from_blob(p, a.shape(), new TensorOptions(ScalarType.Float)).clone();
    }

    static TensorOptional opt(HostArray a) {
        return a == null ? new TensorOptional() : new TensorOptional(tt(a));
    }

    static Tensor tt(Precision p, HostArray a) {
        Tensor t = tt(a);
        return p == Precision.F64 ? t.to(ScalarType.Double) : t;
    }

    static TensorOptional opt(Precision p, HostArray a) {
        return a == null ? new TensorOptional() : new TensorOptional(tt(p, a));
    }

    static HostArray host(Tensor t) {
        Tensor c = t.to(ScalarType.Float).contiguous();
        long[] shape = new long[(int) c.dim()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = c.size(i);
        }
        float[] out = new float[HostArray.numel(shape)];
        if (out.length > 0) {
            c.data_ptr_float().get(out);
        }
        return new HostArray(out, shape);
    }

    // -------------------------------------------------------------------------------------------- the ops

    static HostArray linear(Precision p, HostArray x, HostArray w, HostArray b) {
        return scoped(() -> host(torch.linear(tt(p, x), tt(p, w), opt(p, b))));
    }

    static HostArray matmul(Precision p, HostArray a, HostArray b) {
        return scoped(() -> host(torch.matmul(tt(p, a), tt(p, b))));
    }

    static HostArray conv2d(Precision p, HostArray x, HostArray w, HostArray b, int stride, int padding) {
        return scoped(() -> host(torch.conv2d(tt(p, x), tt(p, w), opt(p, b), new long[] {stride, stride},
                new long[] {padding, padding}, new long[] {1, 1}, 1)));
    }

    /** F.interpolate(x, size=(outH, outW), mode="nearest"). */
    static HostArray upsampleNearest(HostArray x, long outH, long outW) {
        return scoped(() -> host(torch.upsample_nearest2d(tt(x), new long[] {outH, outW},
                new DoubleOptional(), new DoubleOptional())));
    }

    /** F.interpolate(x, scale_factor=2.0, mode="nearest"), as diffusers' Upsample2D calls it. */
    static HostArray upsampleNearest2x(HostArray x) {
        long[] s = x.shape();
        return scoped(() -> host(torch.upsample_nearest2d(tt(x), new long[] {2 * s[2], 2 * s[3]},
                new DoubleOptional(2.0), new DoubleOptional(2.0))));
    }

    static HostArray groupNorm(Precision p, HostArray x, int groups, HostArray gamma, HostArray beta, double eps) {
        return scoped(() -> host(torch.group_norm(tt(p, x), groups, opt(p, gamma), opt(p, beta), eps, false)));
    }

    static HostArray layerNorm(Precision p, HostArray x, HostArray gamma, HostArray beta, double eps) {
        long d = x.shape()[x.shape().length - 1];
        return scoped(() -> host(torch.layer_norm(tt(p, x), new long[] {d}, opt(p, gamma), opt(p, beta), eps, false)));
    }

    static HostArray silu(Precision p, HostArray x) {
        return scoped(() -> host(torch.silu(tt(p, x))));
    }

    static HostArray gelu(Precision p, HostArray x) {
        return scoped(() -> host(torch.gelu(tt(p, x), "none")));
    }

    static HostArray geluTanh(Precision p, HostArray x) {
        return scoped(() -> host(torch.gelu(tt(p, x), "tanh")));
    }

    /** transformers' QuickGELUActivation: x * torch.sigmoid(1.702 * x) (1.702 becomes 1.702f on float32). */
    static HostArray quickGelu(Precision p, HostArray x) {
        return scoped(() -> {
            Tensor t = tt(p, x);
            return host(t.mul(torch.sigmoid(t.mul(new Scalar(1.702)))));
        });
    }

    /** diffusers GEGLU after its projection: hidden, gate = x.chunk(2, dim=-1); hidden * F.gelu(gate). */
    static HostArray geglu(Precision p, HostArray x) {
        return scoped(() -> {
            TensorVector parts = tt(p, x).chunk(2, -1);
            return host(parts.get(0).mul(torch.gelu(parts.get(1), "none")));
        });
    }

    static HostArray softmax(Precision p, HostArray x) {
        return scoped(() -> host(torch.softmax(tt(p, x), -1)));
    }

    /**
     * F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal, scale). {@code additiveMask} is null or
     * broadcastable to [B, H, Lq, Lk] (0 = attend, -inf = masked); torch refuses a mask together with
     * is_causal, so callers fold causality into the mask when they need both.
     */
    static HostArray attention(Precision p, HostArray q, HostArray k, HostArray v, HostArray additiveMask,
                               boolean causal, double scale) {
        return scoped(() -> host(torch.scaled_dot_product_attention(tt(p, q), tt(p, k), tt(p, v),
                opt(p, additiveMask), 0.0, causal, new DoubleOptional(scale), false)));
    }

    static HostArray add(HostArray a, HostArray b) {
        return scoped(() -> host(tt(a).add(tt(b))));
    }

    static HostArray sub(HostArray a, HostArray b) {
        return scoped(() -> host(tt(a).sub(tt(b))));
    }

    static HostArray mul(HostArray a, HostArray b) {
        return scoped(() -> host(tt(a).mul(tt(b))));
    }

    /** alpha * x + beta, as torch evaluates the Python expression (a multiply, then an add). */
    static HostArray scale(HostArray x, float alpha, float beta) {
        return scoped(() -> host(tt(x).mul(new Scalar(alpha)).add(new Scalar(beta))));
    }

    static HostArray concat(List<HostArray> parts, int dim) {
        return scoped(() -> {
            TensorVector v = new TensorVector();
            for (HostArray p : parts) {
                v.push_back(tt(p));
            }
            return host(torch.cat(v, dim));
        });
    }

    static HostArray narrow(HostArray x, int dim, long start, long length) {
        return scoped(() -> host(tt(x).narrow(dim, start, length)));
    }

    /**
     * diffusers.models.embeddings.get_timestep_embedding, transcribed op for op:
     * <pre>
     * half_dim = embedding_dim // 2
     * exponent = -math.log(max_period) * torch.arange(start=0, end=half_dim, dtype=torch.float32)
     * exponent = exponent / (half_dim - downscale_freq_shift)
     * emb = torch.exp(exponent)
     * emb = timesteps[:, None].float() * emb[None, :]
     * emb = scale * emb
     * emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
     * if flip_sin_to_cos: emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
     * if embedding_dim % 2 == 1: emb = torch.nn.functional.pad(emb, (0, 1, 0, 0))
     * </pre>
     */
    static HostArray timestepEmbedding(Precision p, HostArray t, int dim, boolean flipSinToCos,
                                       double downscaleFreqShift, double scale, double maxPeriod) {
        ScalarType dtype = p == Precision.F64 ? ScalarType.Double : ScalarType.Float;
        return scoped(() -> {
            int half = dim / 2;
            long n = t.shape()[0];
            Tensor exponent = torch.arange(new Scalar(0), new Scalar(half), new TensorOptions(dtype))
                    .mul(new Scalar(-Math.log(maxPeriod)));
            exponent = exponent.div(new Scalar(half - downscaleFreqShift));
            Tensor emb = torch.exp(exponent);
            emb = tt(p, t).reshape(n, 1).mul(emb.reshape(1, half));
            emb = emb.mul(new Scalar(scale));
            emb = torch.cat(new TensorVector(torch.sin(emb), torch.cos(emb)), -1);
            if (flipSinToCos) {
                emb = torch.cat(new TensorVector(emb.narrow(1, half, half), emb.narrow(1, 0, half)), -1);
            }
            if (dim % 2 == 1) {
                emb = torch.cat(new TensorVector(emb, torch.zeros(new long[] {n, 1}, new TensorOptions(dtype))), -1);
            }
            return host(emb);
        });
    }

    // ----------------------------------------------------------------------------------- f16 / bf16 bits

    /** x.to(torch.float16) (or bfloat16), as raw bit patterns. */
    static short[] toHalfBits(float[] x, boolean bf16) {
        return scoped(() -> {
            Tensor h = tt(new HostArray(x, new long[] {x.length})).to(bf16 ? ScalarType.BFloat16 : ScalarType.Half)
                    .contiguous();
            short[] out = new short[x.length];
            h.view(ScalarType.Short).data_ptr_short().get(out);
            return out;
        });
    }

    /** The float values of half (or bfloat16) bit patterns: tensor.view(float16).to(torch.float32). */
    static float[] halfBitsToFloat(short[] bits, boolean bf16) {
        return scoped(() -> {
            ShortPointer p = new ShortPointer(bits);
            Tensor s = torch.from_blob(p, new long[] {bits.length}, new TensorOptions(ScalarType.Short)).clone();
            return host(s.view(bf16 ? ScalarType.BFloat16 : ScalarType.Half)).data();
        });
    }
}
