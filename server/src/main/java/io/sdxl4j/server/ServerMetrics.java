package io.sdxl4j.server;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.concurrent.TimeUnit;

/**
 * The server's Prometheus metrics (Micrometer): queue length, jobs running, images generated, denoising step time,
 * generation and queue-wait time, requests refused because the queue was full, and error answers by API and status.
 */
final class ServerMetrics implements JobQueue.Listener {
    final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final Timer stepTime;
    private final Timer queueWait;
    private final Counter rejected;

    ServerMetrics() {
        stepTime = Timer.builder("sdxl4j.step").description("time of one denoising step (text encoding counts in the first)")
                .publishPercentileHistogram().minimumExpectedValue(java.time.Duration.ofMillis(1))
                .maximumExpectedValue(java.time.Duration.ofMinutes(2)).register(registry);
        queueWait = Timer.builder("sdxl4j.queue.wait").description("time a job waited in the queue").register(registry);
        rejected = Counter.builder("sdxl4j.queue.rejected").description("requests refused because the queue was full")
                .register(registry);
    }

    /** Gauges of the queue: waiting and running jobs. */
    void bind(JobQueue queue) {
        Gauge.builder("sdxl4j.queue.length", queue, JobQueue::waitingCount).description("jobs waiting in the queue")
                .register(registry);
        Gauge.builder("sdxl4j.queue.capacity", queue, JobQueue::capacity).description("jobs the queue holds at most")
                .register(registry);
        Gauge.builder("sdxl4j.jobs.running", queue, q -> q.running() == null ? 0 : 1).description("jobs running")
                .register(registry);
    }

    /** {@code count} images generated for {@code api}. */
    void generated(String api, int count) {
        Counter.builder("sdxl4j.images.generated").description("images generated").tag("api", api).register(registry)
                .increment(count);
    }

    /** An error answer. */
    void error(String api, int status) {
        Counter.builder("sdxl4j.errors").description("requests answered with an error").tag("api", api)
                .tag("status", Integer.toString(status)).register(registry).increment();
    }

    @Override
    public void started(JobQueue.Job<?> job, long queuedNanos) {
        queueWait.record(queuedNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void finished(JobQueue.Job<?> job, long runNanos, Throwable failure) {
        String outcome = failure == null ? "ok" : job.cancelled() != null
                ? job.cancelled().name().toLowerCase(java.util.Locale.ROOT) : "failed";
        Timer.builder("sdxl4j.generation").description("time a job ran (all its images)").tag("api", job.api)
                .tag("outcome", outcome).register(registry).record(runNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void step(long stepNanos) {
        stepTime.record(stepNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void rejected() {
        rejected.increment();
    }

    String scrape() {
        return registry.scrape();
    }
}
