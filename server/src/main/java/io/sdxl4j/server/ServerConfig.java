package io.sdxl4j.server;

import java.time.Duration;

/**
 * How the server listens and what it accepts.
 *
 * @param host            address to bind (127.0.0.1 unless told otherwise)
 * @param port            TCP port; 0 picks a free one
 * @param apiKey          Bearer key every route but /health requires; null or empty: none
 * @param queueCapacity   jobs that may wait behind the running one; more get 429 (OpenAI) / 503 (A1111)
 * @param timeout         longest a request may take, waiting included; then it is cancelled
 * @param maxBodyBytes    largest request body
 * @param maxSide         largest width or height of an image to generate
 * @param maxPixels       largest width x height of an image to generate
 * @param maxImages       most images one request may ask for
 * @param maxSteps        most denoising steps one request may ask for
 */
public record ServerConfig(String host, int port, String apiKey, int queueCapacity, Duration timeout,
                           long maxBodyBytes, int maxSide, long maxPixels, int maxImages, int maxSteps) {
    public ServerConfig {
        if (host == null || host.isBlank()) {
            host = "127.0.0.1";
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port must be in [0, 65535], got " + port);
        }
        if (queueCapacity < 0) {
            throw new IllegalArgumentException("queue capacity must be >= 0, got " + queueCapacity);
        }
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive");
        }
        if (apiKey != null && apiKey.isEmpty()) {
            apiKey = null;
        }
    }

    /** Loopback on port 7860 (AUTOMATIC1111's), no key, 16 waiting jobs, 10 minutes, 32 MiB bodies, 2048 px sides. */
    public static ServerConfig defaults() {
        return new ServerConfig("127.0.0.1", 7860, null, 16, Duration.ofMinutes(10), 32L << 20, 2048, 2048L * 2048,
                16, 150);
    }

    public ServerConfig withPort(int p) {
        return new ServerConfig(host, p, apiKey, queueCapacity, timeout, maxBodyBytes, maxSide, maxPixels, maxImages, maxSteps);
    }

    public ServerConfig withHost(String h) {
        return new ServerConfig(h, port, apiKey, queueCapacity, timeout, maxBodyBytes, maxSide, maxPixels, maxImages, maxSteps);
    }

    public ServerConfig withApiKey(String k) {
        return new ServerConfig(host, port, k, queueCapacity, timeout, maxBodyBytes, maxSide, maxPixels, maxImages, maxSteps);
    }

    public ServerConfig withQueueCapacity(int q) {
        return new ServerConfig(host, port, apiKey, q, timeout, maxBodyBytes, maxSide, maxPixels, maxImages, maxSteps);
    }

    public ServerConfig withTimeout(Duration t) {
        return new ServerConfig(host, port, apiKey, queueCapacity, t, maxBodyBytes, maxSide, maxPixels, maxImages, maxSteps);
    }

    public ServerConfig withMaxBodyBytes(long b) {
        return new ServerConfig(host, port, apiKey, queueCapacity, timeout, b, maxSide, maxPixels, maxImages, maxSteps);
    }

    public ServerConfig withMaxSide(int s) {
        return new ServerConfig(host, port, apiKey, queueCapacity, timeout, maxBodyBytes, s, maxPixels, maxImages, maxSteps);
    }
}
