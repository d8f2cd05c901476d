package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.LoraMode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeLoraFile;
import io.sdxl4j.nat.NativeLoraList;
import io.sdxl4j.nat.StringVector;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * A LoRA file, parsed and checked by the native core: kohya / AUTOMATIC1111 ({@code lora_unet_}, {@code lora_te1_},
 * {@code lora_te2_} with {@code .lora_down/.lora_up/.alpha}; UNet names in the SGM numbering or the diffusers-path
 * style; LoCon convs; LyCORIS LoHa {@code .hada_*} and LoKr {@code .lokr_*} under the same names) or diffusers / PEFT
 * ({@code unet.}, {@code text_encoder.}, {@code text_encoder_2.} with {@code .lora_A/.lora_B}). Models apply it with
 * {@code setLoras}; pipelines with {@code loadLora}.
 */
public final class LoraFile implements AutoCloseable {
    private NativeLoraFile handle;
    private final Path path;
    private String a1111Hash;

    private LoraFile(NativeLoraFile handle, Path path) {
        this.handle = handle;
        this.path = path;
    }

    /**
     * Opens and checks a LoRA file.
     *
     * @param lenient skip keys of no known LoRA format instead of refusing the file
     * @throws SdxlException BAD_MODEL_FILE naming what is wrong (a down without its up, shapes that are no rank-r
     *     pair, non-float dtypes, unknown keys unless lenient); NOT_FOUND for a missing file
     */
    public static LoraFile open(Path path, boolean lenient) {
        Sdxl4j.load();
        return Native.call(() -> new LoraFile(NativeLoraFile.open(path.toString(), lenient), path));
    }

    public Path path() {
        return path;
    }

    /** "kohya" or "peft". */
    public String format() {
        return Native.call(() -> handle().format().getString());
    }

    public boolean lenient() {
        return Native.call(() -> handle().lenient());
    }

    public long moduleCount() {
        return Native.call(() -> handle().module_count());
    }

    /** The components it has modules for: "unet", "text_encoder", "text_encoder_2". */
    public List<String> components() {
        return Native.call(() -> strings(handle().components()));
    }

    /** For a lenient file: the keys it skipped. */
    public List<String> ignoredKeys() {
        return Native.call(() -> strings(handle().ignored_keys()));
    }

    /** A1111's LoRA name: the file name without its last extension ("detail.safetensors" -> "detail"). */
    public String name() {
        String n = path.getFileName().toString();
        int dot = n.lastIndexOf('.');
        return dot > 0 ? n.substring(0, dot) : n;
    }

    /**
     * AUTOMATIC1111's LoRA hash as its infotext writes it ({@code Lora hashes}): the first 12 hex digits of the
     * SHA-256 of the file's tensor data (the bytes after the header, kohya's "addnet" hash, so that editing the
     * metadata does not change it). Computed on first use.
     */
    public synchronized String a1111Hash() {
        if (a1111Hash == null) {
            try (InputStream in = Files.newInputStream(path)) {
                byte[] len = in.readNBytes(8);
                if (len.length < 8) {
                    throw new SdxlException(ErrorCode.BAD_MODEL_FILE, path + ": too short for a safetensors file");
                }
                long n = ByteBuffer.wrap(len).order(ByteOrder.LITTLE_ENDIAN).getLong();
                in.skipNBytes(n);
                MessageDigest sha = MessageDigest.getInstance("SHA-256");
                byte[] buf = new byte[1 << 16];
                for (int r; (r = in.read(buf)) > 0; ) {
                    sha.update(buf, 0, r);
                }
                a1111Hash = HexFormat.of().formatHex(sha.digest()).substring(0, 12);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
        }
        return a1111Hash;
    }

    public NativeLoraFile handle() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "LoraFile is closed");
        }
        return handle;
    }

    /** The native (file, scale, mode) list for the models' set_loras. The caller closes it. */
    static NativeLoraList toNative(List<LoraFile> loras, double[] scales, List<LoraMode> modes) {
        if (loras.size() != scales.length || loras.size() != modes.size()) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, loras.size() + " LoRAs but " + scales.length
                    + " scales and " + modes.size() + " modes");
        }
        NativeLoraList list = new NativeLoraList();
        for (int i = 0; i < scales.length; i++) {
            list.add(loras.get(i).handle(), scales[i], modes.get(i) != LoraMode.UNFUSED);
        }
        return list;
    }

    static List<LoraMode> allFused(int n) {
        return java.util.Collections.nCopies(n, LoraMode.FUSED);
    }

    static List<String> strings(StringVector v) {
        try (v) {
            List<String> out = new ArrayList<>();
            for (long i = 0; i < v.size(); i++) {
                out.add(v.get(i).getString());
            }
            return List.copyOf(out);
        }
    }

    @Override
    public void close() {
        NativeLoraFile h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
