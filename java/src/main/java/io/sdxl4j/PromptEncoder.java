package io.sdxl4j;

import io.sdxl4j.SdxlEngine.Cond;
import io.sdxl4j.SdxlEngine.Encoder;
import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.ClipTextOutput;
import io.sdxl4j.text.A1111Prompt;
import io.sdxl4j.text.ClipTokenizer;
import io.sdxl4j.text.Compel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * diffusers' encode_prompt for SDXL's text encoders, in the four prompt syntaxes: plain (77 tokens, truncated),
 * compel (weights, blends, long prompts), AUTOMATIC1111 (75-token chunks with emphasis) and precomputed embeddings;
 * the negative prompt (or zeros), padding long prompts to the same length, and the repetition and batching the
 * UNet's conditioning needs. Embeddings named in prompts are resolved through the pipeline's
 * {@link LoadedEmbeddings}. The caller holds the text encoders for the phase (offload).
 */
final class PromptEncoder {
    private final Components parts;
    private final List<Encoder> encoders;
    private final LoadedEmbeddings embeddings;

    PromptEncoder(Components parts, LoadedEmbeddings embeddings) {
        this.parts = parts;
        this.encoders = parts.encoders;
        this.embeddings = embeddings;
    }

    private int pooledDim() {
        return parts.pooledDim();
    }

    private static SdxlException bad(String message) {
        return new SdxlException(ErrorCode.INVALID_ARGUMENT, message);
    }

    /** {positive, negative-or-null} for the prompt batch (before images-per-prompt repetition). */
    Cond[] encode(GenerationRequest r, Plan plan) {
        boolean guided = r.guidanceScale() > 1.0;
        int b = plan.batch;
        Cond pos;
        Cond neg = null;
        if (r.embeddings() != null) {
            PromptEmbeddings e = r.embeddings();
            pos = fromTensors(e.promptEmbeds(), e.pooledPromptEmbeds(), "prompt");
            if (guided && e.negativePromptEmbeds() != null) {
                neg = fromTensors(e.negativePromptEmbeds(), e.negativePooledPromptEmbeds(), "negative prompt");
                if (neg.batch() != pos.batch() || neg.tokens() != pos.tokens() || neg.dim() != pos.dim()) {
                    throw bad("negative embeddings [" + neg.batch() + ", " + neg.tokens() + ", " + neg.dim()
                            + "] must have the prompt embeddings' shape [" + pos.batch() + ", " + pos.tokens() + ", "
                            + pos.dim() + "]");
                }
            }
        } else {
            pos = encodeText(r.prompt(), r.prompt2() != null ? r.prompt2() : r.prompt(), r.syntax(), r.truncateLongPrompts());
        }
        if (guided && neg == null) {
            boolean zeros = r.negativePrompt() == null && parts.forceZerosForEmptyPrompt;
            if (zeros) {
                neg = new Cond(new float[pos.embeds().length], pos.batch(), pos.tokens(), pos.dim(),
                        new float[pos.pooled().length], pos.pooledDim());
            } else {
                List<String> n1 = broadcast(r.negativePrompt() != null ? r.negativePrompt() : List.of(""), b);
                List<String> n2 = r.negativePrompt2() != null ? broadcast(r.negativePrompt2(), b) : n1;
                neg = encodeText(n1, n2, r.syntax(), r.truncateLongPrompts());
            }
            if (neg.tokens() != pos.tokens()) {  // long prompts: pad both to the same number of 77-token chunks
                Cond[] padded = padToSameLength(pos, neg, r);
                pos = padded[0];
                neg = padded[1];
            }
        }
        checkConditioningWidth(pos);
        return new Cond[] {pos, neg};
    }

    private void checkConditioningWidth(Cond c) {
        long want = parts.unetConfig.crossAttentionDim();
        if (c.dim() != want) {
            throw bad("prompt embeddings have " + c.dim() + " features; this UNet's cross-attention takes " + want);
        }
        if (c.pooledDim() != pooledDim()) {
            throw bad("pooled embeddings have " + c.pooledDim() + " features; expected " + pooledDim());
        }
    }

    private static List<String> broadcast(List<String> l, int b) {
        if (l.size() == b) {
            return l;
        }
        List<String> out = new ArrayList<>();
        for (int i = 0; i < b; i++) {
            out.add(l.get(0));
        }
        return out;
    }

    private static Cond fromTensors(Tensor embeds, Tensor pooled, String what) {
        long[] s = embeds.shape();
        long[] ps = pooled.shape();
        if (s.length != 3 || ps.length != 2 || ps[0] != s[0]) {
            throw bad(what + " embeddings must be [B, L, D] with pooled [B, P], got " + Arrays.toString(s) + " and "
                    + Arrays.toString(ps));
        }
        return new Cond(embeds.toFloatArray(), (int) s[0], (int) s[1], (int) s[2], pooled.toFloatArray(), (int) ps[1]);
    }

