package io.sdxl4j.internal;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The boundary to the native core: every call into {@code io.sdxl4j.nat} goes through {@link #call}, which
 * turns the exception JavaCPP raises for a C++ {@code sdxl::Error} ("SDXL:CODE: message") into an
 * {@link SdxlException} with that code. Not part of the public API.
 */
public final class Native {
    private static final Pattern NATIVE_ERROR = Pattern.compile("^SDXL:([A-Z_]+): (.*)$", Pattern.DOTALL);

    private Native() {}

    /** Runs a native call, translating native errors. */
    public static <T> T call(Supplier<T> body) {
        try {
            return body.get();
        } catch (SdxlException e) {
            throw e;
        } catch (RuntimeException | OutOfMemoryError e) {
            throw translate(e);
        }
    }

    /** As {@link #call(Supplier)} for calls without a result. */
    public static void run(Runnable body) {
        call(() -> {
            body.run();
            return null;
        });
    }

    /** Maps a native exception (or a JavaCPP loading error) to an SdxlException. */
    public static SdxlException translate(Throwable e) {
        String message = e.getMessage() == null ? e.toString() : e.getMessage();
        Matcher m = NATIVE_ERROR.matcher(message);
        if (m.matches()) {
            return new SdxlException(ErrorCode.fromName(m.group(1)), m.group(2), e);
        }
        if (message.contains("bad_alloc") || e instanceof OutOfMemoryError) {
            return new SdxlException(ErrorCode.OUT_OF_MEMORY, "native allocation failed: " + message, e);
        }
        return new SdxlException(ErrorCode.INTERNAL, "unexpected native error: " + message, e);
    }
}
