package io.sdxl4j;

/** What went wrong, as a stable code; numbers are shared with the native core ({@code sdxl::ErrorCode}). */
public enum ErrorCode {
    /** A request, shape, dtype or option is not acceptable. */
    INVALID_ARGUMENT(1),
    /** A file, tensor, model component or key does not exist. */
    NOT_FOUND(2),
    /** A weight or config file is corrupt, truncated or does not match what the model needs. */
    BAD_MODEL_FILE(3),
    /** Host or device memory ran out. */
    OUT_OF_MEMORY(4),
    /** The GPU or its driver failed, or CUDA was asked for where there is none. */
    DEVICE_ERROR(5),
    /** The caller cancelled the work. */
    CANCELLED(6),
    /** Valid, but not supported by this build or backend. */
    UNSUPPORTED(7),
    /** A bug in sdxl4j: please report it with the message. */
    INTERNAL(8);

    private final int number;

    ErrorCode(int number) {
        this.number = number;
    }

    /** The native number of this code. */
    public int number() {
        return number;
    }

    /** The code with this name; INTERNAL for a name this version does not know. */
    public static ErrorCode fromName(String name) {
        for (ErrorCode c : values()) {
            if (c.name().equals(name)) {
                return c;
            }
        }
        return INTERNAL;
    }
}
