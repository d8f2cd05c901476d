package io.sdxl4j.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import io.sdxl4j.PipelineOptions;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import javax.imageio.ImageIO;

/** The bundled tiny model, a server on a free loopback port, raw HTTP calls and pixel comparisons for the tests. */
final class TestSupport {
    private TestSupport() {}

    static Path reference() {
        return Path.of(System.getProperty("sdxl4j.reference", "../java/src/test/resources/reference"));
    }

    static Path tinyBase() {
        return reference().resolve("models/tiny-sdxl-base");
    }

    static Path tinyRefiner() {
        return reference().resolve("models/tiny-sdxl-refiner");
    }

    /** A server on a free loopback port for the tiny base model (and refiner, when asked), started. */
    static Server start(ServerConfig config, boolean withRefiner) {
        return Server.load(tinyBase(), withRefiner ? tinyRefiner() : null, null, PipelineOptions.defaults(),
                config.withHost("127.0.0.1").withPort(0)).start();
    }

    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    /** POSTs a JSON body; the key is sent as Bearer when not null. */
    static HttpResponse<String> post(Server s, String path, String json, String key) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + path))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json))
                .timeout(Duration.ofMinutes(2));
        if (key != null) {
            b.header("Authorization", "Bearer " + key);
        }
        return send(b.build());
    }

    static HttpResponse<String> get(Server s, String path, String key) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + path)).GET()
                .timeout(Duration.ofMinutes(1));
        if (key != null) {
            b.header("Authorization", "Bearer " + key);
        }
        return send(b.build());
    }

    static HttpResponse<String> send(HttpRequest r) {
        try {
            return HTTP.send(r, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Decodes base64 that must be a PNG (checks the signature) of the given size. */
    static BufferedImage png(String base64, int width, int height) {
        byte[] bytes = Base64.getDecoder().decode(base64);
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'},
                java.util.Arrays.copyOf(bytes, 8), "not a PNG");
        try {
            BufferedImage img = ImageIO.read(new ByteArrayInputStream(bytes));
            assertNotNull(img, "PNG does not decode");
            assertEquals(width, img.getWidth(), "width");
            assertEquals(height, img.getHeight(), "height");
            return img;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Pixel for pixel (8-bit RGB). */
    static void assertSamePixels(BufferedImage expected, BufferedImage actual, String what) {
        assertEquals(expected.getWidth(), actual.getWidth(), what + ": width");
        assertEquals(expected.getHeight(), actual.getHeight(), what + ": height");
        int w = expected.getWidth(), h = expected.getHeight();
        int[] e = expected.getRGB(0, 0, w, h, null, 0, w);
        int[] a = actual.getRGB(0, 0, w, h, null, 0, w);
        for (int i = 0; i < e.length; i++) {
            if ((e[i] & 0xffffff) != (a[i] & 0xffffff)) {
                throw new AssertionError(what + ": pixel (" + i % w + ", " + i / w + ") differs: expected "
                        + Integer.toHexString(e[i] & 0xffffff) + ", got " + Integer.toHexString(a[i] & 0xffffff));
            }
        }
    }

    /** The two images differ somewhere (so that "equal" above means something). */
    static boolean differ(BufferedImage a, BufferedImage b) {
        int w = a.getWidth(), h = a.getHeight();
        return !java.util.Arrays.equals(a.getRGB(0, 0, w, h, null, 0, w), b.getRGB(0, 0, w, h, null, 0, w));
    }
}
