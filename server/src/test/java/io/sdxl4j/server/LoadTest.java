package io.sdxl4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sdxl4j.Device;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.StableDiffusionXL;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A bounded load test on loopback: 8 concurrent clients send {@code requests} requests in all (both APIs, tiny
 * model, 64x64, 4 steps) to a server whose queue has room for all of them (every request served: throughput and
 * p50/p99 latency), then half as many to one whose queue holds 2 (overload: refusals). Nothing is lost: every request
 * gets its image (a PNG of the asked size) or a 429/503; the queue drains; a client that disconnects while queued
 * frees its slot; the native allocations and the heap are back where they were. It also measures the overhead per
 * request against the Java API (one client, one request at a time, the same request, alternating).
 *
 * <p>CI runs 40 requests; the documented run is {@code -Dsdxl4j.load.requests=200} (see benchmarks/RESULTS.md).
 * The figures go to target/load-test.md.
 */
class LoadTest {
    private static final int REQUESTS = Integer.getInteger("sdxl4j.load.requests", 40);
    private static final int CLIENTS = Integer.getInteger("sdxl4j.load.clients", 8);
    private static final int SEQUENTIAL = Integer.getInteger("sdxl4j.load.sequential", 20);

    private static String openAi(int i) {
        return "{\"prompt\":\"load test " + i + "\",\"size\":\"64x64\",\"steps\":4,\"seed\":" + i + "}";
    }

    private static String a1111(int i) {
        return "{\"prompt\":\"load test " + i + "\",\"width\":64,\"height\":64,\"steps\":4,\"seed\":" + i + ",\"cfg_scale\":5}";
    }

    /** What one load phase saw. */
    private record Phase(int served, int refused, double seconds, List<Long> latencies) {}

    @Test
    void nothingIsLostAndTheQueueDrains() throws Exception {
        // Room for every client and the one that leaves.
        try (Server server = TestSupport.start(ServerConfig.defaults().withQueueCapacity(CLIENTS + 1), false);
             Server small = TestSupport.start(ServerConfig.defaults().withQueueCapacity(2), false);
             StableDiffusionXL javaApi = StableDiffusionXL.load(TestSupport.tinyBase())) {
            // Warm up both paths, then take the baselines: memory, and the Java API's time for the same request.
            for (int i = 0; i < 3; i++) {
                javaApi.generate(GenerationRequest.builder().prompt("load test " + i).size(64, 64).steps(4).seed(i).build());
                assertEquals(200, TestSupport.post(server, "/v1/images/generations", openAi(i), null).statusCode());
                assertEquals(200, TestSupport.post(small, "/sdapi/v1/txt2img", a1111(i), null).statusCode());
            }
            // Java API and HTTP alternately (the machine's load drifts), one request at a time; medians.
            List<Long> javaTimes = new ArrayList<>(), httpTimes = new ArrayList<>(), overheads = new ArrayList<>();
            for (int i = 0; i < SEQUENTIAL; i++) {
                long t0 = System.nanoTime();
                javaApi.generate(GenerationRequest.builder().prompt("load test " + i).size(64, 64).steps(4).seed(i).build())
                        .image(0);
                long t1 = System.nanoTime();
                HttpResponse<String> r = TestSupport.post(server, "/v1/images/generations", openAi(i), null);
                long t2 = System.nanoTime();
                assertEquals(200, r.statusCode());
                javaTimes.add(t1 - t0);
                httpTimes.add(t2 - t1);
                overheads.add((t2 - t1) - (t1 - t0));
            }
            Collections.sort(javaTimes);
            Collections.sort(httpTimes);
            Collections.sort(overheads);
            System.gc();
            long nativeBefore = Sdxl4j.liveAllocatedBytes(Device.CPU);
            long heapBefore = usedHeap();

            // Throughput: a queue deep enough for every client, so every request is served.
            Phase load = load(server, REQUESTS);
            assertEquals(REQUESTS, load.served(), "all served when the queue holds every client");
            // Overload: a queue of 2 behind the running job for 8 clients; refusals are answers too.
            Phase overload = load(small, Math.max(CLIENTS, REQUESTS / 2));
            assertTrue(overload.refused() > 0, "the small queue refused some");

            System.gc();
            long nativeAfter = Sdxl4j.liveAllocatedBytes(Device.CPU);
            long heapAfter = usedHeap();
            assertEquals(nativeBefore, nativeAfter, "native allocations back to where they were");
            assertTrue(heapAfter < heapBefore + (64L << 20), "heap flat: " + heapBefore + " -> " + heapAfter);

            String report = String.format(Locale.ROOT, """
                    | phase | requests | clients | queue | served | refused (429/503) | wall | throughput | p50 | p99 |
                    |---|---|---|---|---|---|---|---|---|---|
                    %s
                    %s

                    | Java API / request (median) | HTTP / request, 1 client (median) | overhead / request (median) |
                    |---|---|---|
                    | %.1f ms | %.1f ms | %.1f ms |

                    native allocations before/after: %d / %d bytes; heap used before/after GC: %.1f / %.1f MiB
                    """, row("load", load, CLIENTS + 1), row("overload", overload, 2), pct(javaTimes, 0.5) / 1e6,
                    pct(httpTimes, 0.5) / 1e6, pct(overheads, 0.5) / 1e6, nativeBefore, nativeAfter,
                    heapBefore / 1048576.0, heapAfter / 1048576.0);
            System.out.println(report);
            Files.writeString(Path.of("target", "load-test.md"), report);
        }
    }

