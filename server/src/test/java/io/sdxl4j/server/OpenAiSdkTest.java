package io.sdxl4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.errors.BadRequestException;
import com.openai.errors.NotFoundException;
import com.openai.errors.UnauthorizedException;
import com.openai.models.images.Image;
import com.openai.models.images.ImageGenerateParams;
import com.openai.models.images.ImagesResponse;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.StableDiffusionXL;
import java.awt.image.BufferedImage;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The OpenAI routes driven by the official OpenAI Java SDK, unmodified, with its base URL set to the server: images
 * come back as PNGs of the asked size and equal, pixel for pixel, the Java API's images for the same seed (our
 * extensions ride in the SDK's additional body properties). Errors reach the SDK as its typed exceptions with
 * OpenAI's error fields.
 */
class OpenAiSdkTest {
    private static final String KEY = "sk-test-sdxl4j";
    private static Server server;
    private static StableDiffusionXL javaApi;  // an independent pipeline on the same model: the oracle
    private static OpenAIClient client;

    @BeforeAll
    static void start() {
        server = TestSupport.start(ServerConfig.defaults().withApiKey(KEY), false);
        javaApi = StableDiffusionXL.load(TestSupport.tinyBase());
        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1").apiKey(KEY)
                .maxRetries(0).timeout(Duration.ofMinutes(2)).build();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
        javaApi.close();
    }

    private static BufferedImage javaApiImage(GenerationRequest r) {
        return javaApi.generate(r).image(0);
    }

    @Test
    void imagesEqualTheJavaApisForTheSameSeed() {
        ImageGenerateParams params = ImageGenerateParams.builder().prompt("a lighthouse at dusk").n(2)
                .size(ImageGenerateParams.Size.of("64x48")).responseFormat(ImageGenerateParams.ResponseFormat.B64_JSON)
                .model("dall-e-3")
                .putAdditionalBodyProperty("seed", JsonValue.from(1234))
                .putAdditionalBodyProperty("steps", JsonValue.from(4))
                .putAdditionalBodyProperty("guidance_scale", JsonValue.from(6.5))
                .putAdditionalBodyProperty("negative_prompt", JsonValue.from("blurry"))
                .putAdditionalBodyProperty("scheduler", JsonValue.from("DPM++ 2M Karras"))
                .build();
        ImagesResponse response = client.images().generate(params);
        List<Image> data = response.data().orElseThrow();
        assertEquals(2, data.size());
        assertTrue(Math.abs(response.created() - System.currentTimeMillis() / 1000) < 600, "created is a Unix time");
        for (int i = 0; i < 2; i++) {
            assertEquals("a lighthouse at dusk", data.get(i).revisedPrompt().orElseThrow());
            BufferedImage got = TestSupport.png(data.get(i).b64Json().orElseThrow(), 64, 48);
            // Image i is the Java API's image for seed + i.
            BufferedImage expected = javaApiImage(GenerationRequest.builder().prompt("a lighthouse at dusk")
                    .negativePrompt("blurry").steps(4).guidanceScale(6.5).size(48, 64).seed(1234L + i)
                    .scheduler(SchedulerKind.DPMPP_2M_KARRAS).build());
            TestSupport.assertSamePixels(expected, got, "image " + i);
        }
        assertTrue(TestSupport.differ(TestSupport.png(data.get(0).b64Json().orElseThrow(), 64, 48),
                TestSupport.png(data.get(1).b64Json().orElseThrow(), 64, 48)), "two seeds, two images");
    }

    @Test
    void defaultsAreTheJavaApisDefaults() {
        // No steps, guidance or scheduler: the Java API's defaults (50 steps, guidance 5, the model's scheduler).
        ImagesResponse response = client.images().generate(ImageGenerateParams.builder().prompt("a red cube")
                .size(ImageGenerateParams.Size.of("64x64")).putAdditionalBodyProperty("seed", JsonValue.from(7)).build());
        BufferedImage got = TestSupport.png(response.data().orElseThrow().get(0).b64Json().orElseThrow(), 64, 64);
        TestSupport.assertSamePixels(javaApiImage(GenerationRequest.builder().prompt("a red cube").size(64, 64)
                .seed(7L).build()), got, "default request");
    }

    @Test
    void modelsAreListed() {
        var models = client.models().list().data();
        assertEquals(1, models.size());
        assertEquals("tiny-sdxl-base", models.get(0).id());
        assertEquals("sdxl4j", models.get(0).ownedBy());
        assertEquals("tiny-sdxl-base", client.models().retrieve("tiny-sdxl-base").id());
    }

    @Test
    void errorsReachTheSdkAsOpenAiErrors() {
        BadRequestException size = assertThrows(BadRequestException.class, () -> client.images().generate(
                ImageGenerateParams.builder().prompt("x").size(ImageGenerateParams.Size.of("64x60")).build()));
        assertEquals("size", size.param().orElseThrow());
        assertEquals("invalid_request_error", size.type().orElseThrow());
        assertTrue(size.getMessage().contains("multiples of 8"), size.getMessage());

        BadRequestException url = assertThrows(BadRequestException.class, () -> client.images().generate(
                ImageGenerateParams.builder().prompt("x").size(ImageGenerateParams.Size.of("64x64"))
                        .responseFormat(ImageGenerateParams.ResponseFormat.URL).build()));
        assertEquals("response_format", url.param().orElseThrow());

        BadRequestException sampler = assertThrows(BadRequestException.class, () -> client.images().generate(
                ImageGenerateParams.builder().prompt("x").size(ImageGenerateParams.Size.of("64x64"))
                        .putAdditionalBodyProperty("scheduler", JsonValue.from("no such sampler")).build()));
        assertEquals("scheduler", sampler.param().orElseThrow());

        NotFoundException model = assertThrows(NotFoundException.class, () -> client.images().generate(
                ImageGenerateParams.builder().prompt("x").model("no-such-model").build()));
        assertEquals("model_not_found", model.code().orElseThrow());

        OpenAIClient wrongKey = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1")
                .apiKey("sk-wrong").maxRetries(0).build();
        try {
            UnauthorizedException e = assertThrows(UnauthorizedException.class, () -> wrongKey.models().list());
            assertEquals("invalid_api_key", e.code().orElseThrow());
        } finally {
            wrongKey.close();
        }
    }
}
