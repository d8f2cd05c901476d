package io.sdxl4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad requests over raw HTTP (java.net.http): each gets its API's error format with the right status and a message
 * naming the field at fault, never a stack trace; the API key guards every route but /health; body and image size
 * limits answer 4xx before any work.
 */
class HttpErrorsTest {
    private static final String KEY = "test-key";
    private static Server server;

    @BeforeAll
    static void start() {
        server = TestSupport.start(ServerConfig.defaults().withApiKey(KEY).withMaxBodyBytes(64 * 1024).withMaxSide(256), false);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    /** The OpenAI error object of a response with this status; checks its shape and that no stack trace leaked. */
    private static JsonNode openAiError(HttpResponse<String> r, int status) {
        assertEquals(status, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"), "JSON content type");
        noStackTrace(r.body());
        JsonNode e = parse(r.body()).get("error");
        assertTrue(e != null && e.get("message").isTextual() && e.get("type").isTextual() && e.has("param") && e.has("code"),
                "OpenAI error object: " + r.body());
        return e;
    }

    /** A 400 whose {@code param} is the field and whose message names it. */
    private static void badField(String json, String field) {
        JsonNode e = openAiError(TestSupport.post(server, "/v1/images/generations", json, KEY), 400);
        assertEquals("invalid_request_error", e.get("type").asText());
        assertEquals(field, e.get("param").asText(), e.toString());
        assertTrue(e.get("message").asText().contains(field), e.toString());
    }

    /** AUTOMATIC1111's error body with this status, its detail naming {@code field}. */
    private static void a1111Error(HttpResponse<String> r, int status, String field) {
        assertEquals(status, r.statusCode(), r.body());
        noStackTrace(r.body());
        JsonNode e = parse(r.body());
        assertTrue(e.get("error").isTextual() && e.get("detail").isTextual() && e.has("body") && e.has("errors"), r.body());
        if (field != null) {
            assertTrue(e.get("detail").asText().startsWith(field), r.body());
        }
    }

    private static void noStackTrace(String body) {
        assertFalse(body.contains("\tat ") || body.contains("at io.sdxl4j.") || body.contains("at org.eclipse."),
                "stack trace in the response: " + body);
    }

    private static JsonNode parse(String s) {
        try {
            return Fields.JSON.readTree(s);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void apiKeyGuardsEveryRouteButHealth() {
        assertEquals(200, TestSupport.get(server, "/health", null).statusCode());
        HttpResponse<String> missing = TestSupport.get(server, "/v1/models", null);
        openAiError(missing, 401);
        assertEquals("Bearer", missing.headers().firstValue("WWW-Authenticate").orElse(""));
        assertEquals("invalid_api_key", openAiError(TestSupport.get(server, "/v1/models", "wrong"), 401).get("code").asText());
        openAiError(TestSupport.post(server, "/v1/images/generations", "{\"prompt\":\"x\"}", null), 401);
        openAiError(TestSupport.get(server, "/metrics", null), 401);
        a1111Error(TestSupport.get(server, "/sdapi/v1/samplers", null), 401, null);
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{}", "wrong"), 401, null);
        assertEquals(200, TestSupport.get(server, "/metrics", KEY).statusCode());
        assertEquals(200, TestSupport.get(server, "/sdapi/v1/samplers", KEY).statusCode());
    }

    @Test
    void badJsonIsA400() {
        JsonNode e = openAiError(TestSupport.post(server, "/v1/images/generations", "{\"prompt\": \"x\",", KEY), 400);
        assertTrue(e.get("message").asText().contains("not valid JSON"), e.toString());
        openAiError(TestSupport.post(server, "/v1/images/generations", "[1, 2]", KEY), 400);
        openAiError(TestSupport.post(server, "/v1/images/generations", "", KEY), 400);
        assertTrue(openAiError(TestSupport.post(server, "/v1/images/generations", "{\"prompt\":\"a\",\"prompt\":\"b\"}", KEY), 400)
                .get("message").asText().contains("prompt"), "duplicate key named");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\": ", KEY), 400, null);
    }

    @Test
    void badFieldsAreNamed() {
        badField("{\"prompt\":\"x\",\"guidance_scale\":NaN}", "guidance_scale");
        badField("{\"prompt\":\"x\",\"guidance_scale\":Infinity}", "guidance_scale");
        badField("{\"prompt\":\"x\",\"steps\":1e400}", "steps");
        badField("{\"prompt\":\"x\",\"steps\":\"20\"}", "steps");
        badField("{\"prompt\":\"x\",\"steps\":2.5}", "steps");
        badField("{\"prompt\":\"x\",\"steps\":0}", "steps");
        badField("{\"prompt\":\"x\",\"seed\":1e30}", "seed");
        badField("{\"prompt\":\"x\",\"n\":0}", "n");
        badField("{\"prompt\":\"x\",\"n\":1000}", "n");
        badField("{\"prompt\":\"\"}", "prompt");
        badField("{\"size\":\"64x64\"}", "prompt");
        badField("{\"prompt\":42}", "prompt");
        badField("{\"prompt\":\"x\",\"scheduler\":\"no such sampler\"}", "scheduler");
        badField("{\"prompt\":\"x\",\"frobnicate\":true}", "frobnicate");
        badField("{\"prompt\":\"x\",\"prompt_syntax\":\"markdown\"}", "prompt_syntax");
        badField("{\"prompt\":\"x\",\"response_format\":\"url\"}", "response_format");
        badField("{\"prompt\":\"x\",\"refiner\":true}", "refiner");  // started without one
        badField("{\"prompt\":\"x\",\"refiner_switch_at\":1.0}", "refiner_switch_at");
    }

    @Test
    void badSizesAreNamed() {
        badField("{\"prompt\":\"x\",\"size\":\"64x60\"}", "size");
        badField("{\"prompt\":\"x\",\"size\":\"0x64\"}", "size");
        badField("{\"prompt\":\"x\",\"size\":\"big\"}", "size");
        badField("{\"prompt\":\"x\",\"size\":\"512x512\"}", "size");  // over this server's 256-pixel limit
        badField("{\"prompt\":\"x\",\"size\":\"99999999x64\"}", "size");
        // At least 256 wide, under 256*256 pixels: the invisible watermark refuses it, before anything runs.
        badField("{\"prompt\":\"x\",\"size\":\"256x64\"}", "size");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"width\":60}", KEY), 400, "width");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"height\":100000}", KEY), 400, "height");
    }

    @Test
    void a1111BadFieldsAreNamed() {
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"sampler_name\":\"Nope\"}", KEY), 400, "sampler_name");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"sampler_name\":\"Euler\",\"scheduler\":\"Weird\"}",
                KEY), 400, "scheduler");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"cfg_scale\":NaN}", KEY), 400, "cfg_scale");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"enable_hr\":true}", KEY), 400, "enable_hr");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"alwayson_scripts\":{\"x\":{}}}", KEY), 400,
                "alwayson_scripts");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img",
                "{\"prompt\":\"x\",\"override_settings\":{\"sd_model_checkpoint\":\"another-model\"}}", KEY), 400,
                "override_settings.sd_model_checkpoint");
        a1111Error(TestSupport.post(server, "/sdapi/v1/img2img", "{\"prompt\":\"x\"}", KEY), 400, "init_images");
        a1111Error(TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"a <lora:style:0.8> cat\"}", KEY), 400, "prompt");
        a1111Error(TestSupport.post(server, "/sdapi/v1/img2img", "{\"prompt\":\"x\",\"init_images\":[\"not base64!\"]}", KEY),
                400, "init_images[0]");
        a1111Error(TestSupport.post(server, "/sdapi/v1/img2img",
                "{\"prompt\":\"x\",\"init_images\":[\"http://127.0.0.1:1/cat.png\"]}", KEY), 400, "init_images[0]");
        a1111Error(TestSupport.post(server, "/sdapi/v1/options", "{\"CLIP_stop_at_last_layers\":2}", KEY), 400,
                "CLIP_stop_at_last_layers");
    }

    @Test
    void bodiesOverTheLimitAre413() {
        String big = "{\"prompt\":\"" + "x".repeat(70 * 1024) + "\"}";
        JsonNode e = openAiError(TestSupport.post(server, "/v1/images/generations", big, KEY), 413);
        assertEquals("request_too_large", e.get("code").asText());
        // Without a Content-Length (chunked): counted while read.
        HttpRequest chunked = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/sdapi/v1/txt2img"))
                .header("Authorization", "Bearer " + KEY)
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(big.getBytes()))).build();
        a1111Error(TestSupport.send(chunked), 413, null);
    }

    /**
     * A client that sends its whole over-limit body slowly, and reads the answer only after: the server reads and
     * drops the body before it answers, so the client gets the 413 rather than a reset connection (a CI run once
     * saw "header parser received no bytes" here with a fast client on a loaded machine).
     */
    @Test
    void aSlowClientStillReadsThe413() throws Exception {
        int size = 1 << 20;
        try (Socket socket = new Socket("127.0.0.1", server.port())) {
            socket.setSoTimeout(20_000);
            OutputStream out = socket.getOutputStream();
            out.write(("POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY
                    + "\r\nContent-Type: application/json\r\nContent-Length: " + size + "\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            byte[] piece = new byte[64 * 1024];
            Arrays.fill(piece, (byte) 'x');
            for (int sent = 0; sent < size; sent += piece.length) {
                Thread.sleep(20);  // the server has long answered by the time the last pieces go
                out.write(piece);
                out.flush();
            }
            String head = new String(socket.getInputStream().readNBytes(12), StandardCharsets.US_ASCII);
            assertEquals("HTTP/1.1 413", head);
        }
    }

    @Test
    void unknownRoutesAre404() {
        JsonNode e = openAiError(TestSupport.get(server, "/v1/nothing-here", KEY), 404);
        assertEquals("unknown_url", e.get("code").asText());
        openAiError(TestSupport.get(server, "/v1/images/generations", KEY), 404);
        assertEquals("model_not_found", openAiError(TestSupport.get(server, "/v1/models/gpt-4o", KEY), 404).get("code").asText());
    }

    @Test
    void nothingIsWrittenWhereARequestSays(@TempDir Path tmp) throws IOException {
        Path cwd = Path.of("").toAbsolutePath();
        Set<String> before = list(cwd);
        Path named = tmp.resolve("outputs");
        HttpResponse<String> r = TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"steps\":1,"
                + "\"save_images\":true,\"do_not_save_samples\":false,\"outdir_samples\":\"" + named + "\"}", KEY);
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(before, list(cwd), "no file appeared in the working directory");
        assertFalse(Files.exists(named), "no file at the path the request named");
    }

    private static Set<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).collect(Collectors.toSet());
        }
    }
}
