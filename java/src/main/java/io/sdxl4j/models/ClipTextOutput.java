package io.sdxl4j.models;

import io.sdxl4j.Tensor;
import java.util.List;

/**
 * Outputs of a CLIP text encoder.
 *
 * @param lastHiddenState final_layer_norm of the last layer, [B, L, hidden]
 * @param pooled          the last hidden state at the end-of-text position, projected for text_encoder_2 (text_embeds)
 * @param hiddenStates    embeddings, then every layer's output (num_hidden_layers + 1 entries); SDXL uses the
 *                        second to last, {@link #penultimate()}
 */
public record ClipTextOutput(Tensor lastHiddenState, Tensor pooled, List<Tensor> hiddenStates) implements AutoCloseable {

    /** hidden_states[-2]: what SDXL feeds the UNet (no final layer norm). */
    public Tensor penultimate() {
        return hiddenStates.get(hiddenStates.size() - 2);
    }

    @Override
    public void close() {
        lastHiddenState.close();
        pooled.close();
        hiddenStates.forEach(Tensor::close);
    }
}
