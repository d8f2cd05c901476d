package io.sdxl4j;

/** Element types of tensors; numbers shared with the native core. */
public enum DType {
    F32(0, 4),
    F16(1, 2),
    BF16(2, 2),
    I64(3, 8);

    private final int code;
    private final int size;

    DType(int code, int size) {
        this.code = code;
        this.size = size;
    }

    /** Native code of this dtype. */
    public int code() {
        return code;
    }

    /** Bytes per element. */
    public int size() {
        return size;
    }

    static DType fromCode(int code) {
        for (DType t : values()) {
            if (t.code == code) {
                return t;
            }
        }
        throw new SdxlException(ErrorCode.INTERNAL, "native core returned unknown dtype code " + code);
    }
}
