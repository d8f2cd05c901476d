package io.sdxl4j;

import io.sdxl4j.text.ClipTokenizer;
import io.sdxl4j.text.EmbeddingReferences;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The textual-inversion embeddings loaded into one pipeline: an overlay on its tokenizers and text encoders
 * ({@link EmbeddingOverlay}); loading swaps in a new immutable overlay, so a generation that has started keeps the
 * one it read. Also the directory that prompts may name embeddings from, and how names in prompts become tokens.
 */
final class LoadedEmbeddings {
    private final List<SdxlEngine.Encoder> encoders;

    LoadedEmbeddings(List<SdxlEngine.Encoder> encoders) {
        this.encoders = encoders;
    }

    private final Object embeddingsLock = new Object();
    private volatile EmbeddingOverlay embeddings;  // null: none loaded
    private volatile Path embeddingsDir;

    /**
     * diffusers' {@code load_textual_inversion} for every encoder of this pipeline (clip_l into text_encoder, clip_g
     * into text_encoder_2): the tokens {@code token, token_1, ...} are added to the tokenizers.
     */
    TextualInversion load(Path file, String token) {
        TextualInversion ti = TextualInversion.read(file);
        String t = token != null ? token : "<" + ti.name() + ">";
        synchronized (embeddingsLock) {
            add(new EmbeddingOverlay.Loaded(t, ti));
        }
        return ti;
    }

    private void add(EmbeddingOverlay.Loaded l) {
        List<EmbeddingOverlay.Loaded> all = new ArrayList<>(embeddings == null ? List.of() : embeddings.loaded());
        all.add(l);
        embeddings = EmbeddingOverlay.build(encoders, all);  // validates before anything changes
    }

    /** Removes the embedding loaded as {@code token}; false if there is none. */
    boolean unload(String token) {
        synchronized (embeddingsLock) {
            if (embeddings == null) {
                return false;
            }
            List<EmbeddingOverlay.Loaded> all = new ArrayList<>(embeddings.loaded());
            if (!all.removeIf(l -> l.token().equals(token))) {
                return false;
            }
            embeddings = all.isEmpty() ? null : EmbeddingOverlay.build(encoders, all);
            return true;
        }
    }

    void unloadAll() {
        synchronized (embeddingsLock) {
            embeddings = null;
        }
    }

    /** The loaded embeddings by token, in load order. */
    Map<String, TextualInversion> byToken() {
        Map<String, TextualInversion> out = new LinkedHashMap<>();
        EmbeddingOverlay o = embeddings;
        if (o != null) {
            o.loaded().forEach(l -> out.put(l.token(), l.embedding()));
        }
        return out;
    }

    /** Where {@code embedding:NAME} and A1111's bare names find NAME.safetensors (null: nowhere). */
    void setDirectory(Path dir) {
        if (dir != null && !Files.isDirectory(dir)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, dir + ": embeddings directory does not exist");
        }
        embeddingsDir = dir;
    }

    /** Names a prompt may use: the loaded embeddings' file names, then the directory's *.safetensors files. */
    private Map<String, String> embeddingNames(EmbeddingOverlay o) {
        Map<String, String> byName = new LinkedHashMap<>();  // name -> token
        if (o != null) {
            o.loaded().forEach(l -> byName.putIfAbsent(l.embedding().name(), l.token()));
        }
        Path dir = embeddingsDir;
        if (dir != null) {
            try (var files = Files.list(dir)) {
                files.map(f -> f.getFileName().toString()).filter(n -> n.toLowerCase(Locale.ROOT).endsWith(".safetensors"))
                        .sorted().forEach(n -> byName.putIfAbsent(TextualInversion.nameOf(Path.of(n)), null));
            } catch (IOException e) {
                throw new SdxlException(ErrorCode.NOT_FOUND, dir + ": embeddings directory cannot be read", e);
            }
        }
        return byName;
    }

    /** The overlay for these prompts, after loading the directory embeddings they name; null when none applies. */
    EmbeddingOverlay overlayFor(PromptSyntax syntax, List<String> prompts1, List<String> prompts2) {
        if (embeddingsDir == null) {
            return embeddings;
        }
        synchronized (embeddingsLock) {
            Map<String, String> names = embeddingNames(embeddings);
            Set<String> used = new LinkedHashSet<>();
            for (List<String> list : List.of(prompts1, prompts2)) {
                for (String p : list) {
                    used.addAll(EmbeddingReferences.comfyNames(p));
                    if (syntax == PromptSyntax.A1111) {
                        used.addAll(EmbeddingReferences.a1111Names(p, names.keySet()));
                    }
                }
            }
            for (String name : used) {
                if (!names.containsKey(name)) {
                    throw new SdxlException(ErrorCode.NOT_FOUND, "prompt names embedding:" + name + ", but there is no "
                            + embeddingsDir.resolve(name + ".safetensors") + " and no loaded embedding of that name");
                }
                if (names.get(name) == null) {  // in the directory, not loaded yet
                    TextualInversion ti = TextualInversion.read(embeddingsDir.resolve(name + ".safetensors"));
                    add(new EmbeddingOverlay.Loaded("<" + name + ">", ti));
                    names.put(name, "<" + name + ">");
                }
            }
            return embeddings;
        }
    }

    /** embedding:NAME (and with the A1111 syntax bare NAMEs) written as the tokens they were loaded as. */
    List<String> withTokens(List<String> prompts, PromptSyntax syntax, EmbeddingOverlay o) {
        Map<String, String> names = new LinkedHashMap<>();
        o.loaded().forEach(l -> names.putIfAbsent(l.embedding().name(), l.token()));
        List<String> out = new ArrayList<>(prompts.size());
        for (String p : prompts) {
            out.add(EmbeddingReferences.rewrite(p, syntax == PromptSyntax.A1111, names.keySet(), names::get));
        }
        return out;
    }

    /** Encoder e's tokenizer with the loaded embeddings' tokens. */
    ClipTokenizer tokenizer(int e) {
        EmbeddingOverlay o = embeddings;
        return o == null ? encoders.get(e).tokenizer() : o.tokenizer(e);
    }

    /** The text the tokenizers see for a prompt: embedding names as tokens, multi-vector tokens expanded. */
    String promptForTokenizers(String prompt, PromptSyntax syntax) {
        EmbeddingOverlay o = overlayFor(syntax, List.of(prompt), List.of(prompt));
        return o == null ? prompt : o.expand(withTokens(List.of(prompt), syntax, o)).get(0);
    }

    /**
     * The loaded embeddings a request's prompts use (after resolving names), by A1111 name, with A1111's short
     * hash: what its infotext records as "TI hashes".
     */
    Map<String, String> hashes(GenerationRequest r) {
        Map<String, String> out = new LinkedHashMap<>();
        EmbeddingOverlay o = embeddings;
        if (o == null) {
            return out;
        }
        List<String> texts = new ArrayList<>();
        for (List<String> l : Arrays.asList(r.prompt(), r.prompt2(), r.negativePrompt(), r.negativePrompt2())) {
            if (l != null) {
                texts.addAll(withTokens(l, r.syntax(), o));
            }
        }
        Set<String> tokens = new HashSet<>();
        for (String t : texts) {
            tokens.addAll(o.tokenizer(0).tokenize(t));
        }
        for (EmbeddingOverlay.Loaded l : o.loaded()) {
            if (tokens.contains(l.token())) {
                // A1111 drops ':' and ',' from the name so that the list stays parseable
                out.put(l.embedding().name().replace(":", "").replace(",", ""), l.embedding().shortHash());
            }
        }
        return out;
    }
}
