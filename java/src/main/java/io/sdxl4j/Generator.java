package io.sdxl4j;

import io.sdxl4j.internal.Native;
import io.sdxl4j.nat.LongVector;
import io.sdxl4j.nat.NativeGenerator;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A random stream that reproduces {@code torch.Generator("cpu").manual_seed(seed)} followed by
 * {@code torch.randn(shape, generator=g)} (float32) bit for bit, on any machine: the same seed gives the same
 * initial latents as diffusers. Successive {@link #randn} calls continue the stream exactly as successive
 * {@code torch.randn} calls on one torch generator do, so one generator can be handed from the base
 * pipeline to the refiner and keep drawing where it stopped.
 *
 * <p>Seeds: every 64-bit value is accepted and means what it means to torch. A seed above
 * {@code Long.MAX_VALUE} (torch accepts up to 2^64 - 1) is passed as its two's complement, e.g.
 * {@code Generator.seeded(Long.parseUnsignedLong("18446744073709551615"))}; a negative Python seed likewise
 * equals the same negative long. As in torch, only the low 32 bits of the seed reach the Mersenne Twister.
 *
 * <p>Not a {@link java.util.Random}: calls from several threads are serialised but interleave in an
 * unspecified order. Close it when done ({@code close()} is idempotent).
 */
public final class Generator implements AutoCloseable {
    private NativeGenerator handle;

    private Generator(NativeGenerator handle) {
        this.handle = handle;
    }

    /** {@code torch.Generator("cpu").manual_seed(seed)}; see the class comment for seeds of 2^63 and above. */
    public static Generator seeded(long seed) {
        Sdxl4j.load();
        return Native.call(() -> new Generator(new NativeGenerator(seed)));
    }

    /** The native handle, for calls into io.sdxl4j.nat. Internal. */
    public NativeGenerator handle() {
        if (handle == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "generator is closed");
        }
        return handle;
    }

    /** The seed this stream was last seeded with (as a long; read it with Long.toUnsignedString if needed). */
    public long initialSeed() {
        return Native.call(() -> handle().initial_seed());
    }

    /** {@code manual_seed(seed)}: restarts this stream. */
    public void manualSeed(long seed) {
        Native.run(() -> handle().manual_seed(seed));
    }

    /** An independent generator that continues from this one's current state (a deep copy). */
    public Generator copy() {
        return Native.call(() -> new Generator(handle().clone()));
    }

    /**
     * {@code torch.randn(shape, generator=this)}: a new contiguous F32 CPU tensor (caller closes it); advances
     * the stream. Torch draws fewer than 16 elements with a different algorithm than 16 or more, and that is
     * reproduced too.
     */
    public Tensor randn(long... shape) {
        return Native.call(() -> Tensor.wrap(handle().randn(new LongVector(shape))));
    }

    /**
     * diffusers' {@code randn_tensor(shape, generator=perBatch)} with a list of generators: item {@code i} of the
     * batch is {@code perBatch.get(i).randn(1, shape[1], ...)}, and the items are concatenated on dimension 0.
     * This differs from one generator drawing the whole batch. As in diffusers, a list of one generator is
     * treated as that single generator (it draws the full shape).
     *
     * @throws SdxlException INVALID_ARGUMENT if the shape is empty or the list size is neither 1 nor shape[0]
     */
    public static Tensor randnTensor(List<Generator> perBatch, long... shape) {
        if (perBatch == null || perBatch.isEmpty() || shape.length == 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                    "randnTensor: need at least one generator and a shape with a batch dimension");
        }
        if (perBatch.size() == 1) {
            return perBatch.get(0).randn(shape);
        }
        if (perBatch.size() != shape[0]) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "randnTensor: " + perBatch.size()
                    + " generators for a batch of " + shape[0] + " (shape " + Arrays.toString(shape) + ")");
        }
        long[] itemShape = shape.clone();
        itemShape[0] = 1;
        List<Tensor> items = new ArrayList<>(perBatch.size());
        try {
            for (Generator g : perBatch) {
                items.add(g.randn(itemShape));
            }
            return Ops.concat(items, 0);
        } finally {
            items.forEach(Tensor::close);
        }
    }

    /** Releases this handle (other copies of the stream are unaffected); idempotent. */
    @Override
    public void close() {
        NativeGenerator h = handle;
        handle = null;
        if (h != null) {
            h.close();
        }
    }
}
