package io.sdxl4j.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsWriter;
import io.sdxl4j.ops.BlockOracle;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The single native blocks (Transformer2DBlock, ResnetBlock) against diffusers' forward passes written with
 * LibTorch ops in float64 (BlockOracle), at small widths on random weights (biases and norm parameters
 * included, so every term counts), within 1e-4 of max |ref| (fp32 against an exact answer: the reductions
 * here are a few hundred terms long, so the expected error is ~1e-6); and strict binding under a prefix.
 */
class Transformer2DBlockTest {
    private static final double REL = 1e-4;
    private static final String PREFIX = "down_blocks.1.attentions.0";
    private static final String RESNET_PREFIX = "down_blocks.1.resnets.0";

    // ------------------------------------------------------------------------------------------ weights

    /** Keys and shapes of a Transformer2DModel's weights, in diffusers' names below its prefix. */
    static Map<String, long[]> transformerShapes(Transformer2DBlock.Config c) {
        long ch = c.channels();
        long inner = c.heads() * c.headDim();
        boolean lin = c.useLinearProjection();
        Map<String, long[]> s = new LinkedHashMap<>();
        s.put("norm.weight", new long[] {ch});
        s.put("norm.bias", new long[] {ch});
        s.put("proj_in.weight", lin ? new long[] {inner, ch} : new long[] {inner, ch, 1, 1});
        s.put("proj_in.bias", new long[] {inner});
        for (int i = 0; i < c.layers(); i++) {
            String b = "transformer_blocks." + i + ".";
            for (String n : new String[] {"norm1", "norm2", "norm3"}) {
                s.put(b + n + ".weight", new long[] {inner});
                s.put(b + n + ".bias", new long[] {inner});
            }
            for (String a : new String[] {"attn1", "attn2"}) {
                long kv = a.equals("attn1") ? inner : c.contextDim();
                s.put(b + a + ".to_q.weight", new long[] {inner, inner});
                s.put(b + a + ".to_k.weight", new long[] {inner, kv});
                s.put(b + a + ".to_v.weight", new long[] {inner, kv});
                s.put(b + a + ".to_out.0.weight", new long[] {inner, inner});
                s.put(b + a + ".to_out.0.bias", new long[] {inner});
            }
            s.put(b + "ff.net.0.proj.weight", new long[] {8 * inner, inner});
            s.put(b + "ff.net.0.proj.bias", new long[] {8 * inner});
            s.put(b + "ff.net.2.weight", new long[] {inner, 4 * inner});
            s.put(b + "ff.net.2.bias", new long[] {inner});
        }
        s.put("proj_out.weight", lin ? new long[] {ch, inner} : new long[] {ch, inner, 1, 1});
        s.put("proj_out.bias", new long[] {ch});
        return s;
    }

    static Map<String, long[]> resnetShapes(ResnetBlock.Config c) {
        Map<String, long[]> s = new LinkedHashMap<>();
        s.put("norm1.weight", new long[] {c.in()});
        s.put("norm1.bias", new long[] {c.in()});
        s.put("conv1.weight", new long[] {c.out(), c.in(), 3, 3});
        s.put("conv1.bias", new long[] {c.out()});
        if (c.tembChannels() > 0) {
            s.put("time_emb_proj.weight", new long[] {c.out(), c.tembChannels()});
            s.put("time_emb_proj.bias", new long[] {c.out()});
        }
        s.put("norm2.weight", new long[] {c.out()});
        s.put("norm2.bias", new long[] {c.out()});
        s.put("conv2.weight", new long[] {c.out(), c.out(), 3, 3});
        s.put("conv2.bias", new long[] {c.out()});
        if (c.in() != c.out()) {
            s.put("conv_shortcut.weight", new long[] {c.out(), c.in(), 1, 1});
            s.put("conv_shortcut.bias", new long[] {c.out()});
        }
        return s;
    }

