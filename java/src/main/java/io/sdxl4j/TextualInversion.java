package io.sdxl4j;

import io.sdxl4j.io.SafetensorsFile;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;

/**
 * An SDXL textual-inversion embedding file, the format embeddings are downloaded in: a safetensors file with
 * {@code clip_l} [n, 768] for text_encoder (CLIP ViT-L) and {@code clip_g} [n, 1280] for text_encoder_2 (OpenCLIP
 * ViT-bigG), n the number of vectors the embedding's token stands for. Loaded into a pipeline with
 * {@link StableDiffusionXL#loadTextualInversion(Path, String)}.
 *
 * <p>Immutable; the vectors are read once (widened to F32 from F16/BF16 files) and the file is closed.
 */
public final class TextualInversion {
    /** The keys of the SDXL format: text_encoder's vectors and text_encoder_2's. */
    public static final String CLIP_L = "clip_l";
    public static final String CLIP_G = "clip_g";

    private final Path file;
    private final String name;
    private final String sha256;
    private final int vectors;
    private final float[] clipL;
    private final int widthL;
    private final float[] clipG;
    private final int widthG;

    private TextualInversion(Path file, String sha256, int vectors, float[] clipL, int widthL, float[] clipG, int widthG) {
        this.file = file;
        this.name = nameOf(file);
        this.sha256 = sha256;
        this.vectors = vectors;
        this.clipL = clipL;
        this.widthL = widthL;
        this.clipG = clipG;
        this.widthG = widthG;
    }

    /**
     * Reads an SDXL embedding file.
     *
     * @throws SdxlException NOT_FOUND if the file cannot be read; UNSUPPORTED for pickle files (.pt, .bin, .ckpt);
     *     BAD_MODEL_FILE if it is not safetensors, lacks clip_l or clip_g (an SD 1.x/2.x embedding has neither), their
     *     shapes are not [n, width] with the same n, the dtype is not F32/F16/BF16, or a value is NaN or infinite
     */
    public static TextualInversion read(Path file) {
        if (file == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "embedding file is null");
        }
        String lower = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (lower.endsWith(".pt") || lower.endsWith(".bin") || lower.endsWith(".ckpt") || lower.endsWith(".pth")) {
            throw new SdxlException(ErrorCode.UNSUPPORTED, file + ": pickle embedding files are not loaded (they can run "
                    + "code); convert it to .safetensors with clip_l and clip_g tensors");
        }
        if (!Files.isRegularFile(file)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, file + ": embedding file does not exist or is not a file");
        }
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            List<String> names = f.names();
            if (!names.contains(CLIP_L) || !names.contains(CLIP_G)) {
                throw bad(file, "an SDXL embedding needs both \"" + CLIP_L + "\" (text_encoder) and \"" + CLIP_G
                        + "\" (text_encoder_2) tensors; this file has " + names
                        + (names.contains("emb_params") || names.contains("string_to_param")
                                ? " (an SD 1.x/2.x embedding, which SDXL cannot use)" : ""));
            }
            long[] sl = shape2(f, file, CLIP_L);
            long[] sg = shape2(f, file, CLIP_G);
            if (sl[0] != sg[0]) {
                throw bad(file, CLIP_L + " has " + sl[0] + " vectors but " + CLIP_G + " has " + sg[0]
                        + "; both encoders need one vector per token");
            }
            float[] l = values(f, file, CLIP_L);
            float[] g = values(f, file, CLIP_G);
            return new TextualInversion(file, sha256(file), (int) sl[0], l, (int) sl[1], g, (int) sg[1]);
        }
    }

    private static long[] shape2(SafetensorsFile f, Path file, String key) {
        long[] s = f.shape(key);
        if (s.length != 2 || s[0] < 1 || s[1] < 1 || s[0] > 4096 || s[1] > 1 << 16) {
            throw bad(file, key + " must be [vectors, width] (e.g. [n, 768] / [n, 1280]), got "
                    + java.util.Arrays.toString(s));
        }
        return s;
    }

    private static float[] values(SafetensorsFile f, Path file, String key) {
        String dtype = f.dtypeName(key);
        if (!dtype.equals("F32") && !dtype.equals("F16") && !dtype.equals("BF16")) {
            throw bad(file, key + " is " + dtype + "; embedding vectors must be F32, F16 or BF16");
        }
        float[] v;
        try (Tensor t = f.tensorF32(key)) {
            v = t.toFloatArray();
        }
        for (int i = 0; i < v.length; i++) {
            if (!Float.isFinite(v[i])) {
                long w = f.shape(key)[1];
                throw bad(file, key + "[" + (i / w) + ", " + (i % w) + "] is " + v[i]
                        + "; the embedding is broken (retrain or re-download it)");
            }
        }
        return v;
    }

    private static SdxlException bad(Path file, String message) {
        return new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": " + message);
    }

    private static String sha256(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, file + " cannot be read", e);
        } catch (NoSuchAlgorithmException e) {
            throw new SdxlException(ErrorCode.INTERNAL, "SHA-256 is not available", e);
        }
    }

    /** The file name without its extension: the name A1111 and ComfyUI know the embedding by. */
    static String nameOf(Path file) {
        String n = file.getFileName().toString();
        return n.toLowerCase(Locale.ROOT).endsWith(".safetensors") ? n.substring(0, n.length() - ".safetensors".length()) : n;
    }

    public Path file() {
        return file;
    }

    /** The file name without ".safetensors". */
    public String name() {
        return name;
    }

    /** SHA-256 of the file, lower-case hex. */
    public String sha256() {
        return sha256;
    }

    /** AUTOMATIC1111's short hash of an embedding (its "TI hashes" infotext entry): the first 12 hex digits of SHA-256. */
    public String shortHash() {
        return sha256.substring(0, 12);
    }

    /** How many vectors (tokens) the embedding stands for. */
    public int vectors() {
        return vectors;
    }

    /** The vectors for one encoder, [vectors, width] row-major (a copy): key {@link #CLIP_L} or {@link #CLIP_G}. */
    public float[] vectors(String key) {
        return switch (key) {
            case CLIP_L -> clipL.clone();
            case CLIP_G -> clipG.clone();
            default -> throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "key must be clip_l or clip_g, got " + key);
        };
    }

    /** The vector width for one encoder (768 / 1280 for real SDXL). */
    public int width(String key) {
        return switch (key) {
            case CLIP_L -> widthL;
            case CLIP_G -> widthG;
            default -> throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "key must be clip_l or clip_g, got " + key);
        };
    }

    /** The tokens an embedding loaded as {@code token} adds: token, token_1, ..., token_{n-1} (diffusers' names). */
    public List<String> tokens(String token) {
        String[] out = new String[vectors];
        out[0] = token;
        for (int i = 1; i < vectors; i++) {
            out[i] = token + "_" + i;
        }
        return List.of(out);
    }

    @Override
    public String toString() {
        return "TextualInversion[" + file + ", " + vectors + " vectors, clip_l " + widthL + ", clip_g " + widthG + "]";
    }
}