    private static String row(String name, Phase p, int queue) {
        List<Long> l = p.latencies();
        return String.format(Locale.ROOT, "| %s | %d | %d | %d | %d | %d | %.1f s | %.1f images/s | %.0f ms | %.0f ms |",
                name, p.served() + p.refused(), CLIENTS, queue, p.served(), p.refused(), p.seconds(),
                p.served() / p.seconds(), pct(l, 0.50) / 1e6, pct(l, 0.99) / 1e6);
    }

    /**
     * CLIENTS threads share {@code requests} requests (every third an A1111 one); each answer must be a PNG of the
     * asked size or a 429/503 with Retry-After. Meanwhile one more client queues a request and goes away. Ends with
     * the queue drained.
     */
    private static Phase load(Server server, int requests) throws Exception {
        AtomicInteger next = new AtomicInteger();
        ConcurrentHashMap<Integer, Integer> statuses = new ConcurrentHashMap<>();
        List<Long> latencies = Collections.synchronizedList(new ArrayList<>());
        ExecutorService pool = Executors.newFixedThreadPool(CLIENTS);
        long start = System.nanoTime();
        List<Future<?>> clients = new ArrayList<>();
        for (int c = 0; c < CLIENTS; c++) {
            clients.add(pool.submit(() -> {
                for (int i; (i = next.getAndIncrement()) < requests; ) {
                    boolean a = i % 3 == 2;
                    long t0 = System.nanoTime();
                    HttpResponse<String> r = a ? TestSupport.post(server, "/sdapi/v1/txt2img", a1111(i), null)
                            : TestSupport.post(server, "/v1/images/generations", openAi(i), null);
                    long took = System.nanoTime() - t0;
                    statuses.merge(r.statusCode(), 1, Integer::sum);
                    if (r.statusCode() == 200) {
                        latencies.add(took);
                        JsonNode body = Fields.JSON.readTree(r.body());
                        TestSupport.png(a ? body.get("images").get(0).asText()
                                : body.get("data").get(0).get("b64_json").asText(), 64, 64);
                    } else {
                        assertEquals(a ? 503 : 429, r.statusCode(), r.body());
                        assertTrue(r.headers().firstValue("Retry-After").isPresent());
                        Thread.sleep(20);  // a client waits a little before its next request
                    }
                }
                return null;
            }));
        }
        // A client that queues a request and goes away: its slot is freed.
        Socket leaver = null;
        for (int tries = 0; tries < 500 && leaver == null; tries++) {
            if (server.queue.waitingCount() < server.queue.capacity()) {
                leaver = rawPost(server.port(), openAi(9999));
            } else {
                Thread.sleep(2);
            }
        }
        Thread.sleep(30);
        if (leaver != null) {
            leaver.close();
        }
        for (Future<?> f : clients) {
            f.get();  // rethrows any assertion a client failed
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        pool.shutdown();
        int ok = statuses.getOrDefault(200, 0), refused = statuses.getOrDefault(429, 0) + statuses.getOrDefault(503, 0);
        assertEquals(requests, ok + refused, "every request answered with an image or a 429/503: " + statuses);
        SchedulingTest.await(() -> server.queue.running() == null && server.queue.waitingCount() == 0, "queue drained");
        assertNull(server.queue.running());
        Collections.sort(latencies);
        return new Phase(ok, refused, seconds, latencies);
    }

    private static double pct(List<Long> sorted, double p) {
        return sorted.isEmpty() ? 0 : sorted.get(Math.min(sorted.size() - 1, (int) Math.ceil(p * sorted.size()) - 1));
    }

    private static long usedHeap() {
        Runtime r = Runtime.getRuntime();
        return r.totalMemory() - r.freeMemory();
    }

    private static Socket rawPost(int port, String json) throws IOException {
        Socket socket = new Socket("127.0.0.1", port);
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        OutputStream out = socket.getOutputStream();
        out.write(("POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + body.length
                + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(body);
        out.flush();
        return socket;
    }
}
