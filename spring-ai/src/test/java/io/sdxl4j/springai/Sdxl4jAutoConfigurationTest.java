package io.sdxl4j.springai;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.sdxl4j.DType;
import io.sdxl4j.Device;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.ai.image.ImageModel;
import org.springframework.ai.image.ImagePrompt;
import org.springframework.ai.image.ImageResponse;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;

/**
 * The Spring Boot auto-configuration as an application gets it (from the AutoConfiguration.imports file): no
 * {@code sdxl4j.model}, no bean; with it, an {@link ImageModel} loaded and configured from the properties whose
 * images equal the Java API's, closed with the context; bad properties fail the startup with a clear message.
 */
class Sdxl4jAutoConfigurationTest {
    private static Path modelFolder;
    private static StableDiffusionXL javaApi;

    private final ApplicationContextRunner runner = new ApplicationContextRunner()
            .withConfiguration(AutoConfigurations.of(Sdxl4jAutoConfiguration.class));

    @BeforeAll
    static void load() {
        modelFolder = Sdxl4jImageModelTest.modelFolder();
        javaApi = StableDiffusionXL.load(modelFolder);
    }

    @AfterAll
    static void close() {
        javaApi.close();
    }

    @Test
    void isListedForSpringBoot() throws Exception {
        try (var in = getClass().getResourceAsStream(
                "/META-INF/spring/org.springframework.boot.autoconfigure.AutoConfiguration.imports")) {
            assertThat(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).trim())
                    .isEqualTo(Sdxl4jAutoConfiguration.class.getName());
        }
    }

    @Test
    void withoutAModelThereIsNoBean() {
        runner.run(context -> assertThat(context).hasNotFailed().doesNotHaveBean(ImageModel.class));
    }

    @Test
    void theBeanComesFromThePropertiesAndGeneratesTheJavaApisImages() {
        AtomicReference<StableDiffusionXL> loaded = new AtomicReference<>();
        runner.withPropertyValues("sdxl4j.model=" + modelFolder, "sdxl4j.device=cpu", "sdxl4j.dtype=f32",
                        "sdxl4j.watermark=false", "sdxl4j.options.steps=3", "sdxl4j.options.width=56",
                        "sdxl4j.options.height=40", "sdxl4j.options.guidance-scale=6.5",
                        "sdxl4j.options.scheduler=DPM++ 2M Karras", "sdxl4j.options.negative-prompt=blurry",
                        "sdxl4j.options.seed=1234")
                .run(context -> {
                    assertThat(context).hasNotFailed().hasSingleBean(ImageModel.class);
                    Sdxl4jImageModel model = context.getBean(Sdxl4jImageModel.class);
                    Sdxl4jProperties properties = context.getBean(Sdxl4jProperties.class);
                    assertEquals(Device.CPU, properties.getDevice());
                    assertEquals(DType.F32, properties.getDtype());
                    assertEquals(false, properties.pipelineOptions().watermark());
                    loaded.set(model.pipeline());

                    ImageResponse r = context.getBean(ImageModel.class).call(new ImagePrompt("a lighthouse at dawn"));
                    byte[] png = Sdxl4jImageModelTest.png(r.getResult());
                    BufferedImage img = Sdxl4jImageModelTest.decode(png);
                    assertEquals(56, img.getWidth());
                    assertEquals(40, img.getHeight());
                    byte[] expected = javaApi.generate(GenerationRequest.builder().prompt("a lighthouse at dawn").steps(3)
                            .size(40, 56).guidanceScale(6.5).scheduler(SchedulerKind.DPMPP_2M_KARRAS)
                            .negativePrompt("blurry").seed(1234L).watermark(false).build()).pngBytes(0);
                    assertArrayEquals(expected, png);
                });
        // closed with the context
        SdxlException closed = assertThrows(SdxlException.class,
                () -> loaded.get().generate(GenerationRequest.builder().prompt("x").steps(1).size(64, 64).build()));
        assertThat(closed.getMessage()).contains("closed");
    }

    @Test
    void badPropertiesFailTheStartupClearly() {
        runner.withPropertyValues("sdxl4j.model=" + modelFolder, "sdxl4j.options.steps=0")
                .run(context -> assertThat(context).hasFailed().getFailure().rootCause()
                        .isInstanceOf(SdxlException.class).hasMessageContaining("steps must be at least 1"));
        runner.withPropertyValues("sdxl4j.model=" + modelFolder, "sdxl4j.options.scheduler=nope")
                .run(context -> assertThat(context).hasFailed().getFailure().rootCause()
                        .hasMessageContaining("unknown scheduler \"nope\""));
        runner.withPropertyValues("sdxl4j.model=" + modelFolder.resolve("missing"))
                .run(context -> {
                    assertThat(context).hasFailed();
                    Throwable cause = context.getStartupFailure();
                    while (cause != null && !(cause instanceof SdxlException)) {
                        cause = cause.getCause();
                    }
                    assertThat(cause).isInstanceOf(SdxlException.class);
                    assertEquals(ErrorCode.NOT_FOUND, ((SdxlException) cause).code(), cause.getMessage());
                });
        runner.withPropertyValues("sdxl4j.model=" + modelFolder, "sdxl4j.device=tpu")
                .run(context -> assertThat(context).hasFailed().getFailure().hasStackTraceContaining(
                        "Failed to bind properties under 'sdxl4j.device'"));
    }

    @Test
    void anApplicationsOwnModelWins() {
        runner.withPropertyValues("sdxl4j.model=" + modelFolder)
                .withBean(Sdxl4jImageModel.class, () -> new Sdxl4jImageModel(javaApi, null))
                .run(context -> {
                    assertThat(context).hasNotFailed().hasSingleBean(ImageModel.class);
                    assertThat(context.getBean(Sdxl4jImageModel.class).pipeline()).isSameAs(javaApi);
                });
    }
}
