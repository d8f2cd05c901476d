package io.sdxl4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.config.RoutesConfig;
import io.javalin.http.Context;
import io.sdxl4j.PromptSyntax;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.text.LoraTags;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.SdxlException;
import io.sdxl4j.images.GenerationParameters;
import java.awt.image.BufferedImage;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The AUTOMATIC1111 web UI's API ({@code /sdapi/v1/...}), for the clients and tools written against it: txt2img,
 * img2img, progress (with a cheap latent preview), interrupt, samplers, schedulers, sd-models and the options that
 * apply here. Request bodies are read as A1111 reads them (unknown fields are ignored, as its pydantic models do);
 * a field this server cannot honour (hires fix, face restoration, scripts, masks, ...) is refused with 400 when it
 * asks for something, rather than silently ignored. Responses carry {@code images} (base64 PNGs with the infotext
 * in their "parameters" chunk), {@code parameters} (the request as run) and {@code info} (a JSON string with A1111's
 * keys, {@code infotexts} among them). Image i of a request uses seed + i, as in A1111. Nothing is ever saved:
 * {@code save_images} writes no file. Prompts are read with A1111's emphasis syntax ({@code (word:1.2)}, {@code [word]},
 * {@code BREAK}), as A1111 reads them.
 */
final class A1111Api {
    private static final DateTimeFormatter JOB_TIMESTAMP = DateTimeFormatter.ofPattern("yyyyMMddHHmmss");

    private final Server server;
    /** The options POST /sdapi/v1/options may change: only DDIM's eta applies to these pipelines. */
    private volatile double etaDdim = 0.0;

    A1111Api(Server server) {
        this.server = server;
    }

    void routes(RoutesConfig r) {
        r.post("/sdapi/v1/txt2img", ctx -> generate(ctx, false));
        r.post("/sdapi/v1/img2img", ctx -> generate(ctx, true));
        r.get("/sdapi/v1/progress", this::progress);
        r.post("/sdapi/v1/interrupt", ctx -> {
            server.queue.interruptRunning();
            Server.json(ctx, Fields.JSON.createObjectNode());
        });
        r.get("/sdapi/v1/samplers", ctx -> Server.json(ctx, samplers()));
        r.get("/sdapi/v1/schedulers", ctx -> Server.json(ctx, schedulers()));
        r.get("/sdapi/v1/sd-models", ctx -> Server.json(ctx, sdModels()));
        r.get("/sdapi/v1/loras", ctx -> Server.json(ctx, loraList()));
        // A1111 rescans its folder here; this server looks the folder up on every request anyway.
        r.post("/sdapi/v1/refresh-loras", ctx -> Server.json(ctx, NullNode.getInstance()));
        r.get("/sdapi/v1/options", ctx -> Server.json(ctx, options()));
        r.post("/sdapi/v1/options", ctx -> {
            Fields f = Fields.parse(server.body(ctx));
            double eta = settings(f, etaDdim);
            etaDdim = eta;
            Server.json(ctx, NullNode.getInstance());  // A1111 answers null
        });
    }

    // ================================================================================================ generation

    private void generate(Context ctx, boolean img2img) {
        Fields f = Fields.parse(server.body(ctx));
        Request req = request(f, img2img);
        Pipelines.Batch batch = server.run(ctx, img2img ? "a1111-img2img" : "a1111-txt2img", true,
                job -> server.pipelines.generate(req.spec, job));
        server.metrics.generated("a1111", batch.images().size());
        ObjectNode out = Fields.JSON.createObjectNode();
        ArrayNode images = out.putArray("images");
        if (req.sendImages) {
            batch.images().forEach(i -> images.add(Png.base64(i.png())));
        }
        out.set("parameters", req.parameters);
        out.put("info", info(req, batch));
        Server.json(ctx, out);
    }

    /** A checked request: what runs, and the {@code parameters} echoed back. */
    private record Request(ImageSpec spec, ObjectNode parameters, boolean sendImages, String samplerName) {}

