package io.sdxl4j;

import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.text.ClipTokenizer;
import io.sdxl4j.text.EmbeddingReferences;
import java.util.ArrayList;
import java.util.List;

/**
 * Textual-inversion embeddings as an overlay on a pipeline's tokenizers and text encoders (diffusers'
 * {@code load_textual_inversion} for both encoders of SDXL): each loaded embedding adds its tokens
 * ({@code T, T_1, ...}) to every tokenizer, with ids after the existing ones, and its vectors as the matching new rows
 * of every encoder's token-embedding table (clip_l for text_encoder, clip_g for the projected text_encoder_2). The
 * model weights are not touched: the rows ride along with each forward call. Immutable: loading makes a new overlay,
 * so a generation keeps the one it started with.
 */
final class EmbeddingOverlay {
    /** One loaded embedding and the token it was loaded as. */
    record Loaded(String token, TextualInversion embedding) {}

    private final List<Loaded> loaded;
    private final ClipTokenizer[] tokenizers;  // per encoder
    private final float[][] rows;              // per encoder: [added tokens, hidden]
    private final int added;

    private EmbeddingOverlay(List<Loaded> loaded, ClipTokenizer[] tokenizers, float[][] rows, int added) {
        this.loaded = List.copyOf(loaded);
        this.tokenizers = tokenizers;
        this.rows = rows;
        this.added = added;
    }

    /**
     * The overlay of {@code loaded} (in load order) on the engine's encoders.
     *
     * @throws SdxlException INVALID_ARGUMENT if an embedding's vectors do not fit an encoder's width or a token is
     *     already taken; UNSUPPORTED if a tokenizer's size differs from its encoder's vocab_size (the new ids would
     *     not be the new rows)
     */
    static EmbeddingOverlay build(List<SdxlEngine.Encoder> encoders, List<Loaded> loaded) {
        int n = encoders.size();
        ClipTokenizer[] toks = new ClipTokenizer[n];
        float[][] rows = new float[n][];
        int added = 0;
        for (Loaded l : loaded) {
            added += l.embedding().vectors();
        }
        for (int e = 0; e < n; e++) {
            SdxlEngine.Encoder enc = encoders.get(e);
            String key = keyOf(enc);
            int width = (int) enc.config().hiddenSize();
            if (enc.tokenizer().size() != enc.config().vocabSize()) {
                throw new SdxlException(ErrorCode.UNSUPPORTED, "the tokenizer of " + encoderName(enc) + " has "
                        + enc.tokenizer().size() + " tokens but the encoder's vocab_size is " + enc.config().vocabSize()
                        + "; textual inversion needs them equal (new token ids = new embedding rows)");
            }
            List<String> tokens = new ArrayList<>();
            float[] r = new float[added * width];
            int at = 0;
            for (Loaded l : loaded) {
                TextualInversion ti = l.embedding();
                if (ti.width(key) != width) {
                    throw new SdxlException(ErrorCode.INVALID_ARGUMENT, ti.file() + ": " + key + " vectors are " + ti.width(key)
                            + " wide but " + encoderName(enc) + " has hidden size " + width + " (an embedding for another "
                            + "model; SDXL's are clip_l 768 / clip_g 1280)");
                }
                tokens.addAll(ti.tokens(l.token()));
                float[] v = ti.vectors(key);
                System.arraycopy(v, 0, r, at, v.length);
                at += v.length;
            }
            toks[e] = enc.tokenizer().withAddedTokens(tokens);
            rows[e] = r;
        }
        return new EmbeddingOverlay(loaded, toks, rows, added);
    }

    /** clip_g feeds the projected encoder (text_encoder_2, the refiner's only one), clip_l the other. */
    static String keyOf(SdxlEngine.Encoder enc) {
        return enc.projection() ? TextualInversion.CLIP_G : TextualInversion.CLIP_L;
    }

    private static String encoderName(SdxlEngine.Encoder enc) {
        return enc.projection() ? "text_encoder_2" : "text_encoder";
    }

    List<Loaded> loaded() {
        return loaded;
    }

    boolean isEmpty() {
        return loaded.isEmpty();
    }

    ClipTokenizer tokenizer(int e) {
        return tokenizers[e];
    }

    /** The encoder's model with the added rows (a view sharing its weights), or the model itself when none. */
    ClipTextModel model(int e, ClipTextModel model) {
        return added == 0 ? model : model.withAddedTokenEmbeddings(rows[e], added);
    }

    /** diffusers' maybe_convert_prompt for every prompt (the tokenizers share their added tokens, so one serves). */
    List<String> expand(List<String> prompts) {
        if (added == 0 || prompts == null) {
            return prompts;
        }
        List<String> out = new ArrayList<>(prompts.size());
        for (String p : prompts) {
            out.add(EmbeddingReferences.expandMultiVector(p, tokenizers[0]));
        }
        return out;
    }
}
