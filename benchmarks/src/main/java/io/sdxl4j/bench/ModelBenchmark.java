package io.sdxl4j.bench;

import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsWriter;
import io.sdxl4j.models.AutoencoderKL;
import io.sdxl4j.models.Transformer2DBlock;
import io.sdxl4j.models.UNet2DConditionModel;
import io.sdxl4j.models.UNetConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Whole-model and whole-block CPU latency (fp32):
 * <ul>
 *   <li>one forward of the tiny SDXL base UNet (batch 2, as classifier-free guidance runs it);</li>
 *   <li>one decode of the tiny SDXL VAE;</li>
 *   <li>one real-width Transformer2DModel as at SDXL's 640-channel level (10 heads x 64, 1 layer, context
 *       77 x 2048, GroupNorm 32, linear projections), in sdxl4j and written with LibTorch functional ops on the
 *       same weights (RunBenchmarks prints the ratio). Setup checks that both give the same output.</li>
 * </ul>
 * The tiny models are read from the folder named by the system property {@code sdxl4j.models}, by default
 * {@code java/src/test/resources/reference/models} relative to the working directory: run from the repo root,
 * e.g. {@code java -jar benchmarks/target/benchmarks.jar ModelBenchmark}.
 */
@BenchmarkMode(Mode.AverageTime) // per-call latency is what a denoising step (or a decode) costs
@OutputTimeUnit(TimeUnit.MILLISECONDS) // from about a millisecond (tiny models) to seconds (64x64 block)
@Warmup(iterations = 2, time = 3) // thread pools, caches and the allocator settle after a few calls
@Measurement(iterations = 4, time = 3) // 3 s holds at least one call of the slowest case per iteration
@Fork(1) // one JVM per case: both libraries load into it, so they are measured under the same conditions
public class ModelBenchmark {

    /** The folder holding tiny-sdxl-base/, from -Dsdxl4j.models or the repo's test resources. */
    static Path modelsDir() {
        Path dir = Path.of(System.getProperty("sdxl4j.models", "java/src/test/resources/reference/models"));
        if (!Files.isDirectory(dir.resolve("tiny-sdxl-base"))) {
            throw new IllegalStateException("no tiny-sdxl-base in " + dir.toAbsolutePath()
                    + ": run from the repo root or pass -Dsdxl4j.models=<folder holding tiny-sdxl-base>");
        }
        return dir;
    }

