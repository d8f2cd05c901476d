package io.sdxl4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.StableDiffusionXL;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The queue in front of the one pipeline: a full queue answers 429 (OpenAI) / 503 (A1111) with Retry-After; a client
 * that disconnects leaves the queue at once, or stops its running generation after the current step; the time
 * limit cancels with 504; /sdapi/v1/progress reports the running job with a preview and /sdapi/v1/interrupt stops
 * it, keeping the images finished before. A gate job (submitted straight to the queue) holds the worker where a
 * test needs the queue in a known state.
 */
class SchedulingTest {
    private static Server server;
    private CountDownLatch gate;

    @BeforeAll
    static void start() {
        server = TestSupport.start(ServerConfig.defaults().withQueueCapacity(1), false);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @AfterEach
    void openGate() {
        if (gate != null) {
            gate.countDown();
        }
        await(() -> server.queue.running() == null && server.queue.waitingCount() == 0, "queue drained");
    }

    /** Occupies the worker until {@link #gate} opens. */
    private void holdWorker(Server s) {
        gate = new CountDownLatch(1);
        CountDownLatch held = gate;
        s.queue.submit("test-gate", job -> {
            held.await();
            return null;
        });
        await(() -> s.queue.running() != null, "gate job running");
    }

    static void await(BooleanSupplier condition, String what) {
        long end = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("timed out waiting for: " + what);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private static CompletableFuture<HttpResponse<String>> postAsync(Server s, String path, String json) {
        return TestSupport.HTTP.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + path))
                .POST(HttpRequest.BodyPublishers.ofString(json)).timeout(Duration.ofMinutes(2)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** A request on a raw socket, so that the test can close the connection without reading the answer. */
    private static Socket rawPost(Server s, String path, String json) {
        try {
            Socket socket = new Socket("127.0.0.1", s.port());
            byte[] body = json.getBytes(StandardCharsets.UTF_8);
            OutputStream out = socket.getOutputStream();
            out.write(("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                    + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            return socket;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static JsonNode json(String s) {
        try {
            return Fields.JSON.readTree(s);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static final String SMALL = "{\"prompt\":\"a cat\",\"size\":\"64x64\",\"steps\":2,\"seed\":3}";

    @Test
    void fullQueueAnswers429And503WithRetryAfter() throws Exception {
        holdWorker(server);
        CompletableFuture<HttpResponse<String>> queued = postAsync(server, "/v1/images/generations", SMALL);
        await(() -> server.queue.waitingCount() == 1, "one job waiting");

        HttpResponse<String> openAi = TestSupport.post(server, "/v1/images/generations", SMALL, null);
        assertEquals(429, openAi.statusCode(), openAi.body());
        assertTrue(Integer.parseInt(openAi.headers().firstValue("Retry-After").orElseThrow()) >= 1);
        assertEquals("rate_limit_exceeded", json(openAi.body()).get("error").get("code").asText());

        HttpResponse<String> a1111 = TestSupport.post(server, "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"steps\":1}", null);
        assertEquals(503, a1111.statusCode(), a1111.body());
        assertTrue(Integer.parseInt(a1111.headers().firstValue("Retry-After").orElseThrow()) >= 1);

        gate.countDown();
        HttpResponse<String> done = queued.get();
        assertEquals(200, done.statusCode(), done.body());
        TestSupport.png(json(done.body()).get("data").get(0).get("b64_json").asText(), 64, 64);
        assertTrue(server.metrics.scrape().contains("sdxl4j_queue_rejected_total 2.0"), "rejections counted");
    }

    @Test
    void aClientThatDisconnectsLeavesTheQueueAndFreesItsSlot() throws Exception {
        holdWorker(server);
        Socket client = rawPost(server, "/v1/images/generations", SMALL);
        await(() -> server.queue.waitingCount() == 1, "the client's job waiting");
        client.close();
        await(() -> server.queue.waitingCount() == 0, "the job left the queue when its client went");
        assertNotNull(server.queue.running(), "while the worker is still busy");
        // The slot is free again: the next request is queued, not refused.
        CompletableFuture<HttpResponse<String>> next = postAsync(server, "/v1/images/generations", SMALL);
        await(() -> server.queue.waitingCount() == 1, "the next job queued");
        gate.countDown();
        assertEquals(200, next.get().statusCode());
    }

    @Test
    void aClientThatDisconnectsStopsItsRunningGeneration() throws Exception {
        Socket client = rawPost(server, "/v1/images/generations",
                "{\"prompt\":\"a cat\",\"size\":\"128x128\",\"steps\":150,\"seed\":3}");
        await(() -> server.queue.running() != null && server.queue.running().step >= 2, "the generation running");
        JobQueue.Job<?> job = server.queue.running();
        client.close();
        await(job.result::isDone, "the job stopped");
        assertEquals(JobQueue.Reason.CLIENT_GONE, job.cancelled());
        assertTrue(job.step < 150, "stopped after step " + job.step + " of 150");
        assertTrue(server.metrics.scrape().contains("outcome=\"client_gone\""), "counted as client_gone");
    }

    @Test
    void progressReportsTheRunningJobAndInterruptKeepsFinishedImages() throws Exception {
        CompletableFuture<HttpResponse<String>> running = postAsync(server, "/sdapi/v1/txt2img",
                "{\"prompt\":\"a bird\",\"seed\":11,\"steps\":150,\"width\":128,\"height\":128,\"n_iter\":3}");
        await(() -> server.queue.running() != null && server.queue.running().step >= 1, "first steps done");
        JsonNode p = json(TestSupport.get(server, "/sdapi/v1/progress", null).body());
        double progress = p.get("progress").asDouble();
        assertTrue(progress > 0 && progress < 1, "progress " + progress);
        assertEquals(150, p.get("state").get("sampling_steps").asInt());
        assertEquals(3, p.get("state").get("job_count").asInt());
        assertTrue(p.get("eta_relative").asDouble() > 0, p.toString());
        // The preview is copied at the step after it is asked for.
        JobQueue.Job<?> job = server.queue.running();
        int step = job.step;
        await(() -> job.step > step + 1, "two more steps");
        JsonNode p2 = json(TestSupport.get(server, "/sdapi/v1/progress", null).body());
        TestSupport.png(p2.get("current_image").asText(), 16, 16);  // latent resolution: 128 / 8
        assertTrue(json(TestSupport.get(server, "/sdapi/v1/progress?skip_current_image=true", null).body())
                .get("current_image").isNull());

        await(() -> job.imageIndex == 1 && job.step >= 1, "the second image started");
        HttpResponse<String> interrupt = TestSupport.post(server, "/sdapi/v1/interrupt", "", null);
        assertEquals(200, interrupt.statusCode());
        HttpResponse<String> r = running.get();
        assertEquals(200, r.statusCode(), r.body());
        JsonNode body = json(r.body());
        assertEquals(1, body.get("images").size(), "the finished image only");
        assertTrue(json(body.get("info").asText()).get("interrupted").asBoolean());
        try (StableDiffusionXL javaApi = StableDiffusionXL.load(TestSupport.tinyBase())) {
            TestSupport.assertSamePixels(javaApi.generate(GenerationRequest.builder().syntax(io.sdxl4j.PromptSyntax.A1111).prompt("a bird").steps(150)
                    .guidanceScale(7.0).size(128, 128).seed(11L).build()).image(0),
                    TestSupport.png(body.get("images").get(0).asText(), 128, 128), "the finished image");
        }
        JsonNode idle = json(TestSupport.get(server, "/sdapi/v1/progress", null).body());
        assertEquals(0, idle.get("state").get("job_count").asInt());
    }

    @Test
    void theTimeLimitCancelsQueuedAndRunningJobs() throws Exception {
        try (Server limited = TestSupport.start(ServerConfig.defaults().withTimeout(Duration.ofMillis(800)), false)) {
            holdWorker(limited);
            HttpResponse<String> queued = TestSupport.post(limited, "/v1/images/generations", SMALL, null);
            assertEquals(504, queued.statusCode(), queued.body());
            assertEquals("timeout", json(queued.body()).get("error").get("code").asText());
            assertEquals(0, limited.queue.waitingCount(), "the timed-out job left the queue");
            gate.countDown();
            await(() -> limited.queue.running() == null, "gate done");

            CompletableFuture<HttpResponse<String>> slow = postAsync(limited, "/sdapi/v1/txt2img",
                    "{\"prompt\":\"x\",\"steps\":150,\"width\":128,\"height\":128,\"n_iter\":4}");
            await(() -> limited.queue.running() != null, "slow job running");
            JobQueue.Job<?> job = limited.queue.running();
            HttpResponse<String> r = slow.get();
            assertEquals(504, r.statusCode(), r.body());
            await(job.result::isDone, "the running job stopped");
            assertEquals(JobQueue.Reason.TIMEOUT, job.cancelled());
            gate = null;
        }
    }
}
