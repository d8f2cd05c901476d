package io.sdxl4j;

import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * A model held by the pipeline. Without offload it is loaded once, when the pipeline loads. With model-level
 * offload (diffusers' enable_model_cpu_offload) it is loaded onto the device when a phase of a generation
 * needs it (text encoding, the denoising loop, the VAE) and released when the last user is done, so only
 * one component occupies the device at a time; the weights stay memory-mapped on the host.
 */
final class Slot<T extends AutoCloseable> implements AutoCloseable {
    private final Supplier<T> loader;
    private final boolean offload;
    private T model;
    private int users;
    private boolean closed;
    private Consumer<T> onLoad;  // overlays (LoRA) re-applied to a freshly loaded model

    Slot(Supplier<T> loader, boolean offload) {
        this.loader = loader;
        this.offload = offload;
        if (!offload) {
            model = loader.get();
        }
    }

    synchronized T get() {
        if (closed) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the pipeline is closed");
        }
        if (model == null) {
            T m = loader.get();
            if (onLoad != null) {
                try {
                    onLoad.accept(m);
                } catch (RuntimeException e) {
                    closeQuietly(m);
                    throw e;
                }
            }
            model = m;
        }
        return model;
    }

    /** Sets what is done to each model this slot loads from now on (not to the one loaded now). */
    synchronized void onLoad(Consumer<T> hook) {
        onLoad = hook;
    }

    /** The model if it is loaded now, else null (does not load it). */
    synchronized T ifLoaded() {
        return model;
    }

    /** Marks the start of a phase that uses the model (loads it when offloaded). */
    synchronized T acquire() {
        T m = get();
        users++;
        return m;
    }

    /** Ends a phase; an offloaded model no one uses any more is released. */
    synchronized void release() {
        users = Math.max(0, users - 1);
        if (offload && users == 0 && model != null) {
            closeQuietly(model);
            model = null;
        }
    }

    synchronized boolean loaded() {
        return model != null;
    }

    @Override
    public synchronized void close() {
        closed = true;
        if (model != null) {
            closeQuietly(model);
            model = null;
        }
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // closing native handles does not fail
        }
    }
}
