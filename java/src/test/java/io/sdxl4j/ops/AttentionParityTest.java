package io.sdxl4j.ops;

import static io.sdxl4j.ops.Ours.run;
import static io.sdxl4j.ops.Ours.strided;

import io.sdxl4j.Ops;
import io.sdxl4j.Tensor;
import io.sdxl4j.ops.TorchOracle.Precision;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** attention against torch::scaled_dot_product_attention (F.scaled_dot_product_attention). */
class AttentionParityTest {

    // Against the exact (float64) SDPA. Two float32 GEMMs (K = head_dim, then K = Lk <= 1024) around a
    // softmax; each output is a convex combination of v rows, so its rounding error is a few ulp of max |v|
    // plus the GEMMs': observed <= 7e-7 (torch's own float32 SDPA: <= 8e-7). 5e-6 as for GEMM, which any
    // masking or scaling mistake (O(0.1)) or fp16/tf32 accumulation (1e-3) exceeds.
    static final Tol ATTENTION = Tol.scaledMax(5e-6, "vs float64 SDPA: two fp32 GEMMs + softmax");
    // A query row whose keys are all masked is defined as zeros (torch would give NaN): exact.
    static final Tol ZEROS = Tol.bitwise("fully masked rows are defined as exact zeros");

    /** [B, Lk] keep-mask -> torch's additive [B, 1, Lq, Lk] mask (0 attend, -inf masked), causality folded in. */
    private static HostArray additiveMask(float[] keep, long b, long lq, long lk, boolean causal) {
        float[] m = new float[HostArray.numel(b, 1, lq, lk)];
        for (int n = 0; n < b; n++) {
            for (int i = 0; i < lq; i++) {
                for (int j = 0; j < lk; j++) {
                    boolean attend = (keep == null || keep[(int) (n * lk + j)] != 0) && (!causal || j <= i);
                    m[(int) ((n * lq + i) * lk + j)] = attend ? 0f : Float.NEGATIVE_INFINITY;
                }
            }
        }
        return new HostArray(m, new long[] {b, 1, lq, lk});
    }

    /** A random keep-mask [B, Lk] with key 0 always kept, so no query row is left without keys. */
    private static float[] randomKeep(SplittableRandom r, int b, int lk) {
        float[] keep = new float[b * lk];
        for (int n = 0; n < b; n++) {
            for (int j = 0; j < lk; j++) {
                keep[n * lk + j] = j == 0 || r.nextDouble() < 0.6 ? 1f : 0f;
            }
        }
        return keep;
    }

    private static void attentionCase(String label, HostArray q, HostArray k, HostArray v, float[] keep,
                                      boolean keepAsLongs, boolean causal, float scale) {
        long b = q.shape()[0];
        long lq = q.shape()[2];
        long lk = k.shape()[2];
        double torchScale = scale > 0 ? scale : 1.0 / Math.sqrt(q.shape()[3]);
        // torch refuses attn_mask together with is_causal: pass is_causal itself when there is no key mask
        HostArray mask = keep == null ? null : additiveMask(keep, b, lq, lk, causal);
        HostArray got;
        try (Tensor tq = q.toTensor(); Tensor tk = k.toTensor(); Tensor tv = v.toTensor();
             Tensor tm = keep == null ? null : keepTensor(keep, keepAsLongs, b, lk)) {
            got = run(() -> Ops.attention(tq, tk, tv, tm, causal, scale));
        }
        Parity.assertCloseToExact(label, got, p -> mask == null
                ? TorchOracle.attention(p, q, k, v, null, causal, torchScale)
                : TorchOracle.attention(p, q, k, v, mask, false, torchScale), ATTENTION);
    }

    private static Tensor keepTensor(float[] keep, boolean asLongs, long b, long lk) {
        if (!asLongs) {
            return Tensor.of(keep, b, lk);
        }
        long[] l = new long[keep.length];
        for (int i = 0; i < l.length; i++) {
            l[i] = (long) keep[i];
        }
        return Tensor.ofLongs(l, b, lk);
    }

    @Test
    void smallOddShapes() {
        SplittableRandom r = Seeds.rng("attentionSmall");
        HostArray q = HostArray.randn(r, 1, 2, 3, 5, 8);
        HostArray k = HostArray.randn(r, 1, 2, 3, 7, 8);
        HostArray v = HostArray.randn(r, 1, 2, 3, 7, 6);
        attentionCase("attention Lq5 Lk7 D8 Dv6", q, k, v, null, false, false, 0f);
        attentionCase("attention Lq5 Lk7 D8 Dv6 scale 0.3", q, k, v, null, false, false, 0.3f);
        float[] keep = randomKeep(r, 2, 7);
        attentionCase("attention key mask F32", q, k, v, keep, false, false, 0f);
        attentionCase("attention key mask I64", q, k, v, keep, true, false, 0f);
        attentionCase("attention Lk1", q, HostArray.randn(r, 1, 2, 3, 1, 8), HostArray.randn(r, 1, 2, 3, 1, 6), null,
                false, false, 0f);
        attentionCase("attention B1 H1 Lq1 Lk1 D1", HostArray.randn(r, 1, 1, 1, 1, 1), HostArray.randn(r, 1, 1, 1, 1, 1),
                HostArray.randn(r, 1, 1, 1, 1, 1), null, false, false, 0f);
        // larger logits (std of q.k ~ 8 after scaling): softmax far from uniform
        attentionCase("attention peaked logits", HostArray.randn(r, 4, 2, 3, 5, 8), HostArray.randn(r, 4, 2, 3, 7, 8), v,
                null, false, false, 0f);
    }