    private Request request(Fields f, boolean img2img) {
        ServerConfig c = server.config;
        refuseUnsupported(f, img2img);
        double eta = settings(f.object("override_settings"), etaDdim);
        String promptAsWritten = f.string("prompt", "", 32000);
        LoraTags.Parsed tagged = parseTags("prompt", promptAsWritten);
        String prompt = tagged.prompt();
        List<ImageSpec.LoraUse> loras = loras(tagged.loras());
        String negative = f.has("negative_prompt") ? negativeWithoutTags(f.string("negative_prompt", "", 32000)) : null;
        long seed = f.longOrNull("seed") == null ? -1 : f.longOrNull("seed");
        int batchSize = f.integer("batch_size", 1, 1, c.maxImages());
        int nIter = f.integer("n_iter", 1, 1, c.maxImages());
        if (batchSize * nIter > c.maxImages()) {
            throw ApiException.badRequest("batch_size", "batch_size x n_iter = " + batchSize * nIter
                    + " images; this server makes at most " + c.maxImages() + " per request");
        }
        int steps = f.integer("steps", 50, 1, c.maxSteps());
        double cfg = f.number("cfg_scale", 7.0, 0, 100);
        String samplerName = f.string("sampler_name", null, 64);
        String samplerField = "sampler_name";
        if (samplerName == null || samplerName.isEmpty()) {
            samplerName = f.string("sampler_index", null, 64);
            samplerField = "sampler_index";
        }
        SchedulerKind kind = sampler(samplerField, samplerName, f.string("scheduler", null, 64));

        List<BufferedImage> init = null;
        double strength = 0;
        boolean resize = false;
        int width, height;
        if (img2img) {
            List<String> encoded = f.strings("init_images", c.maxImages(), Integer.MAX_VALUE);
            if (encoded.isEmpty()) {
                throw ApiException.badRequest("init_images", "img2img needs at least one init image (base64)");
            }
            init = new ArrayList<>();
            for (int i = 0; i < encoded.size(); i++) {
                init.add(Png.decodeBase64("init_images[" + i + "]", encoded.get(i), 4 * c.maxPixels()));
            }
            strength = f.number("denoising_strength", 0.75, 0, 1);
            if (strength <= 0) {
                throw ApiException.badRequest("denoising_strength", "must be in (0, 1] for img2img, got " + strength);
            }
            // A1111 resizes the init image to width x height (resize mode 0, "Just resize"); without them, its own size.
            resize = f.has("width") || f.has("height");
            width = f.integer("width", init.get(0).getWidth() - init.get(0).getWidth() % 8, 8, c.maxSide());
            height = f.integer("height", init.get(0).getHeight() - init.get(0).getHeight() % 8, 8, c.maxSide());
        } else {
            width = f.integer("width", server.pipelines.defaultSize(), 8, c.maxSide());
            height = f.integer("height", server.pipelines.defaultSize(), 8, c.maxSide());
        }
        server.checkSize(f.has("width") ? "width" : "height", width, height);

        String refinerCheckpoint = f.string("refiner_checkpoint", null, 512);
        boolean useRefiner = refinerCheckpoint != null && !refinerCheckpoint.isEmpty();
        if (useRefiner) {
            if (img2img) {
                throw ApiException.badRequest("refiner_checkpoint", "a refiner is not supported for img2img here");
            }
            if (!server.pipelines.hasRefiner()) {
                throw ApiException.badRequest("refiner_checkpoint", "this server was started without --refiner");
            }
            if (!matchesModel(refinerCheckpoint, server.pipelines.refinerName(), null)) {
                throw ApiException.badRequest("refiner_checkpoint", "'" + refinerCheckpoint + "' is not loaded; the refiner is '"
                        + server.pipelines.refinerName() + "'");
            }
        }
        double switchAt = f.number("refiner_switch_at", 0.8, 0, 1);
        if (useRefiner && (switchAt <= 0 || switchAt >= 1)) {
            throw ApiException.badRequest("refiner_switch_at", "must be strictly between 0 and 1, got " + switchAt);
        }
        boolean sendImages = f.bool("send_images", true);
        f.bool("save_images", false);  // accepted; this server never writes files

        long firstSeed = seed == -1 ? Server.randomSeed() : seed;
        ImageSpec spec = new ImageSpec(prompt, negative, PromptSyntax.A1111, width, height, steps, cfg, firstSeed, kind, batchSize * nIter,
                useRefiner, switchAt, init, resize, strength, eta, loras, loras.isEmpty() ? null : promptAsWritten);

        // A1111 echoes its whole request model; here the request as sent, with the fields that ran filled in.
        ObjectNode parameters = f.node().deepCopy();
        parameters.put("prompt", promptAsWritten);  // as sent, tags included (A1111 echoes its request)
        parameters.put("negative_prompt", negative == null ? "" : negative);
        parameters.put("seed", seed);
        parameters.put("sampler_name", samplerName);
        parameters.put("batch_size", batchSize);
        parameters.put("n_iter", nIter);
        parameters.put("steps", steps);
        parameters.put("cfg_scale", cfg);
        parameters.put("width", width);
        parameters.put("height", height);
        if (img2img) {
            parameters.put("denoising_strength", strength);
            if (!f.bool("include_init_images", false)) {
                parameters.putNull("init_images");
            }
        }
        return new Request(spec, parameters, sendImages, samplerName);
    }