    /**
     * Encodes prompts with every text encoder (prompts1 for the first, prompts2 for text_encoder_2 of the base; the
     * refiner's single encoder reads prompts1, as diffusers zips [prompt, prompt_2] with its one encoder).
     */
    private Cond encodeText(List<String> prompts1, List<String> prompts2, PromptSyntax syntax, boolean truncate) {
        // Textual inversion: embeddings named in the prompts are loaded, names become tokens, multi-vector tokens
        // are expanded (maybe_convert_prompt); ti is null while no embedding is loaded.
        EmbeddingOverlay ti = embeddings.overlayFor(syntax, prompts1, prompts2);
        if (ti != null) {
            prompts1 = ti.expand(embeddings.withTokens(prompts1, syntax, ti));
            prompts2 = ti.expand(embeddings.withTokens(prompts2, syntax, ti));
        }
        switch (syntax) {
            case COMPEL:
                return encodeCompel(prompts1, truncate, ti);
            case A1111:
                return encodeA1111(prompts1, prompts2, ti);
            default:
                return encodePlain(prompts1, prompts2, ti);
        }
    }

    private ClipTokenizer tokenizer(EmbeddingOverlay ti, int e) {
        return ti == null ? encoders.get(e).tokenizer() : ti.tokenizer(e);
    }

    private ClipTextModel model(EmbeddingOverlay ti, int e) {
        ClipTextModel m = encoders.get(e).model();
        return ti == null ? m : ti.model(e, m);
    }

    /** diffusers encode_prompt: each encoder's hidden_states[-2] of the 77-token ids, concatenated on features. */
    private Cond encodePlain(List<String> prompts1, List<String> prompts2, EmbeddingOverlay ti) {
        int b = prompts1.size();
        List<float[]> parts = new ArrayList<>();
        int[] dims = new int[encoders.size()];
        float[] pooled = null;
        for (int e = 0; e < encoders.size(); e++) {
            Encoder enc = encoders.get(e);
            List<String> prompts = e == 0 ? prompts1 : prompts2;
            int len = tokenizer(ti, e).modelMaxLength();
            long[] ids = new long[b * len];
            for (int i = 0; i < b; i++) {
                System.arraycopy(tokenizer(ti, e).inputIds(prompts.get(i)), 0, ids, i * len, len);
            }
            try (Tensor idsT = Tensor.ofLongs(ids, b, len); ClipTextOutput out = model(ti, e).forward(idsT)) {
                parts.add(out.penultimate().toFloatArray());
                dims[e] = (int) enc.config().hiddenSize();
                if (enc.projection()) {
                    pooled = out.pooled().toFloatArray();
                }
            }
        }
        int tokens = encoders.get(0).tokenizer().modelMaxLength();
        return new Cond(concatFeatures(parts, dims, b * tokens), b, tokens, sum(dims), pooled, pooledDim());
    }

    private Cond encodeCompel(List<String> prompts, boolean truncate, EmbeddingOverlay ti) {
        List<Compel.TextEncoder> tes = new ArrayList<>();
        for (int e = 0; e < encoders.size(); e++) {
            tes.add(new Compel.TextEncoder(tokenizer(ti, e), model(ti, e), encoders.get(e).projection()));
        }
        try (Compel compel = new Compel(tes, truncate); Compel.Output out = compel.encode(prompts)) {
            long[] s = out.conditioning().shape();
            return new Cond(out.conditioning().toFloatArray(), (int) s[0], (int) s[1], (int) s[2],
                    out.pooled().toFloatArray(), (int) out.pooled().shape()[1]);
        }
    }

    /**
     * AUTOMATIC1111's SDXL conditioning: per encoder, 77-token chunks (start + 75 + end) each encoded on its own,
     * hidden_states[-2] weighted with restore-mean emphasis, chunks concatenated; the two encoders' results
     * concatenated on features; pooled = text_encoder_2's output for the first chunk. Encoders that split a prompt
     * into different numbers of chunks are padded with the empty chunk's encoding.
     */
    private Cond encodeA1111(List<String> prompts1, List<String> prompts2, EmbeddingOverlay ti) {
        int b = prompts1.size();
        float[] pooledAll = new float[b * pooledDim()];
        int[] dims = new int[encoders.size()];
        int maxChunks = 1;
        List<List<List<float[]>>> chunkStore = new ArrayList<>();  // [prompt][encoder][chunk] -> [77, dim]
        for (int i = 0; i < b; i++) {
            List<List<float[]>> encs = new ArrayList<>();
            for (int e = 0; e < encoders.size(); e++) {
                Encoder enc = encoders.get(e);
                dims[e] = (int) enc.config().hiddenSize();
                List<A1111Prompt.Chunk> chunks = A1111Prompt.chunks((e == 0 ? prompts1 : prompts2).get(i), tokenizer(ti, e));
                List<float[]> encoded = new ArrayList<>();
                for (int c = 0; c < chunks.size(); c++) {
                    A1111Prompt.Chunk chunk = chunks.get(c);
                    try (Tensor ids = Tensor.ofLongs(chunk.ids(), 1, chunk.ids().length);
                         ClipTextOutput out = model(ti, e).forward(ids)) {
                        float[] h = out.penultimate().toFloatArray();
                        if (enc.projection() && c == 0) {
                            System.arraycopy(out.pooled().toFloatArray(), 0, pooledAll, i * pooledDim(), pooledDim());
                        }
                        A1111Prompt.applyEmphasis(h, chunk.weights(), dims[e], true);
                        encoded.add(h);
                    }
                }
                maxChunks = Math.max(maxChunks, encoded.size());
                encs.add(encoded);
            }
            chunkStore.add(encs);
        }
        int len = encoders.get(0).tokenizer().modelMaxLength();
        int dim = sum(dims);
        float[] out = new float[b * maxChunks * len * dim];
        for (int i = 0; i < b; i++) {
            for (int e = 0; e < encoders.size(); e++) {
                List<float[]> encoded = chunkStore.get(i).get(e);
                while (encoded.size() < maxChunks) {
                    encoded.add(emptyChunk(e, ti));
                }
                int off = 0;
                for (int k = 0; k < e; k++) {
                    off += dims[k];
                }
                for (int c = 0; c < maxChunks; c++) {
                    float[] h = encoded.get(c);
                    for (int t = 0; t < len; t++) {
                        System.arraycopy(h, t * dims[e], out, ((i * maxChunks + c) * len + t) * dim + off, dims[e]);
                    }
                }
            }
        }
        return new Cond(out, b, maxChunks * len, dim, pooledAll, pooledDim());
    }

