package io.sdxl4j.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.HttpResponseException;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.SdxlException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The sdxl4j HTTP server: the OpenAI Images API ({@code /v1/...}) and the AUTOMATIC1111 API ({@code /sdapi/v1/...})
 * on one set of loaded pipelines, plus {@code /health} and Prometheus metrics at {@code /metrics}. Built on Javalin
 * (Jetty) with Jackson. Generations run one at a time from a bounded FIFO queue ({@link JobQueue}); a client that
 * disconnects cancels its job. Binds to 127.0.0.1 unless told otherwise; with an API key every route but /health
 * needs {@code Authorization: Bearer KEY}. Nothing a request says is used as a file path.
 *
 * <pre>{@code
 * try (Server server = Server.load(Path.of("sdxl-base-1.0"), null, null, PipelineOptions.defaults(),
 *         ServerConfig.defaults().withPort(7860)).start()) {
 *     server.awaitStop();
 * }
 * }</pre>
 */
public final class Server implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Server.class);
    /** A refused body is read and dropped up to this much, so the client sees the 413; past it the connection closes. */
    static final long DRAIN_BYTES = 16L << 20;

    final Pipelines pipelines;
    final ServerConfig config;
    final ServerMetrics metrics = new ServerMetrics();
    final JobQueue queue;
    private final boolean watermark;
    private final byte[] apiKey;
    /** The page at / to try the server from a browser (it speaks the A1111 routes, as any A1111 client does). */
    private static final String WEB_PAGE = readPage();
    private final OpenAiApi openAi;
    private final A1111Api a1111;
    private volatile double averageJobSeconds = 1.0;
    private final java.util.concurrent.CountDownLatch stopped = new java.util.concurrent.CountDownLatch(1);
    private Javalin app;

    Server(Pipelines pipelines, ServerConfig config, boolean watermark) {
        this.pipelines = pipelines;
        this.config = config;
        this.watermark = watermark;
        this.apiKey = config.apiKey() == null ? null : config.apiKey().getBytes(StandardCharsets.UTF_8);
        this.queue = new JobQueue(config.queueCapacity(), new JobQueue.Listener() {
            @Override
            public void started(JobQueue.Job<?> job, long queuedNanos) {
                metrics.started(job, queuedNanos);
            }

            @Override
            public void finished(JobQueue.Job<?> job, long runNanos, Throwable failure) {
                metrics.finished(job, runNanos, failure);
                if (failure == null) {  // for Retry-After and the progress ETA
                    averageJobSeconds = 0.8 * averageJobSeconds + 0.2 * runNanos / 1e9;
                }
            }

            @Override
            public void step(long stepNanos) {
                metrics.step(stepNanos);
            }

            @Override
            public void rejected() {
                metrics.rejected();
            }
        });
        metrics.bind(queue);
        this.openAi = new OpenAiApi(this);
        this.a1111 = new A1111Api(this);
    }

    /**
     * Loads the model (a diffusers folder or a single-file checkpoint), the refiner if given, and makes a server
     * for them (not started yet).
     */
    public static Server load(Path model, Path refiner, Path configFolder, PipelineOptions options, ServerConfig config) {
        return load(model, refiner, configFolder, options, config, null);
    }

    /**
     * As {@link #load(Path, Path, Path, PipelineOptions, ServerConfig)}, with {@code loraDir} (or null): the folder
     * where A1111 prompt tags {@code <lora:NAME:WEIGHT>} find {@code NAME.safetensors}, applied per request.
     */
    public static Server load(Path model, Path refiner, Path configFolder, PipelineOptions options, ServerConfig config,
                              Path loraDir) {
        Pipelines p = new Pipelines(model, refiner, configFolder, options, loraDir);
        try {
            return new Server(p, config, options.watermark());
        } catch (RuntimeException e) {
            p.close();
            throw e;
        }
    }

    /** Starts listening; {@link #port()} then tells the port (useful with port 0). */
    public Server start() {
        app = Javalin.create(c -> {
            c.jetty.host = config.host();
            c.jetty.port = config.port();
            c.http.maxRequestSize = config.maxBodyBytes();
            c.startup.showJavalinBanner = false;
            c.startup.showOldJavalinVersionWarning = false;
            c.routes.before(this::authorize);
            c.routes.get("/health", ctx -> json(ctx, health()));
            c.routes.get("/", ctx -> ctx.html(WEB_PAGE));
            c.routes.get("/metrics", ctx -> ctx.contentType("text/plain; version=0.0.4; charset=utf-8").result(metrics.scrape()));
            openAi.routes(c.routes);
            a1111.routes(c.routes);
            c.routes.exception(ApiException.class, (e, ctx) -> renderError(ctx, e));
            c.routes.exception(HttpResponseException.class, (e, ctx) -> renderError(ctx, e.getStatus() == 404
                    ? ApiException.notFound("Invalid URL (" + ctx.method() + " " + ctx.path() + ")", null, "unknown_url")
                    : new ApiException(e.getStatus(), e.getMessage(), null, null, 0)));
            c.routes.exception(Exception.class, (e, ctx) -> {
                LOG.error("request {} {} failed", ctx.method(), ctx.path(), e);
                renderError(ctx, new ApiException(500, "internal server error (" + e.getClass().getSimpleName()
                        + "); the server log has the details", null, "internal_error", 0));
            });
            c.routes.error(404, ctx -> {
                if (ctx.resultInputStream() == null) {  // no route matched (our own 404s carry a body)
                    renderError(ctx, ApiException.notFound("Invalid URL (" + ctx.method() + " " + ctx.path() + ")",
                            null, "unknown_url"));
                }
            });
        }).start();
        LOG.info("sdxl4j serving {} on http://{}:{}/ (OpenAI: /v1/images/generations, AUTOMATIC1111: /sdapi/v1/txt2img)",
                pipelines.modelName(), config.host(), app.port());
        return this;
    }

    public int port() {
        return app.port();
    }

    /** Blocks until {@link #close()} has stopped the server. */
    public void awaitStop() throws InterruptedException {
        stopped.await();
    }

    /**
     * Cancels every queued and running job (waiting for the running one to finish its current step, so that no
     * pipeline is closed under it; their clients get 503), stops listening, and closes the pipelines.
     */
    @Override
    public void close() {
        queue.close();
        if (app != null) {
            app.stop();
        }
        pipelines.close();
        stopped.countDown();
    }

    boolean watermark() {
        return watermark;
    }

    // ================================================================================================ plumbing

    private ObjectNode health() {
        ObjectNode h = Fields.JSON.createObjectNode();
        h.put("status", "ok");
        h.put("model", pipelines.modelName());
        h.put("queue_length", queue.waitingCount());
        h.put("queue_capacity", queue.capacity());
        h.put("running", queue.running() != null);
        return h;
    }

    private static String readPage() {
        try (var in = Server.class.getResourceAsStream("index.html")) {
            if (in == null) {
                throw new IllegalStateException("index.html is missing from the server jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private void authorize(Context ctx) {
        // The page itself carries no data (it asks for the key and sends it with its API calls).
        if (apiKey == null || ctx.path().equals("/health") || ctx.path().equals("/")) {
            return;
        }
        String header = ctx.header("Authorization");
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            throw new ApiException(401, "You didn't provide an API key. Send it in an Authorization header using Bearer "
                    + "auth (Authorization: Bearer YOUR_KEY).", null, null, 0);
        }
        byte[] given = header.substring(7).trim().getBytes(StandardCharsets.UTF_8);
        if (!MessageDigest.isEqual(given, apiKey)) {  // constant time
            throw new ApiException(401, "Incorrect API key provided.", null, "invalid_api_key", 0);
        }
    }

    /** The request body, refused with 413 past the size limit (read with the limit, whatever Content-Length says). */
    byte[] body(Context ctx) {
        long limit = config.maxBodyBytes();
        long declared = ctx.req().getContentLengthLong();
        try (InputStream in = ctx.req().getInputStream()) {
            if (declared > limit) {
                drain(in);
                throw tooLarge(limit);
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream(declared > 0 ? (int) declared : 1024);
            byte[] buf = new byte[64 * 1024];
            long total = 0;
            for (int n; (n = in.read(buf)) > 0; ) {
                total += n;
                if (total > limit) {
                    drain(in);
                    throw tooLarge(limit);
                }
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } catch (IOException e) {
            throw ApiException.badRequest(null, "the request body could not be read: " + e.getMessage());
        }
    }

    /**
     * Reads and drops what is left of a refused body, up to {@link #DRAIN_BYTES}: a client still sending when the
     * server answers and closes would get a connection reset instead of the 413 (lingering close, as nginx does).
     */
    private static void drain(InputStream in) throws IOException {
        byte[] buf = new byte[64 * 1024];
        long left = DRAIN_BYTES;
        for (int n; left > 0 && (n = in.read(buf, 0, (int) Math.min(buf.length, left))) > 0; ) {
            left -= n;
        }
    }

    private static ApiException tooLarge(long limit) {
        return new ApiException(413, "the request body is larger than the " + limit + " bytes this server accepts",
                null, "request_too_large", 0);
    }

    static void json(Context ctx, Object value) {
        try {
            ctx.contentType("application/json").result(Fields.JSON.writeValueAsBytes(value));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Queues {@code work} and waits for it within the time limit; maps a full queue to 429 (OpenAI) or 503 (A1111)
     * with Retry-After, a timeout to 504, and pipeline errors to 4xx/5xx. While it waits, a client that disconnects
     * cancels the job.
     */
    <T> T run(Context ctx, String api, boolean a1111Api, JobQueue.Work<T> work) {
        JobQueue.Job<T> job;
        try {
            job = queue.submit(api, work);
        } catch (JobQueue.QueueFullException e) {
            throw new ApiException(a1111Api ? 503 : 429, e.getMessage(), null, a1111Api ? "queue_full" : "rate_limit_exceeded",
                    retryAfterSeconds());
        } catch (SdxlException e) {
            throw new ApiException(503, "the server is shutting down", null, "shutting_down", 0);
        }
        DisconnectWatcher watcher = DisconnectWatcher.watch(ctx.req(), () -> job.cancel(JobQueue.Reason.CLIENT_GONE));
        long left = job.submittedNanos + config.timeout().toNanos() - System.nanoTime();
        try {
            return job.result.get(Math.max(0, left), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            job.cancel(JobQueue.Reason.TIMEOUT);
            throw timedOut();
        } catch (ExecutionException e) {
            throw failure(e.getCause(), job);
        } catch (InterruptedException e) {
            job.cancel(JobQueue.Reason.SHUTDOWN);
            Thread.currentThread().interrupt();
            throw new ApiException(503, "the server is shutting down", null, "shutting_down", 0);
        } finally {
            if (watcher != null) {
                watcher.stop(ctx.res());
            }
        }
    }

    private ApiException timedOut() {
        return new ApiException(504, "the request took longer than this server's limit of " + config.timeout().toSeconds()
                + " s (queue wait included) and was cancelled", null, "timeout", 0);
    }

    private ApiException failure(Throwable t, JobQueue.Job<?> job) {
        if (t instanceof ApiException a) {
            return a;
        }
        if (t instanceof SdxlException e) {
            String message = e.getMessage().startsWith(e.code() + ": ") ? e.getMessage().substring(e.code().name().length() + 2)
                    : e.getMessage();
            if (e.code() == ErrorCode.CANCELLED) {
                JobQueue.Reason r = job.cancelled();
                if (r == JobQueue.Reason.TIMEOUT) {
                    return timedOut();
                }
                if (r == JobQueue.Reason.CLIENT_GONE) {  // nobody reads this answer
                    return new ApiException(499, "the client closed the request", null, "client_closed", 0);
                }
                if (r == JobQueue.Reason.INTERRUPTED) {
                    return new ApiException(500, "the generation was interrupted (POST /sdapi/v1/interrupt)", null,
                            "interrupted", 0);
                }
                return new ApiException(503, "the server is shutting down", null, "shutting_down", 0);
            }
            return switch (e.code()) {
                case INVALID_ARGUMENT, UNSUPPORTED, NOT_FOUND -> ApiException.badRequest(null, message);
                case OUT_OF_MEMORY -> new ApiException(500, "out of memory: " + message, null, "out_of_memory", 0);
                default -> {
                    LOG.error("generation failed", e);
                    yield new ApiException(500, message, null, "generation_failed", 0);
                }
            };
        }
        LOG.error("generation failed", t);
        return new ApiException(500, "internal server error (" + t.getClass().getSimpleName()
                + "); the server log has the details", null, "internal_error", 0);
    }

    // ================================================================================================ checks both APIs share

    /** A size to generate: multiples of 8, within the limits, and one the watermark accepts when it is on. */
    void checkSize(String field, int width, int height) {
        if (width < 8 || height < 8 || width % 8 != 0 || height % 8 != 0) {
            throw ApiException.badRequest(field, "width and height must be positive multiples of 8, got " + width + "x" + height);
        }
        if (width > config.maxSide() || height > config.maxSide()) {
            throw ApiException.badRequest(field, width + "x" + height + " is larger than this server's limit of "
                    + config.maxSide() + " pixels a side");
        }
        if ((long) width * height > config.maxPixels()) {
            throw ApiException.badRequest(field, width + "x" + height + " is more than this server's limit of "
                    + config.maxPixels() + " pixels");
        }
        if (watermark) {
            try {
                io.sdxl4j.images.InvisibleWatermark.checkSize(height, width);
            } catch (SdxlException e) {
                throw ApiException.badRequest(field, e.getMessage().substring(e.code().name().length() + 2));
            }
        }
    }

    /** A sampler by any name {@link io.sdxl4j.SchedulerKind#fromName} knows. */
    static io.sdxl4j.SchedulerKind scheduler(String field, String name) {
        try {
            return io.sdxl4j.SchedulerKind.fromName(name);
        } catch (SdxlException e) {
            throw ApiException.badRequest(field, e.getMessage().substring(e.code().name().length() + 2));
        }
    }

    /** A random seed as AUTOMATIC1111 draws one (below 2^32 - 1), for requests that give none. */
    static long randomSeed() {
        return java.util.concurrent.ThreadLocalRandom.current().nextLong(4294967294L);
    }

    int retryAfterSeconds() {
        return (int) Math.max(1, Math.ceil(averageJobSeconds));
    }

    double averageJobSeconds() {
        return averageJobSeconds;
    }

    private void renderError(Context ctx, ApiException e) {
        boolean a1111Path = ctx.path().startsWith("/sdapi/");
        metrics.error(a1111Path ? "a1111" : ctx.path().startsWith("/v1/") ? "openai" : "other", e.status);
        ctx.status(e.status);
        if (e.retryAfterSeconds > 0) {
            ctx.header("Retry-After", Integer.toString(e.retryAfterSeconds));
        }
        if (e.status == 401) {
            ctx.header("WWW-Authenticate", "Bearer");
        }
        ObjectNode body = Fields.JSON.createObjectNode();
        if (a1111Path) {  // AUTOMATIC1111's error body (its API middleware's shape)
            body.put("error", e.status == 400 ? "BadRequest" : "HTTPException");
            body.put("detail", e.getMessage());
            body.put("body", "");
            body.put("errors", e.status + ": " + e.getMessage());
        } else {  // OpenAI's error object
            ObjectNode error = body.putObject("error");
            error.put("message", e.getMessage());
            error.put("type", e.openAiType());
            error.put("param", e.param);
            error.put("code", e.code);
        }
        json(ctx, body);
    }
}
