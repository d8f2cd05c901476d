package io.sdxl4j;

import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.LongVector;
import io.sdxl4j.nat.NativeTensor;

/**
 * An n-dimensional array held by the native core (host or device memory). Shapes are outermost first, as in
 * PyTorch. Factory methods copy the Java array in; {@code toFloatArray()} and friends copy out. Views
 * ({@link #narrow}, {@link #permute}, {@link #reshape} of a contiguous tensor) share memory with their source.
 * Close every tensor you create (try-with-resources); {@code close()} is idempotent, and memory a view
 * shares stays alive until the last handle is closed.
 */
public final class Tensor implements AutoCloseable {
    private NativeTensor handle;

    private Tensor(NativeTensor handle) {
        this.handle = handle;
    }

    /** Wraps a handle returned by a native call (takes ownership). Internal. */
    public static Tensor wrap(NativeTensor handle) {
        return new Tensor(handle);
    }

    /** A contiguous F32 CPU tensor with a copy of {@code data}; its length must equal the product of {@code shape}. */
    public static Tensor of(float[] data, long... shape) {
        checkLength(data.length, shape);
        Sdxl4j.load();
        return Native.call(() -> wrap(NativeTensor.from_floats(data, new LongVector(shape))));
    }

    /** A contiguous I64 CPU tensor with a copy of {@code data}. */
    public static Tensor ofLongs(long[] data, long... shape) {
        checkLength(data.length, shape);
        Sdxl4j.load();
        return Native.call(() -> wrap(NativeTensor.from_longs(data, new LongVector(shape))));
    }

    /** A contiguous CPU tensor of {@code dtype} from raw little-endian bytes (numel * dtype.size() of them). */
    public static Tensor ofBytes(byte[] data, DType dtype, long... shape) {
        Sdxl4j.load();
        return Native.call(() -> wrap(NativeTensor.from_bytes(data, data.length, dtype.code(), new LongVector(shape))));
    }

    private static void checkLength(int length, long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "negative dimension in shape " + java.util.Arrays.toString(shape));
            }
            n *= d;
        }
        if (n != length) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "array of " + length + " elements does not fit shape "
                    + java.util.Arrays.toString(shape) + " (" + n + " elements)");
        }
    }

    /** The native handle, for calls into io.sdxl4j.nat. Internal. */
    public NativeTensor handle() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "tensor is closed");
        }
        return handle;
    }

    public long[] shape() {
        return Native.call(() -> handle().shape().get());
    }

    public long[] strides() {
        return Native.call(() -> handle().strides().get());
    }

    public DType dtype() {
        return DType.fromCode(Native.call(() -> handle().dtype()));
    }

    public Device device() {
        return Device.fromCode(Native.call(() -> handle().device()));
    }

    public long numel() {
        return Native.call(() -> handle().numel());
    }

    public boolean isContiguous() {
        return Native.call(() -> handle().is_contiguous());
    }

    /** Copies the values out as floats (F16/BF16/I64 converted). */
    public float[] toFloatArray() {
        long n = numel();
        checkArraySize(n);
        float[] out = new float[(int) n];
        Native.run(() -> handle().copy_to_floats(out, n));
        return out;
    }

    /** Copies the values out; I64 tensors only. */
    public long[] toLongArray() {
        long n = numel();
        checkArraySize(n);
        long[] out = new long[(int) n];
        Native.run(() -> handle().copy_to_longs(out, n));
        return out;
    }

    /** Copies the raw little-endian bytes out, in this tensor's dtype, contiguous. */
    public byte[] toByteArray() {
        long n = numel() * dtype().size();
        checkArraySize(n);
        byte[] out = new byte[(int) n];
        Native.run(() -> handle().copy_to_bytes(out, n));
        return out;
    }

    private static void checkArraySize(long n) {
        if (n > Integer.MAX_VALUE - 8) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "tensor of " + n + " elements does not fit a Java array");
        }
    }

    /** This tensor converted to {@code dtype} (this tensor itself if it already is). */
    public Tensor to(DType dtype) {
        return Native.call(() -> wrap(handle().to_dtype(dtype.code())));
    }

    /** This tensor copied to {@code device} (a new handle on the same data if already there). */
    public Tensor to(Device device) {
        return Native.call(() -> wrap(handle().to_device(device.code())));
    }

    public Tensor contiguous() {
        return Native.call(() -> wrap(handle().contiguous()));
    }

    /** Same elements, new shape (one -1 allowed); a view when contiguous. */
    public Tensor reshape(long... shape) {
        return Native.call(() -> wrap(handle().reshape(new LongVector(shape))));
    }

    /** A view with dimensions reordered. */
    public Tensor permute(long... dims) {
        return Native.call(() -> wrap(handle().permute(new LongVector(dims))));
    }

    /** A view of {@code length} entries of dimension {@code dim} from {@code start}. */
    public Tensor narrow(int dim, long start, long length) {
        return Native.call(() -> wrap(handle().narrow(dim, start, length)));
    }

    /** Whether both tensors view the same memory. */
    public boolean sharesStorageWith(Tensor other) {
        return Native.call(() -> handle().shares_storage_with(other.handle()));
    }

    @Override
    public String toString() {
        return handle == null ? "Tensor(closed)" : Native.call(() -> handle.describe().getString());
    }

    /** Releases this handle; idempotent. */
    @Override
    public void close() {
        NativeTensor h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