    /** A1111 cuts extra-network tags ({@code <name:...>}) out of a prompt; the LoRA ones are returned to load. */
    private static LoraTags.Parsed parseTags(String field, String prompt) {
        try {
            return LoraTags.parse(prompt);
        } catch (SdxlException e) {
            throw ApiException.badRequest(field, e.getMessage());
        }
    }

    /** The negative prompt's tags are cut out too; LoRA tags there would do nothing, so they are refused. */
    private static String negativeWithoutTags(String negative) {
        LoraTags.Parsed p = parseTags("negative_prompt", negative);
        if (!p.loras().isEmpty()) {
            throw ApiException.badRequest("negative_prompt", "LoRA tags such as <lora:" + p.loras().get(0).name()
                    + ":...> belong in the prompt, not the negative prompt");
        }
        return p.prompt();
    }

    /**
     * The files of the prompt's LoRA tags, from the server's LoRA folder; a name twice adds the weights (A1111 sums
     * the multipliers of a repeated network).
     */
    private List<ImageSpec.LoraUse> loras(List<LoraTags.Tag> tags) {
        if (tags.isEmpty()) {
            return List.of();
        }
        LoraLibrary library = server.pipelines.loraLibrary();
        if (library == null) {
            throw ApiException.badRequest("prompt", "the prompt has <lora:" + tags.get(0).name() + ":...> but this "
                    + "server has no LoRA folder (start it with --lora-dir DIR)");
        }
        java.util.LinkedHashMap<String, ImageSpec.LoraUse> uses = new java.util.LinkedHashMap<>();
        for (LoraTags.Tag t : tags) {
            LoraLibrary.Entry e = library.find(t.name()).orElseThrow(() -> ApiException.badRequest("prompt",
                    "no LoRA named \"" + t.name() + "\" in the server's LoRA folder (GET /sdapi/v1/loras lists them)"));
            uses.merge(e.name(), new ImageSpec.LoraUse(e.name(), e.file(), t.weight()),
                    (a, b) -> new ImageSpec.LoraUse(a.name(), a.file(), a.weight() + b.weight()));
        }
        return List.copyOf(uses.values());
    }

    /** A1111's GET /sdapi/v1/loras: name, alias, path (relative to the LoRA folder here) and metadata (none read). */
    private ArrayNode loraList() {
        ArrayNode out = Fields.JSON.createArrayNode();
        LoraLibrary library = server.pipelines.loraLibrary();
        if (library != null) {
            for (LoraLibrary.Entry e : library.list()) {
                ObjectNode o = out.addObject();
                o.put("name", e.name());
                o.put("alias", e.name());
                o.put("path", e.relative().toString());
                o.putObject("metadata");
            }
        }
        return out;
    }

