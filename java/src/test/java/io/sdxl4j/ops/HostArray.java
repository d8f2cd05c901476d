package io.sdxl4j.ops;

import io.sdxl4j.Tensor;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * A float array plus its shape (outermost first, contiguous), held on the Java heap: the common currency
 * between the op under test (via {@link #toTensor()}) and the LibTorch oracle. Its {@link #permute} and
 * {@link #narrow} are plain Java index arithmetic, independent of the native views they check.
 */
record HostArray(float[] data, long[] shape) {

    HostArray {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        if (n != data.length) {
            throw new IllegalArgumentException(data.length + " values for shape " + Arrays.toString(shape));
        }
    }

    static int numel(long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return Math.toIntExact(n);
    }

    /** Normal(0, std) values. */
    static HostArray randn(SplittableRandom r, double std, long... shape) {
        float[] a = new float[numel(shape)];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (r.nextGaussian() * std);
        }
        return new HostArray(a, shape.clone());
    }

    /** Uniform values in [lo, hi). */
    static HostArray uniform(SplittableRandom r, double lo, double hi, long... shape) {
        float[] a = new float[numel(shape)];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) r.nextDouble(lo, hi);
        }
        return new HostArray(a, shape.clone());
    }

    /** A weight as torch's default init draws it: uniform in +-1/sqrt(fanIn), so outputs stay O(1). */
    static HostArray weight(SplittableRandom r, long fanIn, long... shape) {
        double bound = 1.0 / Math.sqrt(fanIn);
        return uniform(r, -bound, bound, shape);
    }

    int numel() {
        return data.length;
    }

    /** A new native F32 tensor with a copy of the values (caller closes it). */
    Tensor toTensor() {
        return Tensor.of(data, shape);
    }

    static HostArray of(Tensor t) {
        return new HostArray(t.toFloatArray(), t.shape());
    }

    long[] strides() {
        long[] s = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= shape[i];
        }
        return s;
    }

    /** The values of the view {@code shape[dims[i]]} (as torch's permute), made contiguous. */
    HostArray permute(int... dims) {
        long[] src = strides();
        long[] outShape = new long[dims.length];
        long[] outSrcStride = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            outShape[i] = shape[dims[i]];
            outSrcStride[i] = src[dims[i]];
        }
        return gather(outShape, outSrcStride, 0);
    }

    /** The values of entries [start, start + length) of dimension dim, made contiguous. */
    HostArray narrow(int dim, long start, long length) {
        long[] src = strides();
        long[] outShape = shape.clone();
        outShape[dim] = length;
        return gather(outShape, src, start * src[dim]);
    }

    private HostArray gather(long[] outShape, long[] srcStride, long offset) {
        float[] out = new float[numel(outShape)];
        long[] idx = new long[outShape.length];
        for (int i = 0; i < out.length; i++) {
            long p = offset;
            for (int d = 0; d < idx.length; d++) {
                p += idx[d] * srcStride[d];
            }
            out[i] = data[(int) p];
            for (int d = idx.length - 1; d >= 0; d--) {
                if (++idx[d] < outShape[d]) {
                    break;
                }
                idx[d] = 0;
            }
        }
        return new HostArray(out, outShape);
    }

    @Override
    public String toString() {
        return "HostArray" + Arrays.toString(shape);
    }
}
