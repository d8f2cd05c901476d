package io.sdxl4j.cli;

import io.sdxl4j.Ops;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.io.SafetensorsFile;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The sdxl4j command line. */
@Command(name = "sdxl4j", mixinStandardHelpOptions = true, version = "sdxl4j 0.1.0",
        description = "Stable Diffusion XL for Java on a native C++/CUDA core.",
        subcommands = {Generate.class, Main.Smoke.class, Main.Inspect.class, Main.Memory.class})
public final class Main implements Callable<Integer> {

    public static void main(String[] args) {
        CommandLine cli = new CommandLine(new Main());
        cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
            if (e instanceof SdxlException) {
                cmd.getErr().println("error: " + e.getMessage());
                return 2;
            }
            throw e;
        });
        System.exit(cli.execute(args));
    }

    @Override
    public Integer call() {
        CommandLine.usage(this, System.out);
        return 0;
    }

    /** Loads the native core and runs a few ops at SDXL widths: the check that an install works. */
    @Command(name = "smoke", description = "Load the native core and run SDXL-width ops on the CPU.")
    static final class Smoke implements Callable<Integer> {
        @Option(names = "--seed", defaultValue = "0", description = "seed of the random inputs")
        long seed;

        @Override
        public Integer call() {
            System.out.println("sdxl4j native core " + Sdxl4j.version() + ", " + Sdxl4j.numThreads() + " CPU threads");
            System.out.println("CUDA: " + (Sdxl4j.cudaCompiled() ? "compiled in; " : "") + Sdxl4j.cudaStatus());
            Random rnd = new Random(seed);
            // A ResnetBlock2D-like step at SDXL's first level: GroupNorm(32) + SiLU + 3x3 conv, 320 channels, 32x32.
            try (Tensor x = random(rnd, 1, 320, 32, 32);
                 Tensor w = random(rnd, 320, 320, 3, 3);
                 Tensor b = random(rnd, 320)) {
                long t0 = System.nanoTime();
                try (Tensor n = Ops.groupNorm(x, 32, null, null, 1e-5f);
                     Tensor a = Ops.silu(n);
                     Tensor y = Ops.conv2d(a, w, b, 1, 1)) {
                    System.out.printf("group_norm + silu + conv2d 3x3 %s -> %s in %.1f ms%n",
                            Arrays.toString(x.shape()), Arrays.toString(y.shape()), (System.nanoTime() - t0) / 1e6);
                }
            }
            // Cross-attention at SDXL's 640-channel level: 10 heads x 64, 1024 queries, 77 text tokens.
            try (Tensor q = random(rnd, 2, 10, 1024, 64);
                 Tensor k = random(rnd, 2, 10, 77, 64);
                 Tensor v = random(rnd, 2, 10, 77, 64)) {
                long t0 = System.nanoTime();
                try (Tensor o = Ops.attention(q, k, v, null, false, 0f)) {
                    System.out.printf("attention %s x %s -> %s in %.1f ms%n", Arrays.toString(q.shape()),
                            Arrays.toString(k.shape()), Arrays.toString(o.shape()), (System.nanoTime() - t0) / 1e6);
                    float[] out = o.toFloatArray();
                    for (float f : out) {
                        if (!Float.isFinite(f)) {
                            System.err.println("smoke check FAILED: non-finite attention output");
                            return 1;
                        }
                    }
                }
            }
            System.out.println("smoke check passed");
            return 0;
        }

        private static Tensor random(Random rnd, long... shape) {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            float[] data = new float[(int) n];
            for (int i = 0; i < data.length; i++) {
                data[i] = (float) rnd.nextGaussian();
            }
            return Tensor.of(data, shape);
        }
    }

    /** Loads model components and reports the process's peak resident memory (VmHWM). */
    @Command(name = "memory", description = "Load a diffusers model folder (or build the real SDXL UNet with random "
            + "weights) and report peak resident memory.")
    static final class Memory implements Callable<Integer> {
        @Option(names = "--model", description = "a diffusers SDXL folder: loads text encoders, UNet and VAE")
        Path model;

        @Option(names = "--variant", description = "weight variant, e.g. fp16")
        String variant;

        @Option(names = "--random-unet", description = "build a UNet from this config.json with random weights")
        Path randomUnet;

        @Option(names = "--generations", defaultValue = "0",
                description = "with --model: run this many small generations in a row and report resident memory (VmRSS) as it goes")
        int generations;

        @Override
        public Integer call() throws Exception {
            long before = peakRss();
            long t0 = System.nanoTime();
            if (model != null) {
                var folder = io.sdxl4j.models.DiffusersFolder.open(model);
                try (var te1 = folder.componentClass("text_encoder").isPresent() ? folder.textEncoder(variant) : null;
                     var te2 = folder.textEncoder2(variant);
                     var unet = folder.unet(variant);
                     var vae = folder.vae(variant)) {
                    report("loaded " + model, before, t0);
                }
                if (generations > 0) {
                    generations(model);
                }
            }
            if (randomUnet != null) {
                var config = io.sdxl4j.models.UNetConfig.read(randomUnet);
                try (var unet = io.sdxl4j.models.UNet2DConditionModel.random(config, 0)) {
                    report("built UNet " + randomUnet + " with random fp32 weights", before, t0);
                }
            }
            return 0;
        }

        // Memory must stay flat over many requests: resident set and the native core's live allocations.
        private void generations(Path folder) throws Exception {
            try (io.sdxl4j.StableDiffusionXL pipe = io.sdxl4j.StableDiffusionXL.load(folder,
                    io.sdxl4j.PipelineOptions.defaults().withVariant(variant))) {
                io.sdxl4j.GenerationRequest r = io.sdxl4j.GenerationRequest.builder().prompt("a photo of a cat")
                        .steps(4).seed(0L).build();
                pipe.generate(r);
                System.gc();
                long first = rss();
                long t0 = System.nanoTime();
                for (int i = 1; i <= generations; i++) {
                    pipe.generate(r.toBuilder().seed((long) i).build());
                    if (i % Math.max(1, generations / 10) == 0 || i == generations) {
                        System.out.printf("generation %4d: VmRSS %.1f MiB (%+.1f MiB since the first), Java heap committed %.1f MiB, "
                                + "native live %d bytes%n", i, rss() / 1048576.0, (rss() - first) / 1048576.0,
                                Runtime.getRuntime().totalMemory() / 1048576.0, io.sdxl4j.Sdxl4j.liveAllocatedBytes(io.sdxl4j.Device.CPU));
                    }
                }
                System.out.printf("%d generations in %.1f s%n", generations, (System.nanoTime() - t0) / 1e9);
            }
        }

        /** VmRSS of this process in bytes (Linux). */
        static long rss() throws java.io.IOException {
            for (String line : java.nio.file.Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
            return -1;
        }

        private static void report(String what, long before, long t0) throws Exception {
            System.out.printf("%s in %.1f s: peak RSS %.1f MiB (%.1f MiB before)%n", what, (System.nanoTime() - t0) / 1e9,
                    peakRss() / 1048576.0, before / 1048576.0);
        }

        /** VmHWM of this process in bytes (Linux). */
        static long peakRss() throws java.io.IOException {
            for (String line : java.nio.file.Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
            return -1;
        }
    }

    /** Lists the tensors of a .safetensors file. */
    @Command(name = "inspect", description = "List the tensors of a .safetensors file (validated strictly).")
    static final class Inspect implements Callable<Integer> {
        @Parameters(paramLabel = "FILE", description = "a .safetensors file")
        Path file;

        @Override
        public Integer call() {
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                f.metadata().forEach((k, v) -> System.out.println("metadata " + k + " = " + v));
                for (String name : f.names()) {
                    System.out.println(name + " " + f.dtypeName(name) + " " + Arrays.toString(f.shape(name)));
                }
            }
            return 0;
        }
    }

}
