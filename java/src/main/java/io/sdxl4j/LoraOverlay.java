package io.sdxl4j;

import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.LoraFile;
import io.sdxl4j.models.UNet2DConditionModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The LoRAs applied to one pipeline's UNet and text encoders (diffusers' load_lora_weights, + fuse_lora for
 * {@link LoraMode#FUSED}). Fused: the native models keep an exact copy of every weight a fused LoRA touches, so each
 * change (load, unload, new scale) recomputes only those weights from their originals and an empty set restores them
 * bit for bit. Unfused: the layers a LoRA touches get run-time adapters beside their unchanged weights; a change
 * rebuilds only those small adapters. The scale applies to the UNet and both text encoders, as diffusers 0.31's
 * {@code cross_attention_kwargs={"scale": s}} / {@code set_adapters} do. Offloaded models get the current set when
 * they are loaded again.
 */
final class LoraOverlay implements AutoCloseable {
    /** A LoRA applied to the pipeline: its A1111 name (the file name's stem), file, scale and mode. */
    record Entry(String name, LoraFile file, double scale, LoraMode mode) {}

    private final SdxlEngine engine;
    private List<Entry> entries = List.of();

    LoraOverlay(SdxlEngine engine) {
        this.engine = engine;
        engine.unet.onLoad(this::applyTo);
        for (SdxlEngine.Encoder e : engine.parts.ownEncoders()) {  // a text encoder shared from the base is the base's
            String component = e.projection() ? "text_encoder_2" : "text_encoder";
            e.slot().onLoad(m -> applyTo(m, component));
        }
    }

    synchronized List<Entry> entries() {
        return entries;
    }

    /** Adds a LoRA (a file already loaded under the same name is replaced). Returns its name. */
    synchronized String load(Path path, double scale, boolean lenient, LoraMode mode) {
        checkScale(scale);
        if (mode == null) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "LoRA mode is null (FUSED or UNFUSED)");
        }
        LoraFile file = LoraFile.open(path, lenient);
        try {
            checkComponents(file);
        } catch (RuntimeException ex) {
            file.close();
            throw ex;
        }
        List<Entry> next = new ArrayList<>();
        Entry replaced = null;
        for (Entry e : entries) {
            if (e.name().equals(file.name())) {
                replaced = e;
            } else {
                next.add(e);
            }
        }
        next.add(new Entry(file.name(), file, scale, mode));
        try {
            set(next);
        } catch (RuntimeException ex) {
            file.close();
            throw ex;
        }
        if (replaced != null) {
            replaced.file().close();
        }
        return file.name();
    }

    synchronized void setScale(String name, double scale) {
        checkScale(scale);
        List<Entry> next = new ArrayList<>();
        for (Entry e : entries) {
            next.add(e.name().equals(name) ? new Entry(e.name(), e.file(), scale, e.mode()) : e);
        }
        require(name);
        set(next);
    }

    synchronized void unload(String name) {
        Entry gone = require(name);
        List<Entry> next = new ArrayList<>(entries);
        next.remove(gone);
        set(next);
        gone.file().close();
    }

    synchronized void unloadAll() {
        List<Entry> old = entries;
        set(List.of());
        old.forEach(e -> e.file().close());
    }

    private Entry require(String name) {
        for (Entry e : entries) {
            if (e.name().equals(name)) {
                return e;
            }
        }
        throw new SdxlException(ErrorCode.NOT_FOUND, "no LoRA named '" + name + "' is loaded (loaded: "
                + entries.stream().map(Entry::name).toList() + ")");
    }

    /**
     * Refuses (unless the file is lenient, which skips them) modules for a text encoder this pipeline cannot take:
     * the refiner has no text_encoder, and one loaded with its base's text_encoder_2 leaves that encoder's LoRAs to
     * the base. Without this they would be dropped silently, as no model of that component is ever fused.
     */
    private void checkComponents(LoraFile file) {
        if (file.lenient()) {
            return;
        }
        List<String> present = engine.encoders.stream().map(LoraOverlay::componentOf).toList();
        List<String> own = engine.parts.ownEncoders().stream().map(LoraOverlay::componentOf).toList();
        for (String component : file.components()) {
            if (component.equals("unet") || own.contains(component)) {
                continue;
            }
            String why = present.contains(component)
                    ? "this refiner uses its base pipeline's " + component + " (loadRefiner), whose LoRAs are the base's: "
                            + "load this LoRA into the base too, or load the refiner on its own (Refiner.load) to "
                            + "give it its own " + component
                    : "this pipeline has no " + component + " (the SDXL refiner has text_encoder_2 only)";
            List<String> modules = LoraKeys.modules(file.path(), component);
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, file.path() + ": " + modules.size() + " " + component
                    + " LoRA module(s), but " + why + ": " + LoraKeys.listed(modules) + " (load leniently to skip them)");
        }
    }

    private static String componentOf(SdxlEngine.Encoder e) {
        return e.projection() ? "text_encoder_2" : "text_encoder";
    }

    private static void checkScale(double scale) {
        if (!Double.isFinite(scale)) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "LoRA scale must be finite, got " + scale);
        }
    }

    /** Applies `next` to every loaded model; on an error the models that took it get the previous set back. */
    private void set(List<Entry> next) {
        engine.checkOpen();
        List<Entry> previous = entries;
        entries = List.copyOf(next);
        List<Runnable> undo = new ArrayList<>();
        try {
            UNet2DConditionModel u = engine.unet.ifLoaded();
            if (u != null) {
                applyTo(u);
                undo.add(() -> apply(u, null, previous));
            }
            for (SdxlEngine.Encoder e : engine.parts.ownEncoders()) {
                ClipTextModel m = e.slot().ifLoaded();
                if (m != null) {
                    String component = e.projection() ? "text_encoder_2" : "text_encoder";
                    applyTo(m, component);
                    undo.add(() -> apply(null, m, component, previous));
                }
            }
        } catch (RuntimeException ex) {
            entries = previous;
            for (Runnable r : undo) {
                try {
                    r.run();
                } catch (RuntimeException ignored) {
                    // the previous set was fused before, so it fits
                }
            }
            throw ex;
        }
    }

    private void applyTo(UNet2DConditionModel m) {
        apply(m, null, entries);
    }

    private void applyTo(ClipTextModel m, String component) {
        apply(null, m, component, entries);
    }

    private static void apply(UNet2DConditionModel u, ClipTextModel unused, List<Entry> list) {
        u.setLoras(list.stream().map(Entry::file).toList(), list.stream().mapToDouble(Entry::scale).toArray(),
                list.stream().map(Entry::mode).toList());
    }

    private static void apply(UNet2DConditionModel unused, ClipTextModel m, String component, List<Entry> list) {
        m.setLoras(list.stream().map(Entry::file).toList(), list.stream().mapToDouble(Entry::scale).toArray(),
                list.stream().map(Entry::mode).toList(), component);
    }

    @Override
    public synchronized void close() {
        // The models are closed with the pipeline; only the parsed files are ours.
        entries.forEach(e -> e.file().close());
        entries = List.of();
    }
}
