package io.sdxl4j.io;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.NativeSafetensorsFile;
import io.sdxl4j.nat.StringVector;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A .safetensors file memory-mapped and strictly validated by the native core. {@link #tensor} returns views
 * of the mapping without copying; they stay valid after this file is closed.
 */
public final class SafetensorsFile implements AutoCloseable {
    private NativeSafetensorsFile handle;
    private final Path path;

    private SafetensorsFile(NativeSafetensorsFile handle, Path path) {
        this.handle = handle;
        this.path = path;
    }

    /**
     * Opens and validates a file.
     *
     * @throws SdxlException NOT_FOUND if it cannot be read, BAD_MODEL_FILE if it is not a valid safetensors file
     */
    public static SafetensorsFile open(Path path) {
        Sdxl4j.load();
        String p = path.toAbsolutePath().toString();
        return Native.call(() -> new SafetensorsFile(NativeSafetensorsFile.open(p), path));
    }

    private NativeSafetensorsFile handle() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, path + ": file is closed");
        }
        return handle;
    }

    public Path path() {
        return path;
    }

    /** Tensor names, sorted. */
    public List<String> names() {
        return Native.call(() -> strings(handle().names()));
    }

    public boolean contains(String name) {
        return Native.call(() -> handle().contains(name));
    }

    /** The dtype name as written in the file ("F32", "F16", "BF16", "I64", ...). */
    public String dtypeName(String name) {
        return Native.call(() -> handle().dtype_name(name));
    }

    public long[] shape(String name) {
        return Native.call(() -> handle().shape(name).get());
    }

    /** The {@code __metadata__} entries in file order. */
    public Map<String, String> metadata() {
        return Native.call(() -> {
            Map<String, String> out = new LinkedHashMap<>();
            for (String k : strings(handle().metadata_keys())) {
                String v = handle().metadata_value(k);
                out.put(k, v == null ? "" : v); // JavaCPP maps an empty std::string to null
            }
            return out;
        });
    }

    /** A zero-copy view of a tensor in its file dtype. */
    public Tensor tensor(String name) {
        return Native.call(() -> Tensor.wrap(handle().get(name)));
    }

    /** A tensor widened to F32 (F16, BF16 and the 8-bit F8_E4M3 / F8_E5M2 are converted exactly). */
    public Tensor tensorF32(String name) {
        return Native.call(() -> Tensor.wrap(handle().get_f32(name)));
    }

    private static List<String> strings(StringVector v) {
        try (v) {
            List<String> out = new ArrayList<>((int) v.size());
            for (long i = 0; i < v.size(); i++) {
                org.bytedeco.javacpp.BytePointer s = v.get(i);
                out.add(s == null ? "" : s.getString()); // JavaCPP maps an empty std::string to null
            }
            return out;
        }
    }

    @Override
    public void close() {
        NativeSafetensorsFile h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