    static float[] gaussian(Random rnd, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (rnd.nextGaussian() * std);
        }
        return v;
    }

    static long[] hw(String size) {
        String[] p = size.split("x");
        return new long[] {Long.parseLong(p[0]), Long.parseLong(p[1])};
    }

    // ------------------------------------------------------------------------------------------ UNet

    @State(Scope.Benchmark) // the model and inputs are shared read-only; the forward itself is multi-threaded
    public static class UNetState {
        /** Latent height x width (images of 64x64 and 128x128 pixels at the tiny model's scale). */
        @Param({"8x8", "16x16"})
        public String unetLatent;

        UNet2DConditionModel unet;
        Tensor sample;
        Tensor timestep;
        Tensor context;
        Tensor textEmbeds;
        Tensor timeIds;

        @Setup(Level.Trial) // the model is loaded and the inputs drawn once; only the forward is timed
        public void setup() {
            Sdxl4j.load();
            unet = UNet2DConditionModel.load(modelsDir().resolve("tiny-sdxl-base/unet"), null);
            UNetConfig c = unet.config();
            long[] s = hw(unetLatent);
            long pooled = c.projectionClassEmbeddingsInputDim() - 6 * c.additionTimeEmbedDim();
            Random rnd = new Random(1234);
            sample = Tensor.of(gaussian(rnd, (int) (2 * c.inChannels() * s[0] * s[1]), 1), 2, c.inChannels(), s[0], s[1]);
            timestep = Tensor.of(new float[] {500, 500}, 2);
            context = Tensor.of(gaussian(rnd, (int) (2 * 77 * c.crossAttentionDim()), 1), 2, 77, c.crossAttentionDim());
            textEmbeds = Tensor.of(gaussian(rnd, (int) (2 * pooled), 1), 2, pooled);
            float h = 8 * s[0];
            float w = 8 * s[1];
            timeIds = Tensor.of(new float[] {h, w, 0, 0, h, w, h, w, 0, 0, h, w}, 2, 6); // original size, crop, target
        }

        @TearDown(Level.Trial) // native memory back after each size
        public void tearDown() {
            for (AutoCloseable t : new AutoCloseable[] {sample, timestep, context, textEmbeds, timeIds, unet}) {
                try {
                    t.close();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    /** One noise prediction of the tiny SDXL base UNet for a CFG batch of 2. */
    @Benchmark
    public Tensor unetForward(UNetState s) {
        Tensor y = s.unet.forward(s.sample, s.timestep, s.context, s.textEmbeds, s.timeIds);
        y.close(); // freeing is part of the cost, as in a real step
        return y;
    }

    // ------------------------------------------------------------------------------------------ VAE

    @State(Scope.Benchmark) // the model and latents are shared read-only
    public static class VaeState {
        /** Latent height x width; the decoded image is 8x larger on each side. */
        @Param({"8x8", "16x16"})
        public String vaeLatent;

        AutoencoderKL vae;
        Tensor z;

        @Setup(Level.Trial) // loaded once; only the decode is timed
        public void setup() {
            Sdxl4j.load();
            vae = AutoencoderKL.load(modelsDir().resolve("tiny-sdxl-base/vae"), null);
            long[] s = hw(vaeLatent);
            z = Tensor.of(gaussian(new Random(99), (int) (4 * s[0] * s[1]), 1), 1, 4, s[0], s[1]);
        }

        @TearDown(Level.Trial) // native memory back after each size
        public void tearDown() {
            z.close();
            vae.close();
        }
    }

    /** One decode of the tiny SDXL VAE: [1, 4, h, w] -> [1, 3, 8h, 8w]. */
    @Benchmark
    public Tensor vaeDecode(VaeState s) {
        Tensor y = s.vae.decode(s.z);
        y.close();
        return y;
    }

    // ------------------------------------------------------------------------------------------ Transformer2DModel

    /** SDXL's 640-channel level with one transformer layer (the real level has two; one keeps runs short). */
    static final Transformer2DBlock.Config BLOCK = Transformer2DBlock.Config.sdxl640(1);
    static final String PREFIX = "down_blocks.1.attentions.0";

    @State(Scope.Benchmark) // the block, weights and inputs are shared read-only; the forward is multi-threaded
    public static class TransformerState {
        /** channels_HxW of the hidden state [2, 640, H, W] (SDXL at 512x512 and 1024x1024 images). */
        @Param({"640_32x32", "640_64x64"})
        public String hidden;

        Transformer2DBlock block;
        TorchTransformer2D torchBlock;
        Tensor x;
        Tensor context;
        org.bytedeco.pytorch.Tensor tx;
        org.bytedeco.pytorch.Tensor tcontext;
        NoGradGuard noGrad;

        @Setup(Level.Trial) // weights made, loaded into both libraries and cross-checked once; only the forward is timed
        public void setup() throws IOException {
            Sdxl4j.load();
            TorchSupport.load();
            noGrad = new NoGradGuard();
            long[] s = hw(hidden.substring(hidden.indexOf('_') + 1));
            Random rnd = new Random(640);
            Map<String, Tensor> weights = transformerWeights(rnd);
            Path dir = Files.createTempDirectory("sdxl4j-bench");
            Path file = dir.resolve("transformer.safetensors");
            try {
                Map<String, Tensor> prefixed = new LinkedHashMap<>();
                weights.forEach((k, t) -> prefixed.put(PREFIX + "." + k, t));
                SafetensorsWriter.write(file, prefixed, Map.of());
                block = Transformer2DBlock.load(List.of(file), PREFIX, BLOCK);
                torchBlock = new TorchTransformer2D(weights, BLOCK);
            } finally {
                weights.values().forEach(Tensor::close);
                Files.deleteIfExists(file); // sdxl4j maps the file; the mapping outlives the name
                Files.deleteIfExists(dir);
            }
            long n = 2;
            float[] xv = gaussian(rnd, (int) (n * BLOCK.channels() * s[0] * s[1]), 1);
            float[] cv = gaussian(rnd, (int) (n * 77 * BLOCK.contextDim()), 1);
            x = Tensor.of(xv, n, BLOCK.channels(), s[0], s[1]);
            context = Tensor.of(cv, n, 77, BLOCK.contextDim());
            tx = torchOf(xv, n, BLOCK.channels(), s[0], s[1]);
            tcontext = torchOf(cv, n, 77, BLOCK.contextDim());
            crossCheck(xv);
        }

        /** A benchmark of a wrong block is worthless: both outputs must agree within 1e-3 of max |ref|. */
        private void crossCheck(float[] xv) {
            float[] ours;
            try (Tensor y = block.forward(x, context)) {
                ours = y.toFloatArray();
            }
            float[] theirs;
            try (PointerScope scope = new PointerScope()) {
                org.bytedeco.pytorch.Tensor y = torchBlock.forward(tx, tcontext).contiguous();
                theirs = new float[(int) y.numel()];
                y.data_ptr_float().get(theirs);
            }
            if (ours.length != theirs.length) {
                throw new IllegalStateException("transformer outputs differ in size: " + ours.length + " vs " + theirs.length);
            }
            // Compare what the block adds to its input (the residual + x is trivially equal on both sides).
            double maxD = 0;
            double maxRef = 0;
            for (int i = 0; i < ours.length; i++) {
                double a = (double) ours[i] - xv[i];
                double b = (double) theirs[i] - xv[i];
                if (!Double.isFinite(a)) {
                    throw new IllegalStateException("sdxl4j transformer output is not finite at " + i);
                }
                maxD = Math.max(maxD, Math.abs(a - b));
                maxRef = Math.max(maxRef, Math.abs(b));
            }
            double rel = maxD / maxRef;
            System.out.printf(Locale.ROOT, "%n[check] transformer %s: sdxl4j vs libtorch max|d|=%.3g max|ref|=%.3g rel=%.3g"
                    + " (threads: sdxl4j %d, libtorch %d)%n", hidden, maxD, maxRef, rel, Sdxl4j.numThreads(),
                    torch.get_num_threads());
            if (!(rel <= 1e-3)) {
                throw new IllegalStateException(String.format(Locale.ROOT,
                        "sdxl4j and LibTorch transformer blocks disagree: max|d| / max|ref| = %.3g > 1e-3", rel));
            }
        }

        @TearDown(Level.Trial) // native memory back after each size
        public void tearDown() {
            block.close();
            torchBlock.close();
            x.close();
            context.close();
            tx.close();
            tcontext.close();
            noGrad.close();
        }
    }

    /**
     * Random weights in diffusers' key names (below the block): matrices N(0, 1/fan_in), norm scales
     * 1 + N(0, 0.1^2), biases and norm shifts N(0, 0.1^2), so the activations stay O(1).
     */
    static Map<String, Tensor> transformerWeights(Random rnd) {
        long c = BLOCK.channels();
        long inner = BLOCK.heads() * BLOCK.headDim();
        long ctx = BLOCK.contextDim();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        shapes.put("norm.weight", new long[] {c});
        shapes.put("norm.bias", new long[] {c});
        shapes.put("proj_in.weight", new long[] {inner, c});
        shapes.put("proj_in.bias", new long[] {inner});
        for (int i = 0; i < BLOCK.layers(); i++) {
            String b = "transformer_blocks." + i + ".";
            for (String nrm : new String[] {"norm1", "norm2", "norm3"}) {
                shapes.put(b + nrm + ".weight", new long[] {inner});
                shapes.put(b + nrm + ".bias", new long[] {inner});
            }
            for (String a : new String[] {"attn1", "attn2"}) {
                long kv = a.equals("attn1") ? inner : ctx;
                shapes.put(b + a + ".to_q.weight", new long[] {inner, inner});
                shapes.put(b + a + ".to_k.weight", new long[] {inner, kv});
                shapes.put(b + a + ".to_v.weight", new long[] {inner, kv});
                shapes.put(b + a + ".to_out.0.weight", new long[] {inner, inner});
                shapes.put(b + a + ".to_out.0.bias", new long[] {inner});
            }
            shapes.put(b + "ff.net.0.proj.weight", new long[] {8 * inner, inner});
            shapes.put(b + "ff.net.0.proj.bias", new long[] {8 * inner});
            shapes.put(b + "ff.net.2.weight", new long[] {inner, 4 * inner});
            shapes.put(b + "ff.net.2.bias", new long[] {inner});
        }
        shapes.put("proj_out.weight", new long[] {c, inner});
        shapes.put("proj_out.bias", new long[] {c});
        Map<String, Tensor> w = new LinkedHashMap<>();
        shapes.forEach((key, shape) -> {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            float[] v;
            if (shape.length == 2) {
                v = gaussian(rnd, (int) n, 1.0 / Math.sqrt(shape[1]));
            } else {
                v = gaussian(rnd, (int) n, 0.1);
                if (key.contains("norm") && key.endsWith(".weight")) {
                    for (int i = 0; i < v.length; i++) {
                        v[i] += 1.0f;
                    }
                }
            }
            w.put(key, Tensor.of(v, shape));
        });
        return w;
    }

    static org.bytedeco.pytorch.Tensor torchOf(float[] v, long... shape) {
        org.bytedeco.pytorch.Tensor t = torch.empty(shape);
        t.data_ptr_float().put(v);
        return t;
    }

    /**
     * diffusers' Transformer2DModel forward (continuous input, linear projections; transformer_2d.py,
     * attention.py BasicTransformerBlock + FeedForward/GEGLU, attention_processor.py AttnProcessor2_0) written
     * with LibTorch's functional ops in fp32, as diffusers runs it on the CPU.
     */
    static final class TorchTransformer2D implements AutoCloseable {
        private final Map<String, org.bytedeco.pytorch.Tensor> w = new LinkedHashMap<>();
        private final Map<String, TensorOptional> opt = new LinkedHashMap<>();
        private final Transformer2DBlock.Config config;

        TorchTransformer2D(Map<String, Tensor> weights, Transformer2DBlock.Config config) {
            if (!config.useLinearProjection()) {
                throw new IllegalArgumentException("the LibTorch block is written for linear projections only");
            }
            this.config = config;
            weights.forEach((k, t) -> {
                org.bytedeco.pytorch.Tensor tt = torchOf(t.toFloatArray(), t.shape());
                w.put(k, tt);
                opt.put(k, new TensorOptional(tt));
            });
        }

        private org.bytedeco.pytorch.Tensor w(String key) {
            org.bytedeco.pytorch.Tensor t = w.get(key);
            if (t == null) {
                throw new IllegalArgumentException("no weight " + key);
            }
            return t;
        }

        private TensorOptional b(String key) {
            TensorOptional t = opt.get(key);
            if (t == null) {
                throw new IllegalArgumentException("no weight " + key);
            }
            return t;
        }

        /** x [N, C, H, W], context [N, 77, D] -> [N, C, H, W]; temporaries belong to the caller's PointerScope. */
        org.bytedeco.pytorch.Tensor forward(org.bytedeco.pytorch.Tensor x, org.bytedeco.pytorch.Tensor context) {
            long n = x.size(0);
            long c = x.size(1);
            long h = x.size(2);
            long wd = x.size(3);
            org.bytedeco.pytorch.Tensor s = torch.group_norm(x, config.groups(), b("norm.weight"), b("norm.bias"), 1e-6,
                    false);                                                                         // [N, C, H, W]
            s = s.permute(0, 2, 3, 1).reshape(n, h * wd, c);                                      // [N, HW, C]
            s = torch.linear(s, w("proj_in.weight"), b("proj_in.bias"));                          // [N, HW, inner]
            for (int i = 0; i < config.layers(); i++) {
                String p = "transformer_blocks." + i + ".";
                s = attention(p + "attn1.", layerNorm(p + "norm1.", s), null).add(s);
                s = attention(p + "attn2.", layerNorm(p + "norm2.", s), context).add(s);
                org.bytedeco.pytorch.Tensor f = torch.linear(layerNorm(p + "norm3.", s), w(p + "ff.net.0.proj.weight"),
                        b(p + "ff.net.0.proj.bias"));                                                // [N, HW, 8 inner]
                TensorVector hg = f.chunk(2, -1);
                f = hg.get(0).mul(torch.gelu(hg.get(1), "none"));                                   // [N, HW, 4 inner]
                s = torch.linear(f, w(p + "ff.net.2.weight"), b(p + "ff.net.2.bias")).add(s);      // [N, HW, inner]
            }
            s = torch.linear(s, w("proj_out.weight"), b("proj_out.bias"));                        // [N, HW, C]
            s = s.reshape(n, h, wd, c).permute(0, 3, 1, 2).contiguous();                          // [N, C, H, W]
            return s.add(x);
        }

        private org.bytedeco.pytorch.Tensor layerNorm(String prefix, org.bytedeco.pytorch.Tensor x) {
            return torch.layer_norm(x, new long[] {x.size(-1)}, b(prefix + "weight"), b(prefix + "bias"), 1e-5, false);
        }

        private org.bytedeco.pytorch.Tensor attention(String prefix, org.bytedeco.pytorch.Tensor x,
                                                      org.bytedeco.pytorch.Tensor context) {
            org.bytedeco.pytorch.Tensor ctx = context == null ? x : context;
            long n = x.size(0);
            long heads = config.heads();
            long d = config.headDim();
            org.bytedeco.pytorch.Tensor q = torch.linear(x, w(prefix + "to_q.weight")).reshape(n, -1, heads, d).transpose(1, 2);
            org.bytedeco.pytorch.Tensor k = torch.linear(ctx, w(prefix + "to_k.weight")).reshape(n, -1, heads, d).transpose(1, 2);
            org.bytedeco.pytorch.Tensor v = torch.linear(ctx, w(prefix + "to_v.weight")).reshape(n, -1, heads, d).transpose(1, 2);
            org.bytedeco.pytorch.Tensor o = torch.scaled_dot_product_attention(q, k, v, new TensorOptional(), 0.0, false,
                    new DoubleOptional(1.0 / Math.sqrt(d)), false);                                // [N, heads, L, d]
            o = o.transpose(1, 2).reshape(n, -1, heads * d);                                       // [N, L, inner]
            return torch.linear(o, w(prefix + "to_out.0.weight"), b(prefix + "to_out.0.bias"));
        }

        @Override
        public void close() {
            opt.values().forEach(TensorOptional::close);
            w.values().forEach(org.bytedeco.pytorch.Tensor::close);
        }
    }

    /** The 640-level Transformer2DModel in sdxl4j. */
    @Benchmark
    public Tensor transformerSdxl4j(TransformerState s) {
        Tensor y = s.block.forward(s.x, s.context);
        y.close();
        return y;
    }

    /** The same block, same weights and inputs, in LibTorch functional ops (temporaries freed per call). */
    @Benchmark
    public long transformerLibtorch(TransformerState s) {
        try (PointerScope scope = new PointerScope()) {
            return s.torchBlock.forward(s.tx, s.tcontext).numel();
        }
    }
}
