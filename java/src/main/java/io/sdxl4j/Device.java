package io.sdxl4j;

/** Where a tensor lives; numbers shared with the native core. */
public enum Device {
    CPU(0),
    CUDA(1);

    private final int code;

    Device(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    static Device fromCode(int code) {
        return code == 1 ? CUDA : CPU;
    }
}
