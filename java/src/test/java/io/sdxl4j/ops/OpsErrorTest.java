package io.sdxl4j.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.Ops;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Tensor;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** Bad shapes and arguments: SdxlException(INVALID_ARGUMENT) whose message names the op (and never a crash). */
class OpsErrorTest {

    private static Tensor zeros(long... shape) {
        return Tensor.of(new float[HostArray.numel(shape)], shape);
    }

    private static void assertInvalid(String op, Supplier<Tensor> call) {
        SdxlException e = assertThrows(SdxlException.class, () -> {
            try (Tensor unexpected = call.get()) {
                // closes a result if the op wrongly succeeded
            }
        });
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(op), "message should name " + op + ": " + e.getMessage());
    }

    @Test
    void badShapesAreInvalidArgumentsNamingTheOp() {
        try (Tensor x23 = zeros(2, 3); Tensor w45 = zeros(4, 5); Tensor img = zeros(1, 3, 8, 8);
             Tensor w2ch = zeros(4, 2, 3, 3); Tensor w3ch = zeros(4, 3, 3, 3); Tensor img6 = zeros(1, 6, 4, 4);
             Tensor q = zeros(1, 2, 5, 8); Tensor k6 = zeros(1, 2, 7, 6); Tensor k8 = zeros(1, 2, 7, 8);
             Tensor v = zeros(1, 2, 7, 4); Tensor v9 = zeros(1, 2, 9, 4); Tensor mask = zeros(1, 9);
             Tensor x4 = zeros(4); Tensor x33 = zeros(3, 3); Tensor odd = zeros(2, 5); Tensor b3 = zeros(3);
             Tensor t2 = zeros(2, 1); Tensor w43 = zeros(4, 3)) {
            assertInvalid("linear", () -> Ops.linear(x23, w45, null));
            assertInvalid("linear", () -> Ops.linear(x23, w43, b3)); // bias [3] for 4 outputs
            assertInvalid("matmul", () -> Ops.matmul(x23, w45));
            assertInvalid("conv2d", () -> Ops.conv2d(img, w2ch, null, 1, 1));
            assertInvalid("conv2d", () -> Ops.conv2d(img, w3ch, null, 0, 1)); // stride 0
            assertInvalid("conv2d", () -> Ops.conv2d(x23, w3ch, null, 1, 1)); // 2-D input
            assertInvalid("group_norm", () -> Ops.groupNorm(img6, 4, null, null, 1e-5f));
            assertInvalid("layer_norm", () -> Ops.layerNorm(x23, x4, null, 1e-5f));
            assertInvalid("attention", () -> Ops.attention(q, k6, v, null, false, 0f));
            assertInvalid("attention", () -> Ops.attention(q, k8, v9, null, false, 0f));
            assertInvalid("attention", () -> Ops.attention(q, k8, v, mask, false, 0f));
            assertInvalid("add", () -> Ops.add(x23, x4));
            assertInvalid("mul", () -> Ops.mul(x23, x33));
            assertInvalid("concat", () -> Ops.concat(List.of(x23, x33), 1));
            assertInvalid("concat", () -> Ops.concat(List.of(x23, x23), 2));
            assertInvalid("slice", () -> Ops.slice(x23, 1, 2, 2));
            assertInvalid("geglu", () -> Ops.geglu(odd));
            assertInvalid("upsample_nearest", () -> Ops.upsampleNearest(img, 0, 4));
            assertInvalid("timestep_embedding", () -> Ops.timestepEmbedding(t2, 320, true, 0f, 1f, 10000f));
        }
    }

    @Test
    void nonFloatInputsAreRejectedOnTheCpu() {
        try (Tensor l = Tensor.ofLongs(new long[] {1, 2, 3}, 3)) {
            assertInvalid("silu", () -> Ops.silu(l));
            assertInvalid("softmax", () -> Ops.softmax(l));
        }
    }
}
