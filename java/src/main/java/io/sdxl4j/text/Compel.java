package io.sdxl4j.text;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Tensor;
import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.ClipTextOutput;
import io.sdxl4j.text.CompelParser.Blend;
import io.sdxl4j.text.CompelParser.Conjunction;
import io.sdxl4j.text.CompelParser.Fragment;
import io.sdxl4j.text.CompelParser.Part;
import io.sdxl4j.text.CompelParser.WeightedPrompt;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Weighted and long prompts as compel 2.0.3 builds them for SDXL:
 *
 * <pre>{@code
 * Compel(tokenizer=[tokenizer, tokenizer_2], text_encoder=[text_encoder, text_encoder_2],
 *        returned_embeddings_type=PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED, requires_pooled=[False, True],
 *        truncate_long_prompts=...)
 * conditioning, pooled = compel(prompt)
 * }</pre>
 *
 * <p>Syntax: see {@link CompelParser}. Per text encoder, a prompt's fragments are tokenized separately and
 * concatenated; the ids are cut into chunks of (model_max_length - 2) = 75, each wrapped in start/end tokens and
 * padded to 77 (only the first chunk when truncating). Each chunk is encoded (hidden_states[-2]) and every token
 * moved from the empty prompt's encoding by its weight, {@code e = empty + w (e - empty)}. A fragment of weight
 * w &lt; 1 is additionally lerped toward an encoding of the same ids with that fragment masked out of attention,
 * with lerp weight tan((1 - w) pi / 2) (normalised with weight 1 for the unmasked one). The two encoders' results
 * are concatenated on the feature axis (text_encoder first). The pooled vector is text_encoder_2's text_embeds of
 * the <em>raw</em> prompt string, syntax included, truncated to 77 ids.
 *
 * <p>Edge cases where compel itself fails and this class does something defined instead: a prompt that is only
 * syntax (e.g. {@code ()} or {@code withLora(x)}) encodes as the empty prompt; an empty fragment with a weight
 * below 1 is not masked (there is nothing to mask); {@code .and()} weights other than 1 work (compel's SDXL path
 * crashes on them); if the two tokenizers split an untruncated prompt into different numbers of chunks (possible
 * only with many {@code !}, which tokenizer_2 treats as a special token) the shorter is padded with its empty
 * encoding.
 *
 * <p>Instances are not thread-safe (calls are serialised). Output tensors belong to the caller.
 */
public final class Compel implements AutoCloseable {

    /**
     * One text encoder with its tokenizer.
     *
     * @param requiresPooled whether this encoder's pooled output is returned (SDXL: text_encoder_2 only)
     */
    public record TextEncoder(ClipTokenizer tokenizer, ClipTextModel model, boolean requiresPooled) {
        public TextEncoder {
            Objects.requireNonNull(tokenizer, "tokenizer");
            Objects.requireNonNull(model, "model");
        }
    }

    /**
     * The result of {@link #encode}.
     *
     * @param conditioning [B, L, sum of hidden sizes] (L = 77 per chunk)
     * @param pooled       [B, projection_dim], or null when no encoder requires pooled output
     */
    public record Output(Tensor conditioning, Tensor pooled) implements AutoCloseable {
        @Override
        public void close() {
            conditioning.close();
            if (pooled != null) {
                pooled.close();
            }
        }
    }

    /** A conditioning held in Java: [tokens, dim] floats. */
    private record Emb(int tokens, int dim, float[] data) {}

    private final List<Provider> providers = new ArrayList<>();
    private final boolean truncate;
    private final List<AutoCloseable> owned = new ArrayList<>();
    private final int totalHidden;
    private Emb empty;
    private boolean closed;