    /** Fields that ask for something these pipelines do not do: 400 when set to anything but A1111's "off" value. */
    private static void refuseUnsupported(Fields f, boolean img2img) {
        if (f.bool("enable_hr", false)) {
            throw ApiException.badRequest("enable_hr", "hires fix is not supported; generate at the size you want");
        }
        if (f.bool("restore_faces", false)) {
            throw ApiException.badRequest("restore_faces", "face restoration is not supported");
        }
        if (f.has("tiling") && f.bool("tiling", false)) {
            throw ApiException.badRequest("tiling", "tiling is not supported");
        }
        if (f.number("subseed_strength", 0, 0, 1) != 0) {
            throw ApiException.badRequest("subseed_strength", "variation seeds are not supported; leave it 0");
        }
        if (f.integer("seed_resize_from_h", -1, -1, Integer.MAX_VALUE) > 0
                || f.integer("seed_resize_from_w", -1, -1, Integer.MAX_VALUE) > 0) {
            throw ApiException.badRequest("seed_resize_from_h", "seed resize is not supported; leave it -1");
        }
        if (!f.strings("styles", 64, 1024).isEmpty()) {
            throw ApiException.badRequest("styles", "prompt styles are not supported; put the text in the prompt");
        }
        String script = f.string("script_name", null, 256);
        if (script != null && !script.isEmpty()) {
            throw ApiException.badRequest("script_name", "scripts are not supported");
        }
        JsonNode always = f.raw("alwayson_scripts");
        if (always != null && !always.isNull() && !(always.isObject() && always.isEmpty())) {
            throw ApiException.badRequest("alwayson_scripts", "scripts are not supported");
        }
        if (img2img) {
            if (f.has("mask")) {
                throw ApiException.badRequest("mask", "inpainting masks are not supported");
            }
            if (f.integer("resize_mode", 0, 0, 3) != 0) {
                throw ApiException.badRequest("resize_mode", "only resize mode 0 (just resize) is supported");
            }
        }
    }

    /**
     * A1111's sampler and (since 1.9) separate schedule type: "DPM++ 2M" + "Karras" is "DPM++ 2M Karras"; "SGM
     * Uniform" maps to the trailing-spacing variant. No sampler: the model's own scheduler config.
     */
    private static SchedulerKind sampler(String field, String name, String schedule) {
        if (name == null || name.isEmpty()) {
            if (schedule != null && !schedule.isEmpty() && !schedule.equalsIgnoreCase("automatic")) {
                throw ApiException.badRequest("scheduler", "give sampler_name with a schedule type");
            }
            return null;
        }
        String s = schedule == null ? "automatic" : schedule.toLowerCase(Locale.ROOT).replace(' ', '_');
        return switch (s) {
            case "automatic", "", "uniform" -> Server.scheduler(field, name);
            case "karras" -> Server.scheduler(field, name.toLowerCase(Locale.ROOT).endsWith("karras") ? name : name + " Karras");
            case "sgm_uniform" -> Server.scheduler(field, name + " Trailing");
            default -> throw ApiException.badRequest("scheduler", "schedule type \"" + schedule
                    + "\" is not supported; use Automatic, Uniform, Karras or SGM Uniform");
        };
    }

    /**
     * The settings of POST /sdapi/v1/options and of a request's override_settings that apply here; returns DDIM's
     * eta. Other keys are ignored, as A1111 ignores keys it does not know.
     */
    private double settings(Fields o, double eta) {
        if (o.has("sd_model_checkpoint")) {
            String name = o.string("sd_model_checkpoint", null, 512);
            if (!matchesModel(name, server.pipelines.modelName(), server.pipelines.modelHash())) {
                throw ApiException.badRequest(o.name("sd_model_checkpoint"), "model '" + name
                        + "' is not loaded; this server runs '" + title() + "'");
            }
        }
        if (o.has("samples_format") && !o.string("samples_format", "png", 16).equalsIgnoreCase("png")) {
            throw ApiException.badRequest(o.name("samples_format"), "only png is supported");
        }
        if (o.integer("CLIP_stop_at_last_layers", 1, 1, 12) != 1) {
            throw ApiException.badRequest(o.name("CLIP_stop_at_last_layers"), "clip skip is not supported; leave it 1");
        }
        return o.number("eta_ddim", eta, 0, 1);
    }

