package io.sdxl4j;

import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.global.sdxl;

/** Facts about the loaded native core, and its process-wide settings. */
public final class Sdxl4j {
    private Sdxl4j() {}

    /**
     * Loads the native libraries (libopenblas, libsdxl and its JNI glue, extracted from the jars by JavaCPP).
     * Called implicitly by every API; call it early to fail fast.
     *
     * @throws SdxlException UNSUPPORTED when this platform has no native build
     */
    public static void load() {
        try {
            org.bytedeco.javacpp.Loader.load(sdxl.class);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            throw new SdxlException(ErrorCode.UNSUPPORTED,
                    "cannot load the sdxl4j native library for " + org.bytedeco.javacpp.Loader.getPlatform()
                            + " (only linux-x86_64 is built): " + e.getMessage(), e);
        }
    }

    /** Version of the native core. */
    public static String version() {
        load();
        return Native.call(() -> sdxl.version().getString());
    }

    /** Whether this build has the CUDA backend compiled in. */
    public static boolean cudaCompiled() {
        load();
        return Native.call(sdxl::cuda_compiled);
    }

    /** Whether a CUDA device is usable right now. */
    public static boolean cudaAvailable() {
        load();
        return Native.call(sdxl::cuda_available);
    }

    /** One line about the CUDA devices, or why there are none. */
    public static String cudaStatus() {
        load();
        return Native.call(() -> sdxl.cuda_status().getString());
    }

    /** The CUDA device this process runs on: 0 unless {@link #selectCudaDevice} chose another. */
    public static int cudaDevice() {
        load();
        return Native.call(sdxl::cuda_device);
    }

    /**
     * Runs this process's CUDA work on device {@code ordinal} (as numbered after {@code CUDA_VISIBLE_DEVICES}), like
     * {@code torch.cuda.set_device}: call it before loading a pipeline on {@link Device#CUDA}. One device per process:
     * once CUDA work has run, only the same ordinal is accepted (several GPUs: one process each).
     *
     * @throws SdxlException INVALID_ARGUMENT for an ordinal that does not exist or a move after CUDA work ran;
     *                       DEVICE_ERROR without a usable CUDA device; UNSUPPORTED in a build without CUDA
     */
    public static void selectCudaDevice(int ordinal) {
        load();
        Native.run(() -> sdxl.select_cuda_device(ordinal));
    }

    /**
     * Bytes held by tensors the native core allocated on a device (memory-mapped weights are not counted). A
     * generation that releases everything leaves this where it was; used to check for leaks.
     */
    public static long liveAllocatedBytes(Device device) {
        load();
        return Native.call(() -> sdxl.live_allocated_bytes(device.code()));
    }

    /** Threads the CPU backend uses. */
    public static int numThreads() {
        load();
        return Native.call(sdxl::num_threads);
    }

    /** Sets the CPU backend's thread count (at least 1). */
    public static void setNumThreads(int n) {
        load();
        Native.run(() -> sdxl.set_num_threads(n));
    }
}