    @Test
    void causal() {
        SplittableRandom r = Seeds.rng("attentionCausal");
        HostArray q9 = HostArray.randn(r, 1, 2, 2, 9, 8);
        HostArray k9 = HostArray.randn(r, 1, 2, 2, 9, 8);
        HostArray v9 = HostArray.randn(r, 1, 2, 2, 9, 5);
        attentionCase("attention causal Lq=Lk=9", q9, k9, v9, null, false, true, 0f);
        attentionCase("attention causal Lq5 < Lk7", HostArray.randn(r, 1, 1, 2, 5, 8), HostArray.randn(r, 1, 1, 2, 7, 8),
                HostArray.randn(r, 1, 1, 2, 7, 4), null, false, true, 0f);
        attentionCase("attention causal Lq7 > Lk5", HostArray.randn(r, 1, 1, 2, 7, 8), HostArray.randn(r, 1, 1, 2, 5, 8),
                HostArray.randn(r, 1, 1, 2, 5, 4), null, false, true, 0f);
        attentionCase("attention causal + key mask", q9, k9, v9, randomKeep(r, 2, 9), false, true, 0f);
        // CLIP ViT-bigG (text_encoder_2): 20 heads x 64 over 77 tokens, causal; with a padding mask too
        HostArray q = HostArray.randn(r, 1, 2, 20, 77, 64);
        HostArray k = HostArray.randn(r, 1, 2, 20, 77, 64);
        HostArray v = HostArray.randn(r, 1, 2, 20, 77, 64);
        attentionCase("attention CLIP [2,20,77,64] causal", q, k, v, null, false, true, 0f);
        attentionCase("attention CLIP [2,20,77,64] causal + key mask", q, k, v, randomKeep(r, 2, 77), true, true, 0f);
    }

    @Test
    void stridedInputs() {
        SplittableRandom r = Seeds.rng("attentionStrided");
        // q, k, v as the [B, L, H, D] -> [B, H, L, D] views attention processors make; v narrowed out of a
        // wider buffer as well
        HostArray qb = HostArray.randn(r, 1, 2, 6, 3, 8);
        HostArray kb = HostArray.randn(r, 1, 2, 11, 3, 8);
        HostArray vb = HostArray.randn(r, 1, 2, 11, 3, 10);
        HostArray q = qb.permute(0, 2, 1, 3);
        HostArray k = kb.permute(0, 2, 1, 3);
        HostArray v = vb.permute(0, 2, 1, 3).narrow(3, 2, 5);
        HostArray got;
        try (Tensor tq0 = qb.toTensor(); Tensor tq = strided(tq0.permute(0, 2, 1, 3));
             Tensor tk0 = kb.toTensor(); Tensor tk = strided(tk0.permute(0, 2, 1, 3));
             Tensor tv0 = vb.toTensor(); Tensor tvp = tv0.permute(0, 2, 1, 3); Tensor tv = strided(tvp.narrow(3, 2, 5))) {
            got = run(() -> Ops.attention(tq, tk, tv, null, false, 0f));
        }
        Parity.assertCloseToExact("attention permuted q/k, permuted+narrowed v", got,
                p -> TorchOracle.attention(p, q, k, v, null, false, 1.0 / Math.sqrt(8)), ATTENTION);
    }

    @Test
    void fullyMaskedRowsAreZeros() {
        SplittableRandom r = Seeds.rng("attentionMasked");
        HostArray q = HostArray.randn(r, 1, 2, 3, 4, 8);
        HostArray k = HostArray.randn(r, 1, 2, 3, 6, 8);
        HostArray v = HostArray.randn(r, 1, 2, 3, 6, 5);
        float[] keep = new float[12];
        for (int j = 0; j < 6; j++) {
            keep[j] = j % 2; // batch 0 keeps keys 1, 3, 5; batch 1 keeps none
        }
        HostArray got;
        try (Tensor tq = q.toTensor(); Tensor tk = k.toTensor(); Tensor tv = v.toTensor(); Tensor tm = Tensor.of(keep, 2, 6)) {
            got = run(() -> Ops.attention(tq, tk, tv, tm, false, 0f));
        }
        HostArray mask0 = additiveMask(Arrays.copyOf(keep, 6), 1, 4, 6, false);
        Parity.assertCloseToExact("attention batch 0 of a half-masked mask", got.narrow(0, 0, 1),
                p -> TorchOracle.attention(p, q.narrow(0, 0, 1), k.narrow(0, 0, 1), v.narrow(0, 0, 1), mask0, false,
                        1.0 / Math.sqrt(8)), ATTENTION);
        Parity.assertClose("attention batch 1 fully masked -> zeros", got.narrow(0, 1, 1),
                new HostArray(new float[3 * 4 * 5], new long[] {1, 3, 4, 5}), ZEROS);
    }