    /**
     * Random weights as torch initialises them (uniform in +-1/sqrt(fan_in)); norm scales 1 + N(0, 0.1), norm
     * shifts and biases N(0, 0.1), so none is a no-op.
     */
    static Map<String, Tensor> randomWeights(Map<String, long[]> shapes, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, Tensor> w = new LinkedHashMap<>();
        shapes.forEach((key, shape) -> {
            int n = Math.toIntExact(numel(shape));
            float[] v = new float[n];
            boolean norm = key.contains("norm");
            double bound = shape.length > 1 ? 1.0 / Math.sqrt(numel(shape) / shape[0]) : 0;
            for (int i = 0; i < n; i++) {
                if (shape.length > 1) {
                    v[i] = (float) r.nextDouble(-bound, bound);
                } else if (norm && key.endsWith(".weight")) {
                    v[i] = (float) (1.0 + 0.1 * r.nextGaussian());
                } else {
                    v[i] = (float) (0.1 * r.nextGaussian());
                }
            }
            w.put(key, Tensor.of(v, shape));
        });
        return w;
    }

    static Tensor randn(SplittableRandom r, long... shape) {
        float[] v = new float[Math.toIntExact(numel(shape))];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return Tensor.of(v, shape);
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** Writes the block's weights under {@code prefix}, plus one tensor outside it (which binding must ignore). */
    static Path write(Path dir, String name, String prefix, Map<String, Tensor> weights) {
        Map<String, Tensor> file = new LinkedHashMap<>();
        weights.forEach((k, t) -> file.put(prefix.isEmpty() ? k : prefix + "." + k, t));
        try (Tensor other = Tensor.of(new float[] {1, 2, 3}, 3)) {
            file.put("down_blocks.1.attentions.1.norm.weight", other);
            Path path = dir.resolve(name + ".safetensors");
            SafetensorsWriter.write(path, file, Map.of());
            return path;
        }
    }

    static void close(Map<String, Tensor> weights) {
        weights.values().forEach(Tensor::close);
    }

    /** max |got - ref| / max |ref| within REL, printed so the margin can be read off a test run. */
    static void assertClose(String label, float[] got, float[] ref) {
        assertEquals(ref.length, got.length, label + ": element count");
        double maxD = 0;
        double maxRef = 0;
        for (int i = 0; i < got.length; i++) {
            assertTrue(Float.isFinite(got[i]), label + ": non-finite value at " + i);
            maxD = Math.max(maxD, Math.abs((double) got[i] - ref[i]));
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
        }
        double rel = maxD / maxRef;
        System.out.printf(Locale.ROOT, "[block-parity] %-44s n=%-7d max|d|=%.3g max|ref|=%.3g rel=%.3g%n", label,
                got.length, maxD, maxRef, rel);
        assertTrue(rel <= REL, String.format(Locale.ROOT, "%s: max|d| / max|ref| = %.3g > %.1g", label, rel, REL));
    }

    // ------------------------------------------------------------------------------------------ parity

    private static void checkTransformer(Path dir, String label, Transformer2DBlock.Config c, long n, long h, long w,
                                         long lc, long seed) {
        Map<String, Tensor> weights = randomWeights(transformerShapes(c), seed);
        SplittableRandom r = new SplittableRandom(seed + 1);
        try (Transformer2DBlock block = Transformer2DBlock.load(List.of(write(dir, label, PREFIX, weights)), PREFIX, c);
             Tensor x = randn(r, n, c.channels(), h, w);
             Tensor ctx = randn(r, n, lc, c.contextDim());
             Tensor out = block.forward(x, ctx)) {
            assertArrayEquals(x.shape(), out.shape(), label + ": shape");
            float[] ref = BlockOracle.transformer2d(weights, x, ctx, (int) c.heads(), (int) c.headDim(),
                    (int) c.layers(), (int) c.groups(), c.useLinearProjection());
            // The residual (+ x) is exact on both sides; compare what the block adds to it, where the work is.
            float[] xv = x.toFloatArray();
            float[] got = out.toFloatArray();
            for (int i = 0; i < xv.length; i++) {
                got[i] -= xv[i];
                ref[i] -= xv[i];
            }
            assertClose(label + " (out - x)", got, ref);
        } finally {
            close(weights);
        }
    }

    @Test
    void transformerWithLinearProjectionsMatchesDiffusers(@TempDir Path dir) {
        // SDXL's kind (linear proj_in/out, 32 groups), two layers, inner width (2 x 24) != channels, odd H x W.
        checkTransformer(dir, "transformer linear 64ch 2x24 2 layers", new Transformer2DBlock.Config(64, 2, 24, 2, 40,
                32, true), 2, 5, 7, 9, 11);
    }

    @Test
    void transformerWithConvProjectionsMatchesDiffusers(@TempDir Path dir) {
        // SD 1.x's kind (1x1 conv proj_in/out), inner width (3 x 16) != channels.
        checkTransformer(dir, "transformer conv 32ch 3x16 1 layer", new Transformer2DBlock.Config(32, 3, 16, 1, 24, 8,
                false), 1, 6, 4, 77, 12);
    }

    private static void checkResnet(Path dir, String label, ResnetBlock.Config c, long n, long h, long w, long seed) {
        Map<String, Tensor> weights = randomWeights(resnetShapes(c), seed);
        SplittableRandom r = new SplittableRandom(seed + 1);
        try (ResnetBlock block = ResnetBlock.load(List.of(write(dir, label, RESNET_PREFIX, weights)), RESNET_PREFIX, c);
             Tensor x = randn(r, n, c.in(), h, w);
             Tensor temb = c.tembChannels() > 0 ? randn(r, n, c.tembChannels()) : null;
             Tensor out = block.forward(x, temb)) {
            assertArrayEquals(new long[] {n, c.out(), h, w}, out.shape(), label + ": shape");
            float[] ref = BlockOracle.resnet(weights, x, temb, (int) c.groups(), c.eps());
            assertClose(label, out.toFloatArray(), ref);
        } finally {
            close(weights);
        }
    }

    @Test
    void resnetWithTimeEmbeddingAndShortcutMatchesDiffusers(@TempDir Path dir) {
        // The UNet's kind: temb projection, in != out (1x1 conv shortcut), eps 1e-5.
        checkResnet(dir, "resnet 32->48 temb 40", new ResnetBlock.Config(32, 48, 40, 8, 1e-5f), 2, 9, 7, 21);
    }

    @Test
    void resnetWithoutTimeEmbeddingMatchesDiffusers(@TempDir Path dir) {
        // The VAE's kind: no temb (temb_channels 0, forward with null), in == out (identity shortcut), eps 1e-6.
        checkResnet(dir, "resnet 32->32 no temb", new ResnetBlock.Config(32, 32, 0, 32, 1e-6f), 1, 8, 8, 22);
    }

    @Test
    void randomBlocksRunAtTheirShapes() {
        SplittableRandom r = new SplittableRandom(3);
        try (Transformer2DBlock t = Transformer2DBlock.random(new Transformer2DBlock.Config(64, 4, 16, 1, 32, 32, true), 1);
             ResnetBlock b = ResnetBlock.random(new ResnetBlock.Config(64, 32, 16, 32, 1e-5f), 1);
             Tensor x = randn(r, 1, 64, 4, 4);
             Tensor ctx = randn(r, 1, 5, 32);
             Tensor temb = randn(r, 1, 16);
             Tensor y = t.forward(x, ctx);
             Tensor z = b.forward(y, temb)) {
            assertArrayEquals(new long[] {1, 64, 4, 4}, y.shape());
            assertArrayEquals(new long[] {1, 32, 4, 4}, z.shape());
            for (float v : z.toFloatArray()) {
                assertTrue(Float.isFinite(v));
            }
        }
    }

    // ------------------------------------------------------------------------------------------ binding

    private static void expectBadFile(Path dir, String label, String key, Consumer<Map<String, Tensor>> edit,
                                      boolean resnet) {
        Transformer2DBlock.Config tc = new Transformer2DBlock.Config(32, 2, 16, 1, 24, 8, true);
        ResnetBlock.Config rc = new ResnetBlock.Config(16, 32, 8, 8, 1e-5f);
        Map<String, Tensor> weights = randomWeights(resnet ? resnetShapes(rc) : transformerShapes(tc), 5);
        try {
            edit.accept(weights);
            String prefix = resnet ? RESNET_PREFIX : PREFIX;
            List<Path> files = List.of(write(dir, label, prefix, weights));
            SdxlException e = assertThrows(SdxlException.class,
                    () -> (resnet ? ResnetBlock.load(files, prefix, rc) : Transformer2DBlock.load(files, prefix, tc)).close());
            assertEquals(ErrorCode.BAD_MODEL_FILE, e.code(), e.getMessage());
            assertTrue(e.getMessage().contains("'" + prefix + "." + key + "'"), e.getMessage());
        } finally {
            close(weights);
        }
    }

    @Test
    void missingMisshapedAndUnusedTensorsAreBadModelFileNamingTheKey(@TempDir Path dir) {
        String ffOut = "transformer_blocks.0.ff.net.2.weight";
        expectBadFile(dir, "missing", ffOut, w -> w.remove(ffOut).close(), false);
        expectBadFile(dir, "misshaped", "transformer_blocks.0.attn2.to_k.weight", w -> {
            w.remove("transformer_blocks.0.attn2.to_k.weight").close();
            w.put("transformer_blocks.0.attn2.to_k.weight", Tensor.of(new float[32 * 25], 32, 25));
        }, false);
        expectBadFile(dir, "unused", "transformer_blocks.1.norm1.weight",
                w -> w.put("transformer_blocks.1.norm1.weight", Tensor.of(new float[32], 32)), false);
        expectBadFile(dir, "resnet-missing", "conv_shortcut.bias", w -> w.remove("conv_shortcut.bias").close(), true);
        expectBadFile(dir, "resnet-misshaped", "time_emb_proj.weight", w -> {
            w.remove("time_emb_proj.weight").close();
            w.put("time_emb_proj.weight", Tensor.of(new float[32 * 9], 32, 9));
        }, true);
    }

    @Test
    void badArgumentsAndClosedBlocksAreInvalidArgument() {
        SdxlException groups = assertThrows(SdxlException.class,
                () -> Transformer2DBlock.random(new Transformer2DBlock.Config(30, 2, 16, 1, 24, 32, true), 1));
        assertEquals(ErrorCode.INVALID_ARGUMENT, groups.code(), groups.getMessage());
        SdxlException prefix = assertThrows(SdxlException.class,
                () -> ResnetBlock.load(List.of(Path.of("unused.safetensors")), "down_blocks.", new ResnetBlock.Config(8, 8, 0, 4, 1e-6f)));
        assertEquals(ErrorCode.INVALID_ARGUMENT, prefix.code(), prefix.getMessage());

        ResnetBlock b = ResnetBlock.random(new ResnetBlock.Config(8, 8, 4, 4, 1e-5f), 2);
        try (Tensor x = Tensor.of(new float[8 * 4], 1, 8, 2, 2)) {
            SdxlException noTemb = assertThrows(SdxlException.class, () -> b.forward(x, null));
            assertEquals(ErrorCode.INVALID_ARGUMENT, noTemb.code(), noTemb.getMessage());
            b.close();
            b.close();
            SdxlException closed = assertThrows(SdxlException.class, () -> b.forward(x, null));
            assertEquals(ErrorCode.INVALID_ARGUMENT, closed.code());
        }
    }
}
