package io.sdxl4j.images;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.DataBufferInt;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.ImageWriter;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.metadata.IIOMetadataNode;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.ImageOutputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;
import javax.imageio.stream.MemoryCacheImageOutputStream;
import org.w3c.dom.Node;

/**
 * Images in and out of the pipeline, with the arithmetic of diffusers and Pillow so that the same inputs give
 * the same bytes: {@link #toBufferedImages} is diffusers' {@code numpy_to_pil}, {@link #preprocess} is
 * {@code VaeImageProcessor.preprocess} for a PIL image (including Pillow's LANCZOS resize), {@link #toRgb} is
 * Pillow's {@code convert("RGB")}; and PNG files with the text chunks that AUTOMATIC1111 reads.
 */
public final class Images {
    /** SDXL's VAE downsamples by 8: diffusers rounds image sizes down to a multiple of it. */
    public static final int VAE_SCALE_FACTOR = 8;

    /** Larger inputs are refused before decoding (about 256 MiB of pixels as ints); SDXL works near 1 MP. */
    public static final long MAX_PIXELS = 64L << 20;

    private static final String PNG_FORMAT = "javax_imageio_png_1.0";

    private Images() {}

    /**
     * diffusers' {@code numpy_to_pil} for an output_type "np" batch: {@code (x * 255).round().astype("uint8")} per
     * value, NHWC with 3 channels, as TYPE_INT_RGB images.
     *
     * @param nhwc {@code n * h * w * 3} values, nominally in [0, 1]
     */
    public static BufferedImage[] toBufferedImages(float[] nhwc, int n, int h, int w) {
        if (n <= 0 || h <= 0 || w <= 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "image batch must have n, h, w > 0, got n=" + n
                    + " h=" + h + " w=" + w);
        }
        long expected = (long) n * h * w * 3;
        if (nhwc == null || nhwc.length != expected) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "image batch " + n + "x" + h + "x" + w
                    + "x3 needs " + expected + " values, got " + (nhwc == null ? "null" : nhwc.length));
        }
        BufferedImage[] images = new BufferedImage[n];
        int plane = h * w;
        for (int b = 0; b < n; b++) {
            BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
            int[] pixels = ((DataBufferInt) img.getRaster().getDataBuffer()).getData();
            int offset = b * plane * 3;
            for (int p = 0; p < plane; p++) {
                int i = offset + p * 3;
                pixels[p] = (toByte(nhwc[i]) << 16) | (toByte(nhwc[i + 1]) << 8) | toByte(nhwc[i + 2]);
            }
            images[b] = img;
        }
        return images;
    }

    /**
     * One value of {@code (x * 255).round().astype("uint8")}: the product in float32 as numpy computes it,
     * rounded half to even as {@code numpy.round}. Out of range, where numpy's cast would wrap or be undefined,
     * this clamps instead: below 0 gives 0, above 1 gives 255, and NaN gives 0. diffusers clamps to [0, 1] before
     * this step, so those cases only arise from a bug upstream, and a clamped pixel is the least surprising result.
     */
    public static int toByte(float x) {
        float scaled = x * 255f;
        if (!(scaled > 0f)) {
            return 0;
        }
        if (scaled >= 255f) {
            return 255;
        }
        return (int) Math.rint(scaled);
    }

    /**
     * The image as a [1, 3, H, W] float array in [0, 1] (byte / 255 in float32, as {@code np.array(img) / 255.0}),
     * after {@link #toRgb}'s Pillow-style conversion.
     */
    public static float[] toNchw(BufferedImage img) {
        int w = img.getWidth();
        int h = img.getHeight();
        return toNchw(rgbPixels(img), w, h);
    }

    private static float[] toNchw(int[] rgb, int w, int h) {
        int plane = w * h;
        float[] out = new float[3 * plane];
        for (int p = 0; p < plane; p++) {
            int v = rgb[p];
            out[p] = ((v >> 16) & 0xFF) / 255f;
            out[plane + p] = ((v >> 8) & 0xFF) / 255f;
            out[2 * plane + p] = (v & 0xFF) / 255f;
        }
        return out;
    }

    /**
     * Pillow's {@code convert("RGB")} as a TYPE_INT_RGB image: alpha is dropped (not composited), grey is
     * replicated, palette indices are looked up, and no colour management is applied (embedded ICC profiles and
     * gamma are ignored, as Pillow ignores them). Samples of 16-bit RGB keep their high byte and 16-bit grey is
     * clipped to 255, as Pillow decodes and converts those PNGs; grey of 1, 2 or 4 bits is scaled to 0..255.
     * Colour models without an exact Pillow counterpart (CMYK, float samples) fall back to Java's sRGB conversion.
     */
    public static BufferedImage toRgb(BufferedImage img) {
        int w = img.getWidth();
        int h = img.getHeight();
        BufferedImage out = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        int[] dst = ((DataBufferInt) out.getRaster().getDataBuffer()).getData();
        System.arraycopy(rgbPixels(img), 0, dst, 0, dst.length);
        return out;
    }

    /** Pillow's {@code resize((width, height), Image.LANCZOS)} of the image's RGB, exactly; see {@link #toRgb}. */
    public static BufferedImage resizeLanczos(BufferedImage img, int width, int height) {
        if (width <= 0 || height <= 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "resize target must be positive, got " + width + "x"
                    + height);
        }
        int[] resized = PillowLanczos.resize(rgbPixels(img), img.getWidth(), img.getHeight(), width, height);
        BufferedImage out = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        int[] dst = ((DataBufferInt) out.getRaster().getDataBuffer()).getData();
        System.arraycopy(resized, 0, dst, 0, dst.length);
        return out;
    }

    /**
     * diffusers' {@code VaeImageProcessor.preprocess} for a PIL image with SDXL's settings, up to but not including
     * the final {@code 2x - 1} normalisation (do_normalize), which belongs to the VAE encode step: convert to RGB;
     * round width and height down to a multiple of 8; resize with Pillow's LANCZOS to that size (a no-op when the
     * size is already a multiple of 8); then x / 255 in float32. Returns [1, 3, H, W] and writes H and W into
     * {@code outHeightWidth} when it is not null.
     */
    public static float[] preprocess(BufferedImage img, int[] outHeightWidth) {
        checkOutHeightWidth(outHeightWidth);
        int w = img.getWidth();
        int h = img.getHeight();
        int targetW = w - w % VAE_SCALE_FACTOR;
        int targetH = h - h % VAE_SCALE_FACTOR;
        if (targetW == 0 || targetH == 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "image is " + w + "x" + h
                    + " pixels; img2img needs at least " + VAE_SCALE_FACTOR + "x" + VAE_SCALE_FACTOR);
        }
        int[] rgb = PillowLanczos.resize(rgbPixels(img), w, h, targetW, targetH);
        if (outHeightWidth != null) {
            outHeightWidth[0] = targetH;
            outHeightWidth[1] = targetW;
        }
        return toNchw(rgb, targetW, targetH);
    }

    /** {@link #read} then {@link #preprocess}: the init image of img2img (or the refiner) from a file. */
    public static float[] loadForImg2Img(Path file, int[] outHeightWidth) {
        checkOutHeightWidth(outHeightWidth);
        return preprocess(read(file), outHeightWidth);
    }

    private static void checkOutHeightWidth(int[] outHeightWidth) {
        if (outHeightWidth != null && outHeightWidth.length < 2) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "outHeightWidth needs room for [height, width]");
        }
    }

    /**
     * Decodes an image file with ImageIO (PNG, JPEG, BMP, GIF, TIFF; first frame). NOT_FOUND when the file does not
     * exist; INVALID_ARGUMENT when it cannot be read, is not a format ImageIO decodes, is corrupt, or has more than
     * {@link #MAX_PIXELS} pixels. EXIF orientation is not applied.
     */
    public static BufferedImage read(Path file) {
        if (Files.isDirectory(file)) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, file + " is a directory, not an image file");
        }
        try (InputStream in = Files.newInputStream(file)) {
            return decode(in, file.toString());
        } catch (NoSuchFileException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, "image file not found: " + file, e);
        } catch (AccessDeniedException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, file + ": permission denied", e);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, file + ": cannot decode the image: " + e, e);
        }
    }

    /**
     * {@link #read(Path)} for an encoded image in memory (e.g. base64 from a request); {@code what} names it in
     * messages. INVALID_ARGUMENT when it is not an image ImageIO decodes, is corrupt or is too large.
     */
    public static BufferedImage read(byte[] encoded, String what) {
        try {
            return decode(new java.io.ByteArrayInputStream(encoded), what);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, what + ": cannot decode the image: " + e, e);
        }
    }

    private static BufferedImage decode(InputStream in, String what) throws IOException {
        try (ImageInputStream stream = new MemoryCacheImageInputStream(in)) {
            Iterator<ImageReader> readers = ImageIO.getImageReaders(stream);
            if (!readers.hasNext()) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, what
                        + ": not an image format this Java can decode (PNG, JPEG, BMP, GIF and TIFF are)");
            }
            ImageReader reader = readers.next();
            try {
                reader.setInput(stream, true, true);
                long pixels = (long) reader.getWidth(0) * reader.getHeight(0);
                if (pixels > MAX_PIXELS) {
                    throw new SdxlException(ErrorCode.INVALID_ARGUMENT, what + ": " + reader.getWidth(0) + "x"
                            + reader.getHeight(0) + " pixels is more than the " + MAX_PIXELS + " accepted");
                }
                return reader.read(0);
            } finally {
                reader.dispose();
            }
        } catch (RuntimeException e) {
            if (e instanceof SdxlException se) {
                throw se;
            }
            // ImageIO reports corrupt data with IOExceptions and, for some codecs, with unchecked exceptions.
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, what + ": cannot decode the image: " + e, e);
        }
    }

    /**
     * Writes a PNG with one text chunk per entry, in map order, as Pillow's {@code PngInfo.add_text} does (and so
     * AUTOMATIC1111): a tEXt chunk when key and value are Latin-1, otherwise an uncompressed iTXt chunk (UTF-8).
     * Keywords must be 1 to 79 printable Latin-1 characters; NUL is refused in values. The file is written to a
     * temporary sibling first and moved into place, so a reader never sees half a file.
     */
    public static void writePng(BufferedImage img, Path file, Map<String, String> textChunks) {
        Path target = file.toAbsolutePath();
        Path tmp = null;
        try {
            // Not Files.createTempFile: its owner-only permissions would stay on the moved file.
            tmp = target.resolveSibling("." + target.getFileName() + "." + ProcessHandle.current().pid() + "."
                    + System.nanoTime() + ".tmp");
            try (OutputStream out = Files.newOutputStream(tmp, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE)) {
                writePng(img, textChunks, out);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
        } catch (NoSuchFileException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, "cannot write " + file + ": folder "
                    + target.getParent() + " does not exist", e);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "cannot write " + file + ": " + e, e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // The original error matters more than a leftover temporary file.
                }
            }
        }
    }

    /**
     * The bytes of the PNG that {@link #writePng(BufferedImage, Path, Map)} writes, for callers that send images
     * instead of saving them (base64 in JSON, adapters' image objects).
     */
    public static byte[] pngBytes(BufferedImage img, Map<String, String> textChunks) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        try {
            writePng(img, textChunks, out);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.INTERNAL, "cannot encode a PNG: " + e, e);
        }
        return out.toByteArray();
    }

    private static void writePng(BufferedImage img, Map<String, String> textChunks, OutputStream out)
            throws IOException {
        ImageWriter writer = ImageIO.getImageWritersByFormatName("png").next();
        try (ImageOutputStream stream = new MemoryCacheImageOutputStream(out)) {
            IIOMetadata metadata = writer.getDefaultImageMetadata(ImageTypeSpecifier.createFromRenderedImage(img),
                    writer.getDefaultWriteParam());
            if (textChunks != null && !textChunks.isEmpty()) {
                metadata.mergeTree(PNG_FORMAT, textTree(textChunks));
            }
            writer.setOutput(stream);
            writer.write(null, new IIOImage(img, null, metadata), writer.getDefaultWriteParam());
        } finally {
            writer.dispose();
        }
    }

    private static IIOMetadataNode textTree(Map<String, String> textChunks) {
        IIOMetadataNode root = new IIOMetadataNode(PNG_FORMAT);
        IIOMetadataNode latin1 = new IIOMetadataNode("tEXt");
        IIOMetadataNode international = new IIOMetadataNode("iTXt");
        for (Map.Entry<String, String> e : textChunks.entrySet()) {
            String key = e.getKey();
            String value = e.getValue() == null ? "" : e.getValue();
            checkKeyword(key);
            if (value.indexOf('\0') >= 0) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "PNG text \"" + key + "\" must not contain NUL");
            }
            if (StandardCharsets.ISO_8859_1.newEncoder().canEncode(value)) {
                IIOMetadataNode entry = new IIOMetadataNode("tEXtEntry");
                entry.setAttribute("keyword", key);
                entry.setAttribute("value", value);
                latin1.appendChild(entry);
            } else {
                IIOMetadataNode entry = new IIOMetadataNode("iTXtEntry");
                entry.setAttribute("keyword", key);
                entry.setAttribute("compressionFlag", "FALSE");
                entry.setAttribute("compressionMethod", "0");
                entry.setAttribute("languageTag", "");
                entry.setAttribute("translatedKeyword", "");
                entry.setAttribute("text", value);
                international.appendChild(entry);
            }
        }
        if (latin1.hasChildNodes()) {
            root.appendChild(latin1);
        }
        if (international.hasChildNodes()) {
            root.appendChild(international);
        }
        return root;
    }

    private static void checkKeyword(String key) {
        boolean ok = key != null && !key.isEmpty() && key.length() <= 79;
        for (int i = 0; ok && i < key.length(); i++) {
            char c = key.charAt(i);
            ok = (c >= 32 && c <= 126) || (c >= 161 && c <= 255);
        }
        if (!ok) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "PNG text keyword must be 1-79 printable Latin-1"
                    + " characters, got \"" + key + "\"");
        }
    }

    /** The tEXt, zTXt and iTXt entries of a PNG (keyword to text; a repeated keyword keeps its last value). */
    public static Map<String, String> readPngText(Path file) {
        try (InputStream in = Files.newInputStream(file);
             ImageInputStream stream = new MemoryCacheImageInputStream(in)) {
            Iterator<ImageReader> readers = ImageIO.getImageReadersByFormatName("png");
            ImageReader reader = readers.next();
            try {
                reader.setInput(stream, true, false);
                // Decoding first makes the reader also collect text chunks that follow the image data.
                reader.read(0);
                Node root = reader.getImageMetadata(0).getAsTree(PNG_FORMAT);
                Map<String, String> text = new LinkedHashMap<>();
                for (Node group = root.getFirstChild(); group != null; group = group.getNextSibling()) {
                    String valueAttribute = switch (group.getNodeName()) {
                        case "tEXt" -> "value";
                        case "zTXt", "iTXt" -> "text";
                        default -> null;
                    };
                    if (valueAttribute == null) {
                        continue;
                    }
                    for (Node entry = group.getFirstChild(); entry != null; entry = entry.getNextSibling()) {
                        IIOMetadataNode node = (IIOMetadataNode) entry;
                        text.put(node.getAttribute("keyword"), node.getAttribute(valueAttribute));
                    }
                }
                return text;
            } finally {
                reader.dispose();
            }
        } catch (NoSuchFileException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, "PNG file not found: " + file, e);
        } catch (IOException | RuntimeException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, file + ": not a readable PNG: " + e, e);
        }
    }

    /** Packed 0xRRGGBB pixels with Pillow's convert("RGB") rules; see {@link #toRgb}. */
    static int[] rgbPixels(BufferedImage img) {
        int w = img.getWidth();
        int h = img.getHeight();
        ColorModel cm = img.getColorModel();
        Raster raster = img.getRaster();
        int[] out = new int[w * h];
        if (cm instanceof IndexColorModel palette) {
            int[] index = raster.getSamples(0, 0, w, h, 0, (int[]) null);
            for (int p = 0; p < out.length; p++) {
                int i = index[p];
                out[p] = (palette.getRed(i) << 16) | (palette.getGreen(i) << 8) | palette.getBlue(i);
            }
            return out;
        }
        if (cm instanceof ComponentColorModel && isIntegral(raster.getTransferType())) {
            int colours = cm.getNumColorComponents();
            int bits = cm.getComponentSize(0);
            if (colours == 1) {
                int[] grey = raster.getSamples(0, 0, w, h, 0, (int[]) null);
                for (int p = 0; p < out.length; p++) {
                    int v = greyToByte(grey[p], bits);
                    out[p] = (v << 16) | (v << 8) | v;
                }
                return out;
            }
            if (colours == 3 && cm.getColorSpace().getType() == ColorSpace.TYPE_RGB) {
                int[] r = raster.getSamples(0, 0, w, h, 0, (int[]) null);
                int[] g = raster.getSamples(0, 0, w, h, 1, (int[]) null);
                int[] b = raster.getSamples(0, 0, w, h, 2, (int[]) null);
                for (int p = 0; p < out.length; p++) {
                    out[p] = (colourToByte(r[p], bits) << 16) | (colourToByte(g[p], bits) << 8)
                            | colourToByte(b[p], bits);
                }
                return out;
            }
        }
        // Packed RGB (TYPE_INT_RGB, ARGB, BGR) converts exactly; anything else goes through Java's sRGB.
        img.getRGB(0, 0, w, h, out, 0, w);
        for (int p = 0; p < out.length; p++) {
            out[p] &= 0xFFFFFF;
        }
        return out;
    }

    private static boolean isIntegral(int transferType) {
        return transferType == DataBuffer.TYPE_BYTE || transferType == DataBuffer.TYPE_USHORT
                || transferType == DataBuffer.TYPE_INT;
    }

    /** Pillow reads 16-bit grey PNGs as mode I and clips on conversion; low bit depths are scaled to 0..255. */
    private static int greyToByte(int sample, int bits) {
        if (bits == 8) {
            return sample;
        }
        if (bits > 8) {
            return Math.min(sample, 255);
        }
        return sample * 255 / ((1 << bits) - 1);
    }

    /** Pillow decodes 16-bit RGB PNGs keeping the high byte of each sample. */
    private static int colourToByte(int sample, int bits) {
        if (bits == 8) {
            return sample;
        }
        if (bits > 8) {
            return sample >>> (bits - 8);
        }
        return sample * 255 / ((1 << bits) - 1);
    }
}
