package io.sdxl4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.LoraMode;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.PromptSyntax;
import io.sdxl4j.StableDiffusionXL;
import io.sdxl4j.images.GenerationParameters;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A1111 prompt tags {@code <lora:NAME:WEIGHT>} on a server started with a LoRA folder: each request gets exactly the
 * Java API's image with those LoRA files loaded (unfused) at those weights, only for that request; the infotext
 * keeps the tags and adds "Lora hashes"; names that are not in the folder, files that are no LoRA, and tags in the
 * negative prompt are 400s naming the problem. The LoRA files are the reference LoRAs made for the tiny base.
 */
class LoraRequestTest {
    @TempDir
    static Path folder;
    private static Server server;
    private static StableDiffusionXL javaApi;
    private static Path style;
    private static Path detail;

    @BeforeAll
    static void start() throws IOException {
        Path lora = TestSupport.reference().resolve("cases/lora");
        style = Files.copy(lora.resolve("kohya_sgm_fp16.lora.safetensors"), folder.resolve("style.safetensors"));
        Files.createDirectories(folder.resolve("sub"));
        detail = Files.copy(lora.resolve("peft_fp32.lora.safetensors"), folder.resolve("sub/detail.safetensors"));
        Files.write(folder.resolve("broken.safetensors"), new byte[] {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, 0, 0, 0, 0, 0});
        server = Server.load(TestSupport.tinyBase(), null, null, PipelineOptions.defaults(),
                ServerConfig.defaults().withHost("127.0.0.1").withPort(0), folder).start();
        javaApi = StableDiffusionXL.load(TestSupport.tinyBase());
    }

    @AfterAll
    static void stop() {
        server.close();
        javaApi.close();
    }

    private static JsonNode txt2img(String prompt, int expectedStatus) {
        HttpResponse<String> r = TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":" + quote(prompt)
                + ",\"steps\":3,\"seed\":11,\"width\":64,\"height\":64}", null);
        assertEquals(expectedStatus, r.statusCode(), r.body());
        try {
            return Fields.JSON.readTree(r.body());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static String quote(String s) {
        return Fields.JSON.valueToTree(s).toString();
    }

    /** The Java API's image for the prompt without tags, with {@code loras} (file -> weight) loaded unfused. */
    private static BufferedImage expected(String prompt, Map<Path, Double> loras) {
        try {
            loras.forEach((f, w) -> javaApi.loadLora(f, w, LoraMode.UNFUSED));
            return javaApi.generate(GenerationRequest.builder().syntax(PromptSyntax.A1111).prompt(prompt).steps(3)
                    .guidanceScale(7.0).size(64, 64).seed(11).build()).image(0);
        } finally {
            javaApi.unloadLoras();
        }
    }

    @Test
    void aTaggedRequestIsTheJavaApiWithThatLoraAndOnlyForThatRequest() throws IOException {
        JsonNode r = txt2img("<lora:style:0.8> a red fox", 200);
        BufferedImage got = TestSupport.png(r.get("images").get(0).asText(), 64, 64);
        BufferedImage plain = expected(" a red fox", Map.of());
        assertTrue(TestSupport.differ(plain, got), "the LoRA changed the image");
        TestSupport.assertSamePixels(expected(" a red fox", Map.of(style, 0.8)), got, "LoRA style at 0.8");
        JsonNode info = Fields.JSON.readTree(r.get("info").asText());
        GenerationParameters p = GenerationParameters.parse(info.get("infotexts").get(0).asText());
        assertEquals("<lora:style:0.8> a red fox", p.prompt(), "A1111 keeps the tags in the infotext");
        javaApi.loadLora(style, 0.8, LoraMode.UNFUSED);
        String hashes = javaApi.loraHashes();
        javaApi.unloadLoras();
        assertEquals(hashes, p.get("Lora hashes").orElse(null));
        assertEquals("<lora:style:0.8> a red fox", r.get("parameters").get("prompt").asText(), "echoed as sent");
        // The next request without tags has no LoRA left over.
        BufferedImage after = TestSupport.png(txt2img(" a red fox", 200).get("images").get(0).asText(), 64, 64);
        TestSupport.assertSamePixels(plain, after, "no LoRA after the tagged request");
    }

    @Test
    void twoLorasOneInASubfolderAndANameTwiceAddsItsWeights() {
        BufferedImage got = TestSupport.png(txt2img("<lora:style:0.3>a cat <lora:detail:0.7><lora:style:0.2>", 200)
                .get("images").get(0).asText(), 64, 64);
        // In the order the prompt names them (the adapters' sum is rounded in that order).
        Map<Path, Double> inOrder = new LinkedHashMap<>();
        inOrder.put(style, 0.5);
        inOrder.put(detail, 0.7);
        TestSupport.assertSamePixels(expected("a cat ", inOrder), got, "style 0.3 + 0.2, detail 0.7");
    }

    @Test
    void badTagsAre400sNamingTheProblem() {
        assertTrue(txt2img("<lora:nowhere:1> a cat", 400).toString().contains("no LoRA named \\\"nowhere\\\""));
        assertTrue(txt2img("<lora:broken:1> a cat", 400).toString().contains("cannot be used"));
        assertTrue(txt2img("<lora:style:0.5:0.3> a cat", 400).toString().contains("multipliers"));
        HttpResponse<String> r = TestSupport.post(server, "/sdapi/v1/txt2img",
                "{\"prompt\":\"a cat\",\"negative_prompt\":\"<lora:style:1> blurry\",\"steps\":1}", null);
        assertEquals(400, r.statusCode(), r.body());
        assertTrue(r.body().contains("negative_prompt"), r.body());
        // None of them left a LoRA behind.
        TestSupport.assertSamePixels(expected(" a red fox", Map.of()),
                TestSupport.png(txt2img(" a red fox", 200).get("images").get(0).asText(), 64, 64), "no LoRA left");
    }

    @Test
    void theFolderIsListed() throws IOException {
        JsonNode list = Fields.JSON.readTree(TestSupport.get(server, "/sdapi/v1/loras", null).body());
        List<String> names = new ArrayList<>();
        list.forEach(e -> names.add(e.get("name").asText() + "=" + e.get("path").asText()));
        assertEquals(List.of("broken=broken.safetensors", "style=style.safetensors", "detail=sub/detail.safetensors"), names);
        assertEquals(200, TestSupport.post(server, "/sdapi/v1/refresh-loras", "", null).statusCode());
    }
}
