package io.sdxl4j;

import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeTensor;
import io.sdxl4j.nat.NativeTensorList;
import io.sdxl4j.nat.global.sdxl;
import java.util.List;

/**
 * The native core's tensor ops, one static method per op (semantics: native/src/ops/ops.h). Each returns a new
 * tensor the caller must close. Optional tensors (bias, affine parameters, masks) may be {@code null}.
 * Float ops take F32 on the CPU backend; convert other dtypes with {@link Tensor#to(DType)}.
 */
public final class Ops {
    private Ops() {}

    /** The undefined native tensor passed for an absent optional argument (never closed, never mutated). */
    private static final NativeTensor ABSENT;

    static {
        Sdxl4j.load();
        ABSENT = new NativeTensor();
    }

    private static NativeTensor opt(Tensor t) {
        return t == null ? ABSENT : t.handle();
    }

    private static Tensor req(String op, String name, Tensor t) {
        if (t == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, op + ": " + name + " must not be null");
        }
        return t;
    }

    /** y = x w^T + b: x [..., in], w [out, in], b [out] or null. */
    public static Tensor linear(Tensor x, Tensor w, Tensor b) {
        req("linear", "x", x);
        req("linear", "w", w);
        return Native.call(() -> Tensor.wrap(sdxl.linear(x.handle(), w.handle(), opt(b))));
    }

    /** Batched matmul with broadcast batch dims: a [..., M, K], b [..., K, N]. */
    public static Tensor matmul(Tensor a, Tensor b) {
        req("matmul", "a", a);
        req("matmul", "b", b);
        return Native.call(() -> Tensor.wrap(sdxl.matmul(a.handle(), b.handle())));
    }

    /** x [N, C, H, W], w [O, C, kh, kw], b [O] or null; symmetric zero padding. */
    public static Tensor conv2d(Tensor x, Tensor w, Tensor b, int stride, int padding) {
        req("conv2d", "x", x);
        req("conv2d", "w", w);
        return Native.call(() -> Tensor.wrap(sdxl.conv2d(x.handle(), w.handle(), opt(b), stride, padding)));
    }

    /** Nearest-neighbour upsampling of x [N, C, H, W] to [N, C, outH, outW]. */
    public static Tensor upsampleNearest(Tensor x, long outH, long outW) {
        req("upsample_nearest", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.upsample_nearest(x.handle(), outH, outW)));
    }

    /** Nearest-neighbour x2 upsampling. */
    public static Tensor upsampleNearest2x(Tensor x) {
        req("upsample_nearest2x", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.upsample_nearest2x(x.handle())));
    }

    /** Group normalisation of x [N, C, *]; gamma, beta [C] or null. */
    public static Tensor groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta, float eps) {
        req("group_norm", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.group_norm(x.handle(), groups, opt(gamma), opt(beta), eps)));
    }

    /** Layer normalisation over the last dimension; gamma, beta [D] or null. */
    public static Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps) {
        req("layer_norm", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.layer_norm(x.handle(), opt(gamma), opt(beta), eps)));
    }

    public static Tensor silu(Tensor x) {
        req("silu", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.silu(x.handle())));
    }

    /** Exact (erf) GELU. */
    public static Tensor gelu(Tensor x) {
        req("gelu", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.gelu(x.handle())));
    }

    /** Tanh-approximated GELU. */
    public static Tensor geluTanh(Tensor x) {
        req("gelu_tanh", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.gelu_tanh(x.handle())));
    }

    /** x * sigmoid(1.702 x), as in CLIP. */
    public static Tensor quickGelu(Tensor x) {
        req("quick_gelu", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.quick_gelu(x.handle())));
    }

    /** diffusers GEGLU: h, gate = x.chunk(2, -1); h * gelu(gate). */
    public static Tensor geglu(Tensor x) {
        req("geglu", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.geglu(x.handle())));
    }

    /** Softmax over the last dimension. */
    public static Tensor softmax(Tensor x) {
        req("softmax", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.softmax(x.handle())));
    }

    /**
     * Scaled dot-product attention: q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] -> [B, H, Lq, Dv].
     *
     * @param keyMask null, or [B, Lk]: nonzero = attend
     * @param causal  query i sees keys j <= i
     * @param scale   logit scale; <= 0 means 1/sqrt(D)
     */
    public static Tensor attention(Tensor q, Tensor k, Tensor v, Tensor keyMask, boolean causal, float scale) {
        req("attention", "q", q);
        req("attention", "k", k);
        req("attention", "v", v);
        return Native.call(() -> Tensor.wrap(sdxl.attention(q.handle(), k.handle(), v.handle(), opt(keyMask), causal, scale)));
    }

    /** a + b with broadcasting. */
    public static Tensor add(Tensor a, Tensor b) {
        req("add", "a", a);
        req("add", "b", b);
        return Native.call(() -> Tensor.wrap(sdxl.add(a.handle(), b.handle())));
    }

    /** a - b with broadcasting. */
    public static Tensor sub(Tensor a, Tensor b) {
        req("sub", "a", a);
        req("sub", "b", b);
        return Native.call(() -> Tensor.wrap(sdxl.sub(a.handle(), b.handle())));
    }

    /** a * b with broadcasting. */
    public static Tensor mul(Tensor a, Tensor b) {
        req("mul", "a", a);
        req("mul", "b", b);
        return Native.call(() -> Tensor.wrap(sdxl.mul(a.handle(), b.handle())));
    }

    /** alpha * x + beta. */
    public static Tensor scale(Tensor x, float alpha, float beta) {
        req("scale", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.scale(x.handle(), alpha, beta)));
    }

    /** Concatenation along {@code dim}. */
    public static Tensor concat(List<Tensor> parts, int dim) {
        if (parts == null || parts.isEmpty()) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "concat: need at least one tensor");
        }
        return Native.call(() -> {
            try (NativeTensorList list = new NativeTensorList()) {
                for (Tensor t : parts) {
                    list.add(req("concat", "part", t).handle());
                }
                return Tensor.wrap(sdxl.concat(list, dim));
            }
        });
    }

    /** A view: x.narrow(dim, start, length). */
    public static Tensor slice(Tensor x, int dim, long start, long length) {
        req("slice", "x", x);
        return Native.call(() -> Tensor.wrap(sdxl.slice(x.handle(), dim, start, length)));
    }

    /** diffusers get_timestep_embedding of t [N] (F32 or I64) -> [N, dim]. */
    public static Tensor timestepEmbedding(Tensor t, int dim, boolean flipSinToCos, float downscaleFreqShift,
                                           float scale, float maxPeriod) {
        req("timestep_embedding", "t", t);
        return Native.call(() -> Tensor.wrap(
                sdxl.timestep_embedding(t.handle(), dim, flipSinToCos, downscaleFreqShift, scale, maxPeriod)));
    }

    /** The bits of {@code value} rounded to IEEE half (nearest, ties to even). */
    public static short floatToHalfBits(float value) {
        return sdxl.float_to_f16_bits(value);
    }

    public static float halfBitsToFloat(short bits) {
        return sdxl.f16_bits_to_float(bits);
    }

    /** The bits of {@code value} rounded to bfloat16 (nearest, ties to even). */
    public static short floatToBf16Bits(float value) {
        return sdxl.float_to_bf16_bits(value);
    }

    public static float bf16BitsToFloat(short bits) {
        return sdxl.bf16_bits_to_float(bits);
    }
}
