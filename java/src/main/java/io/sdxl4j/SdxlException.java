package io.sdxl4j;

/** The one exception sdxl4j throws: an {@link ErrorCode} plus a message saying what was wrong and what to do. */
public final class SdxlException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final ErrorCode code;

    public SdxlException(ErrorCode code, String message) {
        super(code + ": " + message);
        this.code = code;
    }

    public SdxlException(ErrorCode code, String message, Throwable cause) {
        super(code + ": " + message, cause);
        this.code = code;
    }

    public ErrorCode code() {
        return code;
    }
}
