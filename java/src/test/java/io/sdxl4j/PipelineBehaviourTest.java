package io.sdxl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the pipelines do beyond the reference numbers: bad requests rejected with a clear INVALID_ARGUMENT before
 * any model runs, cancellation, nothing leaked (native allocation count back to its start after runs, cancelled
 * and failed runs included), the A1111 syntax, generator continuation, loading by Hugging Face repo id, and the
 * seed walkthrough's other calls (aspect ratios, scheduler swap, fp16 variant, watermark switch).
 */
class PipelineBehaviourTest {
    private static StableDiffusionXL base;
    private static Path baseFolder;
    private static Path refinerFolder;

    @BeforeAll
    static void load() {
        baseFolder = ReferenceData.root().resolve("models/tiny-sdxl-base");
        refinerFolder = ReferenceData.root().resolve("models/tiny-sdxl-refiner");
        base = StableDiffusionXL.load(baseFolder);
    }

    @AfterAll
    static void close() {
        base.close();
    }

    private static GenerationRequest.Builder small() {
        return GenerationRequest.builder().prompt("a photo of a cat").steps(3).size(64, 64).seed(1L);
    }

    private static void rejects(GenerationRequest r, String part) {
        rejects(() -> base.generate(r), part);
    }

    private static void rejects(Runnable call, String part) {
        SdxlException e = assertThrows(SdxlException.class, call::run);
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(part), "message \"" + e.getMessage() + "\" lacks \"" + part + "\"");
    }

    @Test
    void badRequestsAreRejectedBeforeAnyModelRuns() {
        AtomicInteger steps = new AtomicInteger();
        StepCallback count = s -> steps.incrementAndGet();
        rejects(small().size(64, 60).build(), "multiples of 8");
        rejects(small().size(0, 64).build(), "multiples of 8");
        rejects(small().steps(0).build(), "steps must be");
        rejects(small().denoisingEnd(1.0).build(), "denoising end must be in (0, 1)");
        rejects(small().denoisingEnd(0.0).build(), "denoising end");
        rejects(small().guidanceRescale(1.5).build(), "guidance rescale");
        rejects(small().imagesPerPrompt(0).build(), "images per prompt");
        rejects(small().prompts(List.of("a", "b")).negativePrompts(List.of("x", "y", "z")).build(), "3 negative prompts for 2 prompts");
        rejects(small().prompts(List.of("a", "b")).prompts2(List.of("x")).build(), "1 prompt_2s for 2 prompts");
        rejects(small().prompt(null).build(), "no prompt");
        rejects(small().latents(new float[10]).build(), "initial latents have 10 values");
        rejects(small().image(ImageInput.pixels(new float[3 * 64 * 64], 1, 64, 64)).build(), "use Refiner");
        rejects(small().size(200, 256).watermark(true).build(), "too small for the SDXL invisible watermark");
        try (Refiner refiner = base.loadRefiner(refinerFolder, PipelineOptions.defaults())) {
            ImageInput img = ImageInput.pixels(new float[3 * 64 * 64], 1, 64, 64);
            GenerationRequest.Builder r = GenerationRequest.builder().prompt("x").steps(4).image(img);
            rejects(() -> refiner.generate(r.strength(0.0).build()), "strength must be in (0, 1]");
            rejects(() -> refiner.generate(r.strength(1.5).build()), "strength must be in (0, 1]");
            rejects(() -> refiner.generate(r.strength(0.1).build()), "leaves no step");
            rejects(() -> refiner.generate(r.strength(0.5).denoisingStart(1.2).build()), "denoising start must be in (0, 1)");
            rejects(() -> refiner.generate(r.denoisingStart(0.8).denoisingEnd(0.5).build()), "must be below denoising end");
            rejects(() -> refiner.generate(GenerationRequest.builder().prompt("x").build()), "needs an image");
            rejects(() -> refiner.generate(r.strength(0.5).denoisingStart(null).denoisingEnd(null).size(128, 64).build()), "input image's size");
            assertEquals(64, refiner.generate(r.strength(0.5).denoisingStart(null).denoisingEnd(null).size(64, 64).build()).width());
            rejects(() -> refiner.generate(GenerationRequest.builder().prompt("x")
                    .image(ImageInput.pixels(new float[3 * 60 * 64], 1, 60, 64)).build()), "multiple of 8");
        }
        assertEquals(0, steps.get());
    }

    @Test
    void missingOrIncompleteModelFoldersAreClearErrors(@TempDir Path dir) throws IOException {
        SdxlException none = assertThrows(SdxlException.class, () -> StableDiffusionXL.load(dir.resolve("nothing")));
        assertEquals(ErrorCode.NOT_FOUND, none.code());
        assertTrue(none.getMessage().contains("model_index.json"), none.getMessage());
        // a folder whose model_index.json names a unet that is not there
        Path broken = dir.resolve("broken");
        Files.createDirectories(broken);
        Files.copy(baseFolder.resolve("model_index.json"), broken.resolve("model_index.json"));
        copyTree(baseFolder.resolve("tokenizer"), broken.resolve("tokenizer"));
        copyTree(baseFolder.resolve("text_encoder"), broken.resolve("text_encoder"));
        copyTree(baseFolder.resolve("tokenizer_2"), broken.resolve("tokenizer_2"));
        copyTree(baseFolder.resolve("text_encoder_2"), broken.resolve("text_encoder_2"));
        SdxlException e = assertThrows(SdxlException.class, () -> StableDiffusionXL.load(broken));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains("unet"), e.getMessage());
        // a damaged tokenizer file: a clear error, not a crash
        copyTree(baseFolder.resolve("unet"), broken.resolve("unet"));
        copyTree(baseFolder.resolve("vae"), broken.resolve("vae"));
        copyTree(baseFolder.resolve("scheduler"), broken.resolve("scheduler"));
        Files.writeString(broken.resolve("tokenizer").resolve("vocab.json"), "{\"a\": 1, ");
        SdxlException vocab = assertThrows(SdxlException.class, () -> StableDiffusionXL.load(broken));
        assertTrue(vocab.getMessage().contains("vocab.json"), vocab.getMessage());
        // a truncated weight file
        copyTree(baseFolder.resolve("tokenizer"), broken.resolve("tokenizer.ok"));
        Files.delete(broken.resolve("tokenizer").resolve("vocab.json"));
        Files.copy(baseFolder.resolve("tokenizer/vocab.json"), broken.resolve("tokenizer/vocab.json"));
        Path weights = broken.resolve("vae/diffusion_pytorch_model.safetensors");
        byte[] all = Files.readAllBytes(weights);
        Files.write(weights, java.util.Arrays.copyOf(all, all.length / 2));
        SdxlException truncated = assertThrows(SdxlException.class, () -> StableDiffusionXL.load(broken));
        assertEquals(ErrorCode.BAD_MODEL_FILE, truncated.code(), truncated.getMessage());
        // the refiner folder loaded as a base pipeline: its UNet wants 5 time ids
        SdxlException wrongKind = assertThrows(SdxlException.class, () -> {
            try (Refiner r = Refiner.load(baseFolder);
                 StableDiffusionXL asBase = StableDiffusionXL.load(refinerFolder)) {
                asBase.generate(small().build());
            }
        });
        assertTrue(wrongKind.getMessage().contains("time ids"), wrongKind.getMessage());
    }

    private static void copyTree(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (var s = Files.list(from)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                Files.copy(p, to.resolve(p.getFileName()));
            }
        }
    }

    @Test
    void cancellationStopsBetweenStepsAndFreesEverything() {
        GenerationRequest r = small().steps(6).build();
        base.generate(r);  // warm up lazily allocated state
        long before = Sdxl4j.liveAllocatedBytes(Device.CPU);
        CancellationToken token = new CancellationToken();
        List<Integer> seen = new ArrayList<>();
        try (Generator g = Generator.seeded(5)) {
            SdxlException e = assertThrows(SdxlException.class, () -> base.generate(r, g, s -> {
                seen.add(s.step());
                if (s.step() == 2) {
                    token.cancel();
                }
            }, token));
            assertEquals(ErrorCode.CANCELLED, e.code());
        }
        assertEquals(List.of(1, 2), seen);
        // a callback that throws stops the run too
        assertThrows(IllegalStateException.class, () -> base.generate(r, null, s -> {
            throw new IllegalStateException("stop");
        }, null));
        assertEquals(before, Sdxl4j.liveAllocatedBytes(Device.CPU), "native bytes still held after cancelled runs");
        // and the pipeline still works
        assertTrue(base.generate(r).hasImages());
    }

    @Test
    void repeatedGenerationsGiveBackEveryNativeAllocation() {
        GenerationRequest r = small().steps(2).build();
        base.generate(r);
        long before = Sdxl4j.liveAllocatedBytes(Device.CPU);
        for (int i = 0; i < 20; i++) {
            base.generate(r.toBuilder().seed((long) i).build());
        }
        assertEquals(before, Sdxl4j.liveAllocatedBytes(Device.CPU));
    }

    @Test
    void modelOffloadLoadsEachComponentOnlyWhileItRunsAndGivesTheSameImage() {
        try (StableDiffusionXL offloaded = StableDiffusionXL.load(baseFolder, PipelineOptions.defaults().withCpuOffload(true))) {
            SdxlEngine e = offloaded.engine();
            assertFalse(e.unet.loaded() || e.vae.loaded() || e.encoders.get(0).slot().loaded(), "nothing resident after load");
            List<Boolean> unetDuringLoop = new ArrayList<>();
            GenerationResult r;
            try (Generator g = Generator.seeded(1)) {
                r = offloaded.generate(small().build(), g, s -> unetDuringLoop.add(e.unet.loaded() && !e.vae.loaded()
                        && !e.encoders.get(1).slot().loaded()), null);
            }
            assertEquals(List.of(true, true, true), unetDuringLoop, "only the UNet is resident during the loop");
            assertFalse(e.unet.loaded() || e.vae.loaded() || e.encoders.get(1).slot().loaded(), "all released after");
            assertArrayEquals(base.generate(small().build()).pixels(), r.pixels(), 0f);
        }
        assertTrue(base.engine().unet.loaded(), "without offload the UNet stays loaded");
    }

    @Test
    void pngCarriesTheGenerationParameters(@TempDir Path dir) {
        GenerationResult r = base.generate(small().negativePrompt("blurry, dark").scheduler(SchedulerKind.DPMPP_2M_KARRAS).seed(42L).build());
        Path png = dir.resolve("out.png");
        r.savePng(0, png);
        var p = io.sdxl4j.images.GenerationParameters.parse(io.sdxl4j.images.Images.readPngText(png).get("parameters"));
        assertEquals("a photo of a cat", p.prompt());
        assertEquals("blurry, dark", p.negativePrompt());
        assertEquals(42L, p.seed().getAsLong());
        assertEquals(3, p.steps().getAsInt());
        assertEquals("DPM++ 2M Karras", p.sampler().orElseThrow());
        assertEquals(64, p.width().getAsInt());
        assertEquals(14, SchedulerKind.compatibles().size());
    }

    @Test
    void concurrentGenerationsGiveTheSameImagesAsSequentialOnes() throws Exception {
        GenerationRequest a = small().seed(11L).build();
        GenerationRequest b = small().prompt("a red fox").seed(12L).scheduler(SchedulerKind.EULER_A).build();
        float[] wantA = base.generate(a).pixels();
        float[] wantB = base.generate(b).pixels();
        var pool = java.util.concurrent.Executors.newFixedThreadPool(4);
        try {
            List<java.util.concurrent.Future<float[]>> futures = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                GenerationRequest r = i % 2 == 0 ? a : b;
                futures.add(pool.submit(() -> base.generate(r).pixels()));
            }
            for (int i = 0; i < futures.size(); i++) {
                assertArrayEquals(i % 2 == 0 ? wantA : wantB, futures.get(i).get(), 0f, "concurrent run " + i);
            }
        } finally {
            pool.shutdown();
        }
    }

    @Test
    void sameSeedSameImageAndTheGeneratorContinues() {
        GenerationResult a = base.generate(small().build());
        GenerationResult b = base.generate(small().build());
        assertArrayEquals(a.pixels(), b.pixels(), 0f);
        try (Generator g = Generator.seeded(1)) {
            GenerationResult first = base.generate(small().build(), g, null, null);
            GenerationResult second = base.generate(small().build(), g, null, null);
            assertArrayEquals(a.pixels(), first.pixels(), 0f);
            assertFalse(java.util.Arrays.equals(first.latents(), second.latents()), "the stream must have moved on");
        }
    }

    @Test
    void a1111SyntaxWithoutEmphasisEqualsPlainAndEmphasisChangesIt() {
        Recorder plain = new Recorder();
        Recorder a1111 = new Recorder();
        Recorder weighted = new Recorder();
        GenerationRequest.Builder r = small().negativePrompt("blurry");
        try (Generator g1 = Generator.seeded(3); Generator g2 = Generator.seeded(3); Generator g3 = Generator.seeded(3)) {
            base.generate(r.build(), g1, plain);
            base.generate(r.syntax(PromptSyntax.A1111).build(), g2, a1111);
            base.generate(r.prompt("a photo of a (cat:1.5)").build(), g3, weighted);
        }
        // same ids (bos, tokens, eos, padding per tokenizer) and weights of 1: the same conditioning, bit for bit
        assertArrayEquals(plain.cond.embeds(), a1111.cond.embeds(), 0f);
        assertArrayEquals(plain.cond.pooled(), a1111.cond.pooled(), 0f);
        assertFalse(java.util.Arrays.equals(plain.cond.embeds(), weighted.cond.embeds()));
        // a prompt of more than 75 tokens becomes two chunks: 154 positions
        Recorder longer = new Recorder();
        String many = "cat, ".repeat(60);
        try (Generator g = Generator.seeded(3)) {
            base.generate(small().prompt(many).syntax(PromptSyntax.A1111).build(), g, longer);
        }
        assertEquals(154, longer.cond.tokens());
    }

    @Test
    void loadsByRepoIdFromTheHuggingFaceCacheLayout(@TempDir Path hub) throws IOException {
        Path repo = hub.resolve("models--tiny--sdxl-base");
        String commit = "0123456789abcdef0123456789abcdef01234567";
        Files.createDirectories(repo.resolve("refs"));
        Files.writeString(repo.resolve("refs/main"), commit);
        Files.createDirectories(repo.resolve("snapshots"));
        Files.createSymbolicLink(repo.resolve("snapshots").resolve(commit), baseFolder.toAbsolutePath());
        Path resolved = new io.sdxl4j.models.HuggingFaceCache(hub).resolve("tiny/sdxl-base");
        try (StableDiffusionXL p = StableDiffusionXL.load(resolved)) {
            assertArrayEquals(base.generate(small().build()).pixels(), p.generate(small().build()).pixels(), 0f);
        }
    }

    @Test
    void seedWalkthroughCalls() {
        // aspect ratio buckets (1344x768 and 768x1344 scaled to the tiny model's 8x latent grid)
        GenerationResult wide = base.generate(small().size(96, 168).build());
        assertEquals(168, wide.width());
        assertEquals(96, wide.height());
        assertEquals(wide.count(), wide.images().size());
        // scheduler swap: Heun and DDIM from the folder's config, by name as users write them
        double[] heun = base.generate(small().scheduler(SchedulerKind.fromName("HeunDiscreteScheduler")).build()).timesteps();
        assertEquals(5, heun.length);  // 2nd order: 3 steps -> 5 evaluations
        assertEquals("DDIM", base.generate(small().scheduler(SchedulerKind.fromName("ddim")).build()).schedulerName());
        assertEquals(SchedulerKind.DPMPP_2M_KARRAS, SchedulerKind.fromName("DPM++ 2M Karras"));
        // fp16 variant: the fp32 weights rounded to fp16 give nearly the same image
        try (StableDiffusionXL fp16 = StableDiffusionXL.load(baseFolder, PipelineOptions.defaults().withVariant("fp16"))) {
            double d = ReferenceData.maxAbsDiff(base.generate(small().build()).pixels(), fp16.generate(small().build()).pixels());
            assertTrue(d > 0 && d < 2e-2, "fp16 variant vs fp32: " + d);
        }
        // the watermark switch: on at 256x256 changes the image, off leaves diffusers' plain output
        GenerationResult on = base.generate(small().size(256, 256).steps(1).build());
        GenerationResult off = base.generate(small().size(256, 256).steps(1).watermark(false).build());
        assertNotEquals(0.0, ReferenceData.maxAbsDiff(on.pixels(), off.pixels()));
        assertArrayEquals(on.latents(), off.latents(), 0f);
        // CUDA without a device (this machine) is a clear DEVICE_ERROR, and fp16 on the CPU is refused
        if (!Sdxl4j.cudaAvailable()) {
            SdxlException cuda = assertThrows(SdxlException.class,
                    () -> StableDiffusionXL.load(baseFolder, PipelineOptions.defaults().withDevice(Device.CUDA)));
            assertEquals(ErrorCode.DEVICE_ERROR, cuda.code());
        }
        SdxlException half = assertThrows(SdxlException.class,
                () -> StableDiffusionXL.load(baseFolder, PipelineOptions.defaults().withDtype(DType.F16)));
        assertEquals(ErrorCode.UNSUPPORTED, half.code());
    }

    /** Step-0 conditioning, as PipelineReferenceTest records it. */
    static final class Recorder implements StepCallback, SdxlEngine.ConditioningObserver {
        SdxlEngine.Cond cond;

        @Override
        public void onStep(StepInfo s) {}

        @Override
        public void observe(SdxlEngine.Cond c, float[] ids, int perRow) {
            cond = c;
        }
    }
}