    /**
     * @param encoders            SDXL base: text_encoder then text_encoder_2 (requiresPooled false, true); the
     *                            refiner: text_encoder_2 alone
     * @param truncateLongPrompts true: only the first 75 tokens count (77 positions); false: any length, in
     *                            chunks of 77
     */
    public Compel(List<TextEncoder> encoders, boolean truncateLongPrompts) {
        if (encoders == null || encoders.isEmpty()) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "Compel needs at least one text encoder");
        }
        this.truncate = truncateLongPrompts;
        int hidden = 0;
        for (TextEncoder e : encoders) {
            Provider p = new Provider(e);
            providers.add(p);
            hidden += p.hidden;
        }
        this.totalHidden = hidden;
    }

    /**
     * Loads the tokenizers and text encoders of a diffusers SDXL folder: base (tokenizer, text_encoder,
     * tokenizer_2, text_encoder_2) or refiner (tokenizer_2, text_encoder_2 only). The models are closed with this
     * object.
     */
    public static Compel load(Path pipelineFolder, String variant, boolean truncateLongPrompts) {
        List<AutoCloseable> models = new ArrayList<>();
        try {
            List<TextEncoder> encoders = new ArrayList<>();
            if (Files.isDirectory(pipelineFolder.resolve("text_encoder"))) {
                encoders.add(encoder(pipelineFolder, "tokenizer", "text_encoder", variant, false, models));
            }
            encoders.add(encoder(pipelineFolder, "tokenizer_2", "text_encoder_2", variant, true, models));
            Compel c = new Compel(encoders, truncateLongPrompts);
            c.owned.addAll(models);
            return c;
        } catch (RuntimeException e) {
            for (AutoCloseable m : models) {
                closeQuietly(m);
            }
            throw e;
        }
    }

    private static TextEncoder encoder(Path root, String tok, String te, String variant, boolean pooled, List<AutoCloseable> models) {
        ClipTokenizer tokenizer = ClipTokenizer.load(root.resolve(tok));
        ClipTextModel model = ClipTextModel.load(root.resolve(te), variant);
        models.add(model);
        return new TextEncoder(tokenizer, model, pooled);
    }

    public boolean truncateLongPrompts() {
        return truncate;
    }

    // ================================================================================================ API

    /** {@code conditioning, pooled = compel(prompt)}: conditioning [1, L, D], pooled [1, P]. */
    public synchronized Output encode(String prompt) {
        checkOpen();
        Emb c = conditioning(CompelParser.parse(prompt));
        float[] pooled = pooled(prompt);
        return new Output(tensor(c), pooled == null ? null : Tensor.of(pooled, 1, pooled.length));
    }

    /**
     * {@code compel([p1, p2, ...])}: every prompt encoded, padded to the same length with the empty prompt's
     * conditioning, and stacked on the batch axis: conditioning [N, L, D], pooled [N, P].
     */
    public synchronized Output encode(List<String> prompts) {
        checkOpen();
        if (prompts == null || prompts.isEmpty()) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "no prompts");
        }
        List<Emb> conds = new ArrayList<>();
        List<float[]> pooled = new ArrayList<>();
        for (String p : prompts) {
            conds.add(conditioning(CompelParser.parse(p)));
            pooled.add(pooled(p));
        }
        conds = padEmbs(conds);
        int l = conds.get(0).tokens();
        float[] data = new float[conds.size() * l * totalHidden];
        for (int i = 0; i < conds.size(); i++) {
            System.arraycopy(conds.get(i).data(), 0, data, i * l * totalHidden, l * totalHidden);
        }
        Tensor pooledT = null;
        if (pooled.get(0) != null) {
            int p = pooled.get(0).length;
            float[] all = new float[pooled.size() * p];
            for (int i = 0; i < pooled.size(); i++) {
                System.arraycopy(pooled.get(i), 0, all, i * p, p);
            }
            pooledT = Tensor.of(all, pooled.size(), p);
        }
        return new Output(Tensor.of(data, conds.size(), l, totalHidden), pooledT);
    }

    /** The empty prompt's conditioning, [1, 77, D] ({@code build_conditioning_tensor("")}). */
    public synchronized Tensor emptyConditioning() {
        checkOpen();
        return tensor(empty());
    }

    /**
     * {@code pad_conditioning_tensors_to_same_length}: appends the empty prompt's conditioning (77 tokens at a
     * time) to each shorter tensor until it is at least as long as the longest. Tensors may be [L, D] (returned as
     * [1, L, D]) or [B, L, D]; all must agree in batch size and D. Returns new tensors (the caller closes them
     * and its inputs).
     */
    public synchronized List<Tensor> padToSameLength(List<Tensor> conditionings) {
        checkOpen();
        if (conditionings == null || conditionings.isEmpty()) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "no conditioning tensors to pad");
        }
        int rank = conditionings.get(0).shape().length;
        long batch = -1;
        long dim = -1;
        long max = 0;
        List<long[]> shapes = new ArrayList<>();
        for (Tensor t : conditionings) {
            long[] s = t.shape();
            if (s.length != rank || (rank != 2 && rank != 3)) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                        "conditioning tensors must all have 2 dimensions (unbatched) or all 3 (batched), got " + shapeList(conditionings));
            }
            long[] s3 = rank == 2 ? new long[] {1, s[0], s[1]} : s;
            if (batch < 0) {
                batch = s3[0];
                dim = s3[2];
            } else if (s3[0] != batch || s3[2] != dim) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                        "conditioning tensors must have the same batch size and number of features, got " + shapeList(conditionings));
            }
            max = Math.max(max, s3[1]);
            shapes.add(s3);
        }
        Emb e = empty();
        if (dim != e.dim()) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "conditioning tensors have " + dim
                    + " features but this Compel's encoders give " + e.dim());
        }
        List<Tensor> out = new ArrayList<>();
        for (int i = 0; i < conditionings.size(); i++) {
            long[] s = shapes.get(i);
            long len = s[1];
            while (len < max) {
                len += e.tokens();
            }
            float[] src = conditionings.get(i).toFloatArray();
            int srcRow = (int) (s[1] * dim);
            int dstRow = (int) (len * dim);
            float[] dst = new float[(int) (batch * dstRow)];
            for (int b = 0; b < batch; b++) {
                System.arraycopy(src, b * srcRow, dst, b * dstRow, srcRow);
                for (int off = srcRow; off < dstRow; off += e.data().length) {
                    System.arraycopy(e.data(), 0, dst, b * dstRow + off, e.data().length);
                }
            }
            out.add(Tensor.of(dst, batch, len, dim));
        }
        return out;
    }

    private static String shapeList(List<Tensor> ts) {
        List<String> out = new ArrayList<>();
        for (Tensor t : ts) {
            out.add(Arrays.toString(t.shape()));
        }
        return out.toString();
    }

    // ======================================================================================= conditioning

    /** {@code build_conditioning_tensor_for_conjunction}. */
    private Emb conditioning(Conjunction conjunction) {
        if (conjunction.parts().isEmpty()) {
            return empty(); // only syntax (e.g. "()"): compel fails; we give the empty prompt's conditioning
        }
        List<Emb> parts = new ArrayList<>();
        for (int i = 0; i < conjunction.parts().size(); i++) {
            Emb c = part(conjunction.parts().get(i));
            double weight = conjunction.weights().get(i);
            if (weight != 1) {
                Emb e = padTo(empty(), c.tokens());
                float w = (float) weight;
                float[] d = new float[c.data().length];
                for (int j = 0; j < d.length; j++) {
                    d[j] = e.data()[j] + (c.data()[j] - e.data()[j]) * w;
                }
                c = new Emb(c.tokens(), c.dim(), d);
            }
            parts.add(c);
        }
        if (parts.size() == 1) {
            return parts.get(0);
        }
        int tokens = 0;
        for (Emb p : parts) {
            tokens += p.tokens();
        }
        float[] data = new float[tokens * totalHidden];
        int off = 0;
        for (Emb p : parts) {
            System.arraycopy(p.data(), 0, data, off, p.data().length);
            off += p.data().length;
        }
        return new Emb(tokens, totalHidden, data);
    }

    private Emb part(Part part) {
        if (part instanceof WeightedPrompt w) {
            return weightedPrompt(w);
        }
        Blend b = (Blend) part;
        List<Emb> conds = new ArrayList<>();
        for (WeightedPrompt p : b.prompts()) {
            conds.add(weightedPrompt(p));
        }
        return applyWeights(padEmbs(conds), b.weights(), b.normalize());
    }

    /** Both encoders' weighted embeddings of a flattened prompt, concatenated on the feature axis. */
    private Emb weightedPrompt(WeightedPrompt p) {
        List<String> texts = new ArrayList<>();
        List<Double> weights = new ArrayList<>();
        for (Fragment f : p.fragments()) {
            texts.add(f.text());
            weights.add(f.weight());
        }
        List<float[]> per = new ArrayList<>();
        int tokens = 0;
        for (Provider pr : providers) {
            float[] e = pr.embed(texts, weights);
            per.add(e);
            tokens = Math.max(tokens, e.length / pr.hidden);
        }
        if (p.swapEdited() != null) {
            // compel pads the original conditioning to the edited one's length
            List<String> edited = new ArrayList<>();
            for (Fragment f : p.swapEdited()) {
                edited.add(f.text());
            }
            for (Provider pr : providers) {
                tokens = Math.max(tokens, pr.chunkCount(edited) * pr.maxLen);
            }
        }
        float[] data = new float[tokens * totalHidden];
        int col = 0;
        for (int k = 0; k < providers.size(); k++) {
            Provider pr = providers.get(k);
            float[] e = per.get(k);
            float[] z = pr.emptyZ();
            for (int t = 0; t < tokens; t++) {
                int srcTok = t * pr.hidden;
                float[] src = srcTok < e.length ? e : z;
                int srcOff = srcTok < e.length ? srcTok : ((t % pr.maxLen) * pr.hidden);
                System.arraycopy(src, srcOff, data, t * totalHidden + col, pr.hidden);
            }
            col += pr.hidden;
        }
        return new Emb(tokens, totalHidden, data);
    }

    /** {@code build_conditioning_tensor("")}: [77, D]. */
    private Emb empty() {
        if (empty == null) {
            int l = providers.get(0).maxLen;
            float[] data = new float[l * totalHidden];
            int col = 0;
            for (Provider pr : providers) {
                if (pr.maxLen != l) {
                    throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the tokenizers disagree on model_max_length ("
                            + l + " vs " + pr.maxLen + ")");
                }
                float[] z = pr.emptyZ();
                for (int t = 0; t < l; t++) {
                    System.arraycopy(z, t * pr.hidden, data, t * totalHidden + col, pr.hidden);
                }
                col += pr.hidden;
            }
            empty = new Emb(l, totalHidden, data);
        }
        return empty;
    }

    private List<Emb> padEmbs(List<Emb> conds) {
        int max = 0;
        for (Emb c : conds) {
            max = Math.max(max, c.tokens());
        }
        List<Emb> out = new ArrayList<>();
        for (Emb c : conds) {
            out.add(padTo(c, max));
        }
        return out;
    }

    /** Appends the empty conditioning until at least {@code tokens} long. */
    private Emb padTo(Emb c, int tokens) {
        if (c.tokens() >= tokens) {
            return c;
        }
        Emb e = empty();
        int len = c.tokens();
        while (len < tokens) {
            len += e.tokens();
        }
        float[] d = Arrays.copyOf(c.data(), len * c.dim());
        for (int off = c.data().length; off < d.length; off += e.data().length) {
            System.arraycopy(e.data(), 0, d, off, e.data().length);
        }
        return new Emb(len, c.dim(), d);
    }

    /** {@code apply_embedding_weights}: sum_k e_k w_k in float32, w divided by its float32 sum when normalize. */
    private static Emb applyWeights(List<Emb> embs, List<Double> weights, boolean normalize) {
        float[] w = new float[weights.size()];
        for (int i = 0; i < w.length; i++) {
            w[i] = weights.get(i).floatValue();
        }
        float[][] arrays = new float[embs.size()][];
        for (int i = 0; i < arrays.length; i++) {
            arrays[i] = embs.get(i).data();
        }
        float[] out = weightedSum(arrays, w, normalize);
        return new Emb(embs.get(0).tokens(), embs.get(0).dim(), out);
    }

    static float[] weightedSum(float[][] arrays, float[] w, boolean normalize) {
        if (normalize) {
            float sum = 0;
            for (float x : w) {
                sum += x;
            }
            for (int i = 0; i < w.length; i++) {
                w[i] = w[i] / sum;
            }
        }
        float[] out = new float[arrays[0].length];
        for (int k = 0; k < arrays.length; k++) {
            float[] a = arrays[k];
            float wk = w[k];
            for (int j = 0; j < out.length; j++) {
                out[j] = k == 0 ? a[j] * wk : out[j] + a[j] * wk;
            }
        }
        return out;
    }

    /** {@code get_pooled_embeddings([prompt])}, concatenated over the encoders that require it; null if none. */
    private float[] pooled(String prompt) {
        List<float[]> parts = new ArrayList<>();
        int n = 0;
        for (Provider p : providers) {
            if (p.requiresPooled) {
                float[] x = p.pooled(prompt);
                parts.add(x);
                n += x.length;
            }
        }
        if (parts.isEmpty()) {
            return null;
        }
        float[] out = new float[n];
        int off = 0;
        for (float[] x : parts) {
            System.arraycopy(x, 0, out, off, x.length);
            off += x.length;
        }
        return out;
    }

    private static Tensor tensor(Emb e) {
        return Tensor.of(e.data(), 1, e.tokens(), e.dim());
    }

    private void checkOpen() {
        if (closed) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "Compel is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Provider p : providers) {
        }
        for (AutoCloseable m : owned) {
            closeQuietly(m);
        }
        owned.clear();
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // closing native holders does not fail
        }
    }

    // =========================================================================================== provider

    /** compel's EmbeddingsProvider for one tokenizer + text encoder (penultimate, non-normalised hidden states). */
    private final class Provider {
        final ClipTokenizer tok;
        final ClipTextModel model;
        final boolean requiresPooled;
        final int hidden;
        final int maxLen;
        final int chunkLen;
        float[] emptyZ;

        Provider(TextEncoder e) {
            tok = e.tokenizer();
            model = e.model();
            requiresPooled = e.requiresPooled();
            hidden = Math.toIntExact(model.config().hiddenSize());
            long positions = model.config().maxPositionEmbeddings();
            maxLen = (int) Math.min(tok.modelMaxLength(), positions);
            if (maxLen < 3) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "model_max_length " + maxLen + " leaves no room for tokens");
            }
            chunkLen = maxLen - 2;
            if (requiresPooled && !model.config().withProjection()) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                        "requiresPooled needs a CLIPTextModelWithProjection (text_embeds); this encoder has no projection");
            }
        }

        /** {@code get_token_ids(texts, include_start_and_end_markers=False)}: per text, truncated to 75 when truncating. */
        int[] tokenIds(String text) {
            int[] ids = tok.encode(text);
            return truncate && ids.length > chunkLen ? Arrays.copyOf(ids, chunkLen) : ids;
        }

        int chunkCount(List<String> texts) {
            if (texts.isEmpty()) {
                return 1;
            }
            long n = 0;
            for (String t : texts) {
                n += tokenIds(t).length;
            }
            return truncate || n == 0 ? 1 : (int) ((n + chunkLen - 1) / chunkLen);
        }

        /** hidden_states[-2] of [bos, eos, pad...]: the reference every weight scales from. */
        float[] emptyZ() {
            if (emptyZ == null) {
                long[] ids = new long[maxLen];
                Arrays.fill(ids, tok.padId());
                ids[0] = tok.bosId();
                ids[1] = tok.eosId();
                emptyZ = encodeNative(List.of(ids));
            }
            return emptyZ;
        }

        /** Native forward of several 77-id chunks at once -> their penultimate hidden states, concatenated. */
        float[] encodeNative(List<long[]> chunks) {
            long[] all = new long[chunks.size() * maxLen];
            for (int i = 0; i < chunks.size(); i++) {
                System.arraycopy(chunks.get(i), 0, all, i * maxLen, maxLen);
            }
            try (Tensor ids = Tensor.ofLongs(all, chunks.size(), maxLen); ClipTextOutput out = model.forward(ids)) {
                return out.penultimate().toFloatArray();
            }
        }

        /** {@code get_embeddings_for_weighted_prompt_fragments} for one prompt: [L * hidden]. */
        float[] embed(List<String> fragments, List<Double> weights) {
            if (fragments.isEmpty()) {
                fragments = List.of("");
                weights = List.of(1.0);
            }
            int[][] perFragment = new int[fragments.size()][];
            int total = 0;
            for (int i = 0; i < perFragment.length; i++) {
                perFragment[i] = tokenIds(fragments.get(i));
                total += perFragment[i].length;
            }
            int[] ids = new int[total];
            float[] w = new float[total];
            int at = 0;
            for (int i = 0; i < perFragment.length; i++) {
                float fw = weights.get(i).floatValue();
                for (int id : perFragment[i]) {
                    ids[at] = id;
                    w[at++] = fw;
                }
            }
            // chunk and pad: [bos, <= 75 ids, eos, pad...] per chunk; only the first when truncating
            int chunks = truncate || total == 0 ? 1 : (total + chunkLen - 1) / chunkLen;
            long[] tokens = new long[chunks * maxLen];
            float[] tokenWeights = new float[tokens.length];
            Arrays.fill(tokens, tok.padId());
            Arrays.fill(tokenWeights, 1f);
            for (int c = 0; c < chunks; c++) {
                int from = c * chunkLen;
                int take = Math.min(chunkLen, total - from);
                int at0 = c * maxLen;
                tokens[at0] = tok.bosId();
                for (int j = 0; j < take; j++) {
                    tokens[at0 + 1 + j] = ids[from + j];
                    tokenWeights[at0 + 1 + j] = w[from + j];
                }
                tokens[at0 + 1 + take] = tok.eosId();
            }

            float[] base = weighted(tokens, tokenWeights, null, null);
            List<float[]> embeddings = new ArrayList<>();
            List<Float> lerp = new ArrayList<>();
            embeddings.add(base);
            lerp.add(1f);
            List<int[]> ranges = tokenRanges(tokens, perFragment, fragments);
            for (int i = 0; i < ranges.size(); i++) {
                double fw = weights.get(i);
                if (fw >= 1) {
                    continue;
                }
                int[] r = ranges.get(i);
                if (r == null) {
                    continue; // an empty fragment: nothing to mask (compel fails here)
                }
                float[] mask = new float[tokens.length];
                Arrays.fill(mask, 1f);
                for (int j = r[0]; j <= r[1] && j < mask.length; j++) {
                    mask[j] = 0f;
                }
                if (!truncate) {
                    // but don't mask chunk-delimiting bos/eos markers
                    for (int j = 0; j < mask.length; j += maxLen) {
                        mask[j] = 1f;
                    }
                    for (int j = maxLen - 1; j < mask.length; j += maxLen) {
                        mask[j] = 1f;
                    }
                }
                embeddings.add(weighted(tokens, tokenWeights, mask, base));
                double clamped = Math.max(1e-5, fw);
                lerp.add((float) Math.tan((1.0 - clamped) * Math.PI / 2));
            }
            if (embeddings.size() == 1) {
                // a single embedding with weight 1 / 1: multiplying by 1f changes nothing
                return base;
            }
            float[] lw = new float[lerp.size()];
            for (int i = 0; i < lw.length; i++) {
                lw[i] = lerp.get(i);
            }
            return weightedSum(embeddings.toArray(new float[0][]), lw, true);
        }

        /**
         * {@code build_weighted_embedding_tensor}: per chunk, {@code empty + (z - empty) * w} with z the chunk's
         * encoding under {@code mask} (null = none). Chunks whose mask is all ones are taken from {@code base}
         * when given (the same computation).
         */
        float[] weighted(long[] tokens, float[] weights, float[] mask, float[] base) {
            int chunks = tokens.length / maxLen;
            int chunkSize = maxLen * hidden;
            float[] out = new float[chunks * chunkSize];
            float[] empty = emptyZ();
            List<Integer> nativeChunks = new ArrayList<>();
            List<long[]> nativeIds = new ArrayList<>();
            for (int c = 0; c < chunks; c++) {
                long[] ids = Arrays.copyOfRange(tokens, c * maxLen, (c + 1) * maxLen);
                float[] m = mask == null ? null : Arrays.copyOfRange(mask, c * maxLen, (c + 1) * maxLen);
                boolean allOnes = true;
                if (m != null) {
                    for (float x : m) {
                        allOnes &= x != 0;
                    }
                }
                if (allOnes) {
                    if (base != null) {
                        System.arraycopy(base, c * chunkSize, out, c * chunkSize, chunkSize);
                    } else {
                        nativeChunks.add(c);
                        nativeIds.add(ids);
                    }
                } else {
                    float[] z = maskedPenultimate(ids, m);
                    scaleFromEmpty(z, 0, empty, weights, c * maxLen, out, c * chunkSize);
                }
            }
            if (!nativeIds.isEmpty()) {
                float[] z = encodeNative(nativeIds);
                for (int i = 0; i < nativeChunks.size(); i++) {
                    int c = nativeChunks.get(i);
                    scaleFromEmpty(z, i * chunkSize, empty, weights, c * maxLen, out, c * chunkSize);
                }
            }
            return out;
        }

        private void scaleFromEmpty(float[] z, int zOff, float[] empty, float[] weights, int tokenOff, float[] out, int outOff) {
            for (int t = 0; t < maxLen; t++) {
                float w = weights[tokenOff + t];
                for (int h = 0; h < hidden; h++) {
                    int i = t * hidden + h;
                    float e = empty[i];
                    out[outOff + i] = e + (z[zOff + i] - e) * w;
                }
            }
        }

        /** hidden_states[-2] of one chunk with transformers' attention_mask (0 = masked out of attention). */
        float[] maskedPenultimate(long[] ids, float[] keyMask) {
            try (Tensor t = Tensor.ofLongs(ids, 1, ids.length);
                 Tensor mask = Tensor.of(keyMask, 1, keyMask.length);
                 ClipTextOutput o = model.forward(t, mask)) {
                return o.penultimate().toFloatArray();
            }
        }

        /**
         * {@code _get_token_ranges_for_fragments}: the [start, end] index of each fragment's ids in the chunked
         * sequence (null for a fragment with no ids); the list stops early when truncation cut the rest off.
         */
        List<int[]> tokenRanges(long[] ids, int[][] perFragment, List<String> fragments) {
            List<int[]> out = new ArrayList<>();
            int n = ids.length;
            int start = 0;
            for (int f = 0; f < perFragment.length; f++) {
                int[] ft = perFragment[f];
                if (ft.length == 0) {
                    out.add(null);
                    continue;
                }
                if (truncate && start >= maxLen - 1) {
                    break;
                }
                while (true) {
                    if (start >= n - 1) {
                        if (truncate) {
                            start = n - 1;
                            break;
                        }
                        throw rangeError("couldn't find start of token sequence for fragment", f, fragments);
                    }
                    if (ids[start] == ft[0]) {
                        break;
                    }
                    start++;
                }
                int end = start;
                int rel = 0;
                while (true) {
                    if (end >= n - 1) {
                        if (truncate) {
                            end = n - 1;
                            break;
                        }
                        throw rangeError("couldn't find end of token sequence for fragment", f, fragments);
                    }
                    if (!truncate && (ids[end] == tok.eosId() || ids[end] == tok.bosId())) {
                        end++; // chunk boundary
                    } else if (ids[end] == ft[rel]) {
                        rel++;
                        if (rel == ft.length) {
                            break;
                        }
                        end++;
                    } else {
                        throw rangeError("token sequence mismatch for fragment", f, fragments);
                    }
                }
                out.add(new int[] {start, end});
                start = end + 1;
            }
            return out;
        }

        private SdxlException rangeError(String what, int index, List<String> fragments) {
            return new SdxlException(ErrorCode.INVALID_ARGUMENT, "compel: " + what + " at index " + index + " '"
                    + fragments.get(index) + "' (a downweighted fragment that contains start/end-of-text tokens?)");
        }

        /**
         * {@code get_pooled_embeddings}: ids of the raw prompt padded/truncated to 77; compel strips the first and
         * last id and adds start/end again, so the last position always holds the end token.
         */
        float[] pooled(String prompt) {
            long[] ids = tok.inputIds(prompt, maxLen);
            ids[maxLen - 1] = tok.eosId();
            try (Tensor t = Tensor.ofLongs(ids, 1, maxLen); ClipTextOutput out = model.forward(t)) {
                return out.pooled().toFloatArray();
            }
        }
    }
}