    @Test
    void sdxlCrossAttentionFromProjectedContext() {
        SplittableRandom r = Seeds.rng("attentionCross");
        // attn2 at 640 channels, CFG batch 2: queries from 1024 latent tokens (32x32), keys and values from the
        // 77x2048 text context through to_k / to_v; 10 heads x 64
        long b = 2, n = 1024, c = 640, heads = 10, d = 64;
        HostArray hidden = HostArray.randn(r, 1, b, n, c);
        HostArray context = HostArray.randn(r, 1, b, 77, 2048);
        HostArray wq = HostArray.weight(r, c, c, c);
        HostArray wk = HostArray.weight(r, 2048, c, 2048);
        HostArray wv = HostArray.weight(r, 2048, c, 2048);

        // the oracle's chain: the projections in float64 too, then the same head split (plain Java)
        Precision f64 = Precision.F64;
        HostArray q = heads(TorchOracle.linear(f64, hidden, wq, null), heads, d);
        HostArray k = heads(TorchOracle.linear(f64, context, wk, null), heads, d);
        HostArray v = heads(TorchOracle.linear(f64, context, wv, null), heads, d);

        HostArray got;
        try (Tensor th = hidden.toTensor(); Tensor tc = context.toTensor(); Tensor tWq = wq.toTensor();
             Tensor tWk = wk.toTensor(); Tensor tWv = wv.toTensor();
             Tensor pq = Ops.linear(th, tWq, null); Tensor pk = Ops.linear(tc, tWk, null);
             Tensor pv = Ops.linear(tc, tWv, null);
             Tensor rq = pq.reshape(b, n, heads, d); Tensor rk = pk.reshape(b, 77, heads, d);
             Tensor rv = pv.reshape(b, 77, heads, d);
             Tensor tq = strided(rq.permute(0, 2, 1, 3)); Tensor tk = strided(rk.permute(0, 2, 1, 3));
             Tensor tv = strided(rv.permute(0, 2, 1, 3))) {
            got = run(() -> Ops.attention(tq, tk, tv, null, false, 0f));
        }
        Parity.assertCloseToExact("attention cross [2,10,1024,64] x 77 keys (projected)", got,
                p -> TorchOracle.attention(p, q, k, v, null, false, 1.0 / Math.sqrt(d)), ATTENTION);

        // the same with a text padding mask (nonzero = attend)
        float[] keep = new float[(int) (b * 77)];
        for (int i = 0; i < keep.length; i++) {
            keep[i] = i % 77 < 20 + 30 * (i / 77) ? 1f : 0f;
        }
        attentionCase("attention cross [2,10,1024,64] x 77 keys, padding mask", q, k, v, keep, false, false, 0f);
    }

    /** [B, L, H*D] -> [B, H, L, D] (a reshape and permute in plain Java). */
    private static HostArray heads(HostArray x, long heads, long d) {
        long[] s = x.shape();
        return new HostArray(x.data(), new long[] {s[0], s[1], heads, d}).permute(0, 2, 1, 3);
    }

    @Test
    void sdxlSelfAttention() {
        SplittableRandom r = Seeds.rng("attentionSelf");
        // attn1 at 1280 channels: 1024 tokens (32x32), 20 heads x 64, q/k/v as views of [1,1024,20,64]
        HostArray qb = HostArray.randn(r, 1, 1, 1024, 20, 64);
        HostArray kb = HostArray.randn(r, 1, 1, 1024, 20, 64);
        HostArray vb = HostArray.randn(r, 1, 1, 1024, 20, 64);
        HostArray got;
        try (Tensor tq0 = qb.toTensor(); Tensor tq = tq0.permute(0, 2, 1, 3);
             Tensor tk0 = kb.toTensor(); Tensor tk = tk0.permute(0, 2, 1, 3);
             Tensor tv0 = vb.toTensor(); Tensor tv = tv0.permute(0, 2, 1, 3)) {
            got = run(() -> Ops.attention(tq, tk, tv, null, false, 0f));
        }
        Parity.assertCloseToExact("attention self [1,20,1024,64] x 1024 keys", got,
                p -> TorchOracle.attention(p, qb.permute(0, 2, 1, 3), kb.permute(0, 2, 1, 3), vb.permute(0, 2, 1, 3),
                        null, false, 0.125), ATTENTION);
    }
}