    private float[] emptyChunk(int encoder, EmbeddingOverlay ti) {
        A1111Prompt.Chunk chunk = A1111Prompt.chunks("", tokenizer(ti, encoder)).get(0);
        try (Tensor ids = Tensor.ofLongs(chunk.ids(), 1, chunk.ids().length);
             ClipTextOutput out = model(ti, encoder).forward(ids)) {
            return out.penultimate().toFloatArray();
        }
    }

    /** Pads the shorter conditioning with the empty prompt's 77-token encoding (compel's / A1111's padding). */
    private Cond[] padToSameLength(Cond a, Cond b, GenerationRequest r) {
        int tokens = Math.max(a.tokens(), b.tokens());
        Cond empty = encodeText(List.of(""), List.of(""), r.syntax() == PromptSyntax.PLAIN ? PromptSyntax.PLAIN : r.syntax(), true);
        return new Cond[] {padWith(a, tokens, empty), padWith(b, tokens, empty)};
    }

    private static Cond padWith(Cond c, int tokens, Cond empty) {
        if (c.tokens() == tokens) {
            return c;
        }
        if ((tokens - c.tokens()) % empty.tokens() != 0) {
            throw bad("cannot pad conditioning of " + c.tokens() + " tokens to " + tokens);
        }
        float[] out = new float[c.batch() * tokens * c.dim()];
        for (int i = 0; i < c.batch(); i++) {
            System.arraycopy(c.embeds(), i * c.tokens() * c.dim(), out, i * tokens * c.dim(), c.tokens() * c.dim());
            for (int t = c.tokens(); t < tokens; t += empty.tokens()) {
                System.arraycopy(empty.embeds(), 0, out, (i * tokens + t) * c.dim(), empty.tokens() * c.dim());
            }
        }
        return new Cond(out, c.batch(), tokens, c.dim(), c.pooled(), c.pooledDim());
    }

    private static float[] concatFeatures(List<float[]> parts, int[] dims, int rows) {
        int dim = sum(dims);
        float[] out = new float[rows * dim];
        int off = 0;
        for (int e = 0; e < parts.size(); e++) {
            float[] p = parts.get(e);
            for (int row = 0; row < rows; row++) {
                System.arraycopy(p, row * dims[e], out, row * dim + off, dims[e]);
            }
            off += dims[e];
        }
        return out;
    }

    private static int sum(int[] a) {
        int s = 0;
        for (int v : a) {
            s += v;
        }
        return s;
    }

    /** Each batch item repeated n times in a row (diffusers' repeat(1, n, 1).view(b * n, ...)). */
    static Cond repeat(Cond c, int n) {
        if (n == 1) {
            return c;
        }
        int row = c.tokens() * c.dim();
        float[] e = new float[c.batch() * n * row];
        float[] p = new float[c.batch() * n * c.pooledDim()];
        for (int i = 0; i < c.batch(); i++) {
            for (int k = 0; k < n; k++) {
                System.arraycopy(c.embeds(), i * row, e, (i * n + k) * row, row);
                System.arraycopy(c.pooled(), i * c.pooledDim(), p, (i * n + k) * c.pooledDim(), c.pooledDim());
            }
        }
        return new Cond(e, c.batch() * n, c.tokens(), c.dim(), p, c.pooledDim());
    }

    static Cond concatBatch(Cond a, Cond b) {
        float[] e = Arrays.copyOf(a.embeds(), a.embeds().length + b.embeds().length);
        System.arraycopy(b.embeds(), 0, e, a.embeds().length, b.embeds().length);
        float[] p = Arrays.copyOf(a.pooled(), a.pooled().length + b.pooled().length);
        System.arraycopy(b.pooled(), 0, p, a.pooled().length, b.pooled().length);
        return new Cond(e, a.batch() + b.batch(), a.tokens(), a.dim(), p, a.pooledDim());
    }
}
