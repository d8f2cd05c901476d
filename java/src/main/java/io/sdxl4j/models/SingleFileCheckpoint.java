package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeSingleFileCheckpoint;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * A single-file SDXL checkpoint in the original SGM / AUTOMATIC1111 layout (the one {@code .safetensors} that
 * Civitai and most fine-tunes ship), opened by the native core: it refuses files that are not SDXL in this layout
 * (SD 1.x/2.x, SD3, Flux, LoRA, ...) and pickles ({@code .ckpt}) with {@link ErrorCode#BAD_MODEL_FILE}. The
 * models' {@code load(SingleFileCheckpoint, ...)} map its keys to diffusers names natively (no second copy of the
 * weights). Keeps the file mapped until closed (models loaded from it keep their own reference).
 */
public final class SingleFileCheckpoint implements AutoCloseable {
    private NativeSingleFileCheckpoint handle;
    private final Path path;
    private String sha256;

    private SingleFileCheckpoint(NativeSingleFileCheckpoint handle, Path path) {
        this.handle = handle;
        this.path = path;
    }

    public static SingleFileCheckpoint open(Path path) {
        Sdxl4j.load();
        if (!Files.isRegularFile(path)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, path + ": no such checkpoint file");
        }
        return Native.call(() -> new SingleFileCheckpoint(NativeSingleFileCheckpoint.open(path.toString()), path));
    }

    /** Whether a path names a single file to load with {@link #open} (rather than a diffusers folder). */
    public static boolean isSingleFile(Path path) {
        if (!Files.isRegularFile(path)) {
            return false;
        }
        String name = path.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
        return name.endsWith(".safetensors") || name.endsWith(".ckpt") || name.endsWith(".pt")
                || name.endsWith(".pth") || name.endsWith(".bin");
    }

    public Path path() {
        return path;
    }

    /** An SDXL refiner checkpoint (OpenCLIP-G only, 4 UNet levels) rather than a base one. */
    public boolean isRefiner() {
        return Native.call(() -> handle().is_refiner());
    }

    /**
     * "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2" or "mixed" (fp8 checkpoints usually keep norms and biases in
     * F16/F32): how the weights are stored (they are widened to F32 when loaded).
     */
    public String storageDtype() {
        return Native.call(() -> handle().storage_dtype().getString());
    }

    /** The file name without its extension: what AUTOMATIC1111 records as {@code Model}. */
    public String stem() {
        String name = path.getFileName().toString();
        int dot = name.lastIndexOf('.');
        return dot > 0 ? name.substring(0, dot) : name;
    }

    /** The SHA-256 of the whole file (hex), computed once. */
    public synchronized String sha256() {
        if (sha256 == null) {
            try (InputStream in = Files.newInputStream(path)) {
                MessageDigest md = MessageDigest.getInstance("SHA-256");
                byte[] buf = new byte[1 << 20];
                for (int n; (n = in.read(buf)) > 0; ) {
                    md.update(buf, 0, n);
                }
                sha256 = HexFormat.of().formatHex(md.digest());
            } catch (IOException e) {
                throw new SdxlException(ErrorCode.NOT_FOUND, path + ": cannot read: " + e.getMessage(), e);
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
        }
        return sha256;
    }

    /**
     * AUTOMATIC1111's {@code Model hash}: the first 10 hex digits of the file's SHA-256 (its "shorthash", also what
     * Civitai matches on).
     */
    public String a1111Hash() {
        return sha256().substring(0, 10);
    }

    public NativeSingleFileCheckpoint handle() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "SingleFileCheckpoint is closed");
        }
        return handle;
    }

    @Override
    public void close() {
        NativeSingleFileCheckpoint h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
