package io.sdxl4j.server;

import io.sdxl4j.images.Images;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Base64;
import java.util.Iterator;
import java.util.Map;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;

/**
 * PNG bytes in memory (responses are never written to disk): encoding with AUTOMATIC1111's "parameters" text chunk,
 * and decoding of base64 images from requests with a pixel limit checked before any pixel is decoded.
 */
final class Png {
    private Png() {}

    /**
     * A PNG of {@code img} carrying {@code parameters} (A1111 infotext) as a tEXt (Latin-1) or iTXt chunk; null: none.
     * NULs, which a PNG text chunk cannot hold, are dropped (a prompt may carry one).
     */
    static byte[] encode(BufferedImage img, String parameters) {
        return Images.pngBytes(img, parameters == null ? Map.of() : Map.of("parameters", parameters.replace("\0", "")));
    }

    static String base64(byte[] png) {
        return Base64.getEncoder().encodeToString(png);
    }

    /**
     * Decodes a base64 image (optionally a {@code data:image/...;base64,} URL, as A1111 accepts) in any format ImageIO
     * reads. URLs are refused: the server never fetches anything a request names.
     *
     * @throws ApiException 400 naming {@code field} for bad base64, an unknown format, corrupt data or more than
     *     {@code maxPixels} pixels (checked from the header, before decoding)
     */
    static BufferedImage decodeBase64(String field, String text, long maxPixels) {
        String s = text.strip();
        if (s.startsWith("http://") || s.startsWith("https://")) {
            throw ApiException.badRequest(field, "image URLs are not fetched; send the image itself as base64");
        }
        if (s.startsWith("data:")) {
            int comma = s.indexOf(',');
            if (comma < 0 || !s.substring(0, comma).endsWith(";base64")) {
                throw ApiException.badRequest(field, "a data URL must be data:image/...;base64,<data>");
            }
            s = s.substring(comma + 1);
        }
        byte[] bytes;
        try {
            bytes = Base64.getMimeDecoder().decode(s);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest(field, "is not valid base64: " + e.getMessage());
        }
        try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(bytes))) {
            Iterator<ImageReader> readers = in == null ? null : ImageIO.getImageReaders(in);
            if (readers == null || !readers.hasNext()) {
                throw ApiException.badRequest(field, "is not an image this server decodes (PNG, JPEG, BMP, GIF)");
            }
            ImageReader reader = readers.next();
            try {
                reader.setInput(in, true, true);
                long w = reader.getWidth(0), h = reader.getHeight(0);
                if (w * h > maxPixels) {
                    throw ApiException.badRequest(field, "is " + w + "x" + h + " pixels; at most " + maxPixels
                            + " pixels are accepted");
                }
                return reader.read(0);
            } finally {
                reader.dispose();
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof ApiException a) {
                throw a;
            }
            throw ApiException.badRequest(field, "cannot be decoded as an image (" + e.getClass().getSimpleName() + ")");
        }
    }
}