    /** A1111 names a model by its title ("name [hash]"), its name, or its file name. */
    private boolean matchesModel(String given, String name, String hash) {
        if (given == null || name == null) {
            return false;
        }
        String g = given.strip();
        return g.equals(name) || g.equals(name + ".safetensors") || (hash != null && (g.equals(hash)
                || g.equals(name + " [" + hash + "]") || g.equals(name + ".safetensors [" + hash + "]")))
                || g.equals(server.pipelines.modelFileName()) && name.equals(server.pipelines.modelName());
    }

    private String title() {
        String hash = server.pipelines.modelHash();
        return hash == null ? server.pipelines.modelName() : server.pipelines.modelFileName() + " [" + hash + "]";
    }

    /** A1111's {@code info}: Processed.js(), a JSON string. */
    private String info(Request req, Pipelines.Batch batch) {
        ImageSpec s = req.spec;
        ObjectNode info = Fields.JSON.createObjectNode();
        info.put("prompt", s.prompt());
        ArrayNode prompts = info.putArray("all_prompts");
        info.put("negative_prompt", s.negativePrompt() == null ? "" : s.negativePrompt());
        ArrayNode negatives = info.putArray("all_negative_prompts");
        info.put("seed", s.seed());
        ArrayNode seeds = info.putArray("all_seeds");
        info.put("subseed", -1);
        ArrayNode subseeds = info.putArray("all_subseeds");
        for (int i = 0; i < s.count(); i++) {
            prompts.add(s.prompt());
            negatives.add(s.negativePrompt() == null ? "" : s.negativePrompt());
            seeds.add(s.seed() + i);
            subseeds.add(-1);
        }
        info.put("subseed_strength", 0);
        info.put("width", s.width());
        info.put("height", s.height());
        // The sampler as the infotext names it (with no sampler asked for: the model's own scheduler).
        info.put("sampler_name", s.scheduler() != null ? s.scheduler().displayName() : batch.images().isEmpty()
                ? req.samplerName : GenerationParameters.parse(batch.images().get(0).infotext()).sampler().orElse(null));
        info.put("cfg_scale", s.guidanceScale());
        info.put("steps", s.steps());
        info.put("batch_size", req.parameters.get("batch_size").asInt());
        info.put("restore_faces", false);
        info.putNull("face_restoration_model");
        info.put("sd_model_name", server.pipelines.modelName());
        info.put("sd_model_hash", server.pipelines.modelHash());
        info.putNull("sd_vae_name");
        info.putNull("sd_vae_hash");
        info.put("seed_resize_from_w", -1);
        info.put("seed_resize_from_h", -1);
        info.put("denoising_strength", s.img2img() ? s.strength() : 0);
        ObjectNode extra = info.putObject("extra_generation_params");
        if (s.useRefiner()) {
            extra.put("Refiner", server.pipelines.refinerName());
            extra.put("Refiner switch at", s.refinerSwitchAt());
        }
        info.put("index_of_first_image", 0);
        ArrayNode infotexts = info.putArray("infotexts");
        batch.images().forEach(i -> infotexts.add(i.infotext()));
        info.putArray("styles");
        info.put("job_timestamp", LocalDateTime.now().format(JOB_TIMESTAMP));
        info.put("clip_skip", 1);
        info.put("is_using_inpainting_conditioning", false);
        info.put("version", "sdxl4j " + Sdxl4j.version());
        if (batch.interrupted()) {
            info.put("interrupted", true);
        }
        try {
            return Fields.JSON.writeValueAsString(info);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    // ================================================================================================ the rest

    /** A1111's progress: the running job's share done, an ETA, its step, and a cheap preview of its latents. */
    private void progress(Context ctx) {
        boolean skipImage = "true".equalsIgnoreCase(ctx.queryParam("skip_current_image"));
        JobQueue.Job<?> job = server.queue.running();
        ObjectNode out = Fields.JSON.createObjectNode();
        ObjectNode state = Fields.JSON.createObjectNode();
        state.put("skipped", false);
        state.put("interrupted", job != null && job.cancelled() == JobQueue.Reason.INTERRUPTED);
        state.put("stopping_generation", false);
        if (job == null) {
            out.put("progress", 0.0);
            out.put("eta_relative", 0.0);
            state.put("job", "");
            state.put("job_count", 0);
            state.put("job_timestamp", "0");
            state.put("job_no", 0);
            state.put("sampling_step", 0);
            state.put("sampling_steps", 0);
            out.set("state", state);
            out.putNull("current_image");
            out.putNull("textinfo");
            Server.json(ctx, out);
            return;
        }
        int count = Math.max(1, job.imageCount), steps = job.steps, step = job.step;
        double progress = 0.01 + (double) job.imageIndex / count + (steps > 0 ? (double) step / steps / count : 0);
        double elapsed = (System.nanoTime() - job.startedNanos) / 1e9;
        out.put("progress", Math.min(progress, 1.0));
        out.put("eta_relative", Math.max(0, elapsed / progress - elapsed));
        state.put("job", "job " + job.id);
        state.put("job_count", count);
        state.put("job_timestamp", job.startedAt == null ? "0" : job.startedAt.format(JOB_TIMESTAMP));
        state.put("job_no", job.imageIndex);
        state.put("sampling_step", step);
        state.put("sampling_steps", steps);
        out.set("state", state);
        BufferedImage preview = skipImage ? null : LatentPreview.of(job.previewLatents(), job.imageHeight, job.imageWidth);
        if (preview != null) {
            out.put("current_image", Png.base64(Png.encode(preview, null)));
        } else {
            out.putNull("current_image");
        }
        out.putNull("textinfo");
        Server.json(ctx, out);
    }

    private ArrayNode samplers() {
        ArrayNode out = Fields.JSON.createArrayNode();
        for (SchedulerKind k : SchedulerKind.values()) {
            ObjectNode s = out.addObject();
            s.put("name", k.displayName());
            ArrayNode aliases = s.putArray("aliases");
            aliases.add(k.name().toLowerCase(Locale.ROOT));
            ObjectNode options = s.putObject("options");
            if (Boolean.TRUE.equals(k.overrides().get("use_karras_sigmas"))) {
                options.put("scheduler", "karras");
            }
        }
        return out;
    }

    private static ArrayNode schedulers() {
        ArrayNode out = Fields.JSON.createArrayNode();
        String[][] types = {{"automatic", "Automatic"}, {"uniform", "Uniform"}, {"karras", "Karras"},
            {"sgm_uniform", "SGM Uniform"}};
        for (String[] t : types) {
            ObjectNode s = out.addObject();
            s.put("name", t[0]);
            s.put("label", t[1]);
            s.putNull("aliases");
            s.put("default_rho", t[0].equals("karras") ? 7.0 : -1.0);
            s.put("need_inner_model", false);
        }
        return out;
    }

    private ArrayNode sdModels() {
        ArrayNode out = Fields.JSON.createArrayNode();
        ObjectNode m = out.addObject();
        m.put("title", title());
        m.put("model_name", server.pipelines.modelName());
        m.put("hash", server.pipelines.modelHash());
        m.putNull("sha256");
        m.put("filename", server.pipelines.modelFileName());  // the name only: the server's paths stay private
        m.putNull("config");
        if (server.pipelines.hasRefiner()) {
            ObjectNode r = out.addObject();
            r.put("title", server.pipelines.refinerName());
            r.put("model_name", server.pipelines.refinerName());
            r.putNull("hash");
            r.putNull("sha256");
            r.put("filename", server.pipelines.refinerName());
            r.putNull("config");
        }
        return out;
    }

    private ObjectNode options() {
        ObjectNode o = Fields.JSON.createObjectNode();
        o.put("sd_model_checkpoint", title());
        o.put("sd_checkpoint_hash", server.pipelines.modelHash());
        o.put("samples_format", "png");
        o.put("eta_ddim", etaDdim);
        o.put("CLIP_stop_at_last_layers", 1);
        o.put("sdxl4j_queue_capacity", server.queue.capacity());
        return o;
    }
}
