package io.sdxl4j;

/**
 * Cancels a running generation from any thread: the pipeline checks it before every denoising step (and before
 * decoding) and then throws {@link SdxlException} with {@link ErrorCode#CANCELLED}, having released everything
 * the call allocated. A step already running finishes first.
 */
public final class CancellationToken {
    private volatile boolean cancelled;

    public void cancel() {
        cancelled = true;
    }

    public boolean isCancelled() {
        return cancelled;
    }

    void throwIfCancelled(String where) {
        if (cancelled) {
            throw new SdxlException(ErrorCode.CANCELLED, "generation cancelled " + where);
        }
    }
}
