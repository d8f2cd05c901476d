package io.sdxl4j.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.config.RoutesConfig;
import io.javalin.http.Context;
import io.sdxl4j.PromptSyntax;
import io.sdxl4j.SchedulerKind;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The OpenAI Images API: {@code POST /v1/images/generations} and {@code GET /v1/models}, so that OpenAI clients
 * (the official SDKs, LangChain4j, Spring AI, ...) generate with a base URL pointing here. Images come back as
 * {@code b64_json} PNGs (this server hosts no files, so {@code response_format: "url"} is refused). Beyond OpenAI's
 * fields a request may give {@code negative_prompt}, {@code prompt_syntax} (plain, compel or a1111; default plain, as
 * diffusers reads prompts), {@code seed}, {@code steps}, {@code guidance_scale},
 * {@code scheduler}, {@code refiner} and {@code refiner_switch_at}; image i of n uses seed + i. Errors are OpenAI's
 * error object with its status codes.
 */
final class OpenAiApi {
    /** OpenAI's own fields, then ours. Anything else is refused, as OpenAI refuses unknown arguments. */
    private static final Set<String> FIELDS = Set.of("prompt", "model", "n", "size", "response_format", "quality", "style",
            "user", "background", "moderation", "output_format", "output_compression", "stream", "partial_images",
            "negative_prompt", "prompt_syntax", "seed", "steps", "guidance_scale", "scheduler", "refiner", "refiner_switch_at");
    private static final Pattern SIZE = Pattern.compile("(\\d{1,5})x(\\d{1,5})");
    static final String OWNER = "sdxl4j";

    private final Server server;

    OpenAiApi(Server server) {
        this.server = server;
    }

    void routes(RoutesConfig r) {
        r.post("/v1/images/generations", this::generations);
        r.get("/v1/models", ctx -> Server.json(ctx, models()));
        r.get("/v1/models/{id}", ctx -> {
            String id = ctx.pathParam("id");
            if (!isOurModel(id)) {
                throw modelNotFound(id);
            }
            Server.json(ctx, model());
        });
    }

    private ObjectNode models() {
        ObjectNode list = Fields.JSON.createObjectNode();
        list.put("object", "list");
        list.putArray("data").add(model());
        return list;
    }

    private ObjectNode model() {
        ObjectNode m = Fields.JSON.createObjectNode();
        m.put("id", server.pipelines.modelName());
        m.put("object", "model");
        m.put("created", server.pipelines.loadedAtSeconds);
        m.put("owned_by", OWNER);
        return m;
    }

    /**
     * Our model's name, or one of OpenAI's image model names: clients send those by default (LangChain4j and Spring
     * AI send dall-e-*), and this server has one model for them all.
     */
    private boolean isOurModel(String id) {
        String m = id.toLowerCase(Locale.ROOT);
        return id.equals(server.pipelines.modelName()) || id.equals(server.pipelines.modelFileName()) || m.equals("sdxl4j")
                || m.startsWith("dall-e-") || m.startsWith("gpt-image-");
    }

    private static ApiException modelNotFound(String id) {
        return ApiException.notFound("The model '" + id + "' does not exist on this server; GET /v1/models lists it",
                "model", "model_not_found");
    }

    private void generations(Context ctx) {
        Fields f = Fields.parse(server.body(ctx));
        for (String name : f.names()) {
            if (!FIELDS.contains(name)) {
                throw new ApiException(400, "Unrecognized request argument supplied: " + name, name, "unknown_parameter", 0);
            }
        }
        ImageSpec spec = spec(f);
        Pipelines.Batch batch = server.run(ctx, "openai", false, job -> server.pipelines.generate(spec, job));
        if (batch.interrupted()) {
            throw new ApiException(500, "the generation was interrupted (POST /sdapi/v1/interrupt)", null, "interrupted", 0);
        }
        server.metrics.generated("openai", batch.images().size());
        ObjectNode out = Fields.JSON.createObjectNode();
        out.put("created", System.currentTimeMillis() / 1000);
        ArrayNode data = out.putArray("data");
        for (GeneratedImage img : batch.images()) {
            ObjectNode d = data.addObject();
            d.put("b64_json", Png.base64(img.png()));
            d.put("revised_prompt", spec.prompt());
        }
        Server.json(ctx, out);
    }

    /** The request's fields checked and reduced to an {@link ImageSpec}; 400 naming the first bad field. */
    ImageSpec spec(Fields f) {
        ServerConfig c = server.config;
        String prompt = f.string("prompt", null, 32000);
        if (prompt == null || prompt.isBlank()) {
            throw ApiException.badRequest("prompt", "is required and must not be empty");
        }
        String model = f.string("model", null, 256);
        if (model != null && !isOurModel(model)) {
            throw modelNotFound(model);
        }
        int n = f.integer("n", 1, 1, c.maxImages());
        String format = f.string("response_format", "b64_json", 32);
        if (format.equals("url")) {
            throw ApiException.badRequest("response_format", "\"url\" is not supported: this server hosts no image files; "
                    + "use \"b64_json\"");
        }
        if (!format.equals("b64_json")) {
            throw ApiException.badRequest("response_format", "must be \"b64_json\", got \"" + format + "\"");
        }
        String outputFormat = f.string("output_format", "png", 16);
        if (!outputFormat.equals("png")) {
            throw ApiException.badRequest("output_format", "only \"png\" is supported, got \"" + outputFormat + "\"");
        }
        String background = f.string("background", "auto", 16);
        if (!background.equals("auto") && !background.equals("opaque")) {
            throw ApiException.badRequest("background", "only \"auto\" and \"opaque\" are supported, got \"" + background + "\"");
        }
        if (f.bool("stream", false)) {
            throw ApiException.badRequest("stream", "streaming is not supported; leave it false");
        }
        // Accepted and without effect here: quality, style, user, moderation, output_compression, partial_images.
        f.string("quality", null, 32);
        f.string("style", null, 32);
        f.string("user", null, 1024);
        f.string("moderation", null, 32);
        f.integer("output_compression", 100, 0, 100);
        f.integer("partial_images", 0, 0, 3);

        int width = server.pipelines.defaultSize(), height = width;
        String size = f.string("size", "auto", 32);
        if (!size.equals("auto")) {
            Matcher m = SIZE.matcher(size);
            if (!m.matches()) {
                throw ApiException.badRequest("size", "must be \"WIDTHxHEIGHT\" (such as \"1024x1024\") or \"auto\", got \""
                        + size + "\"");
            }
            width = Integer.parseInt(m.group(1));
            height = Integer.parseInt(m.group(2));
        }
        server.checkSize("size", width, height);

        String negative = f.string("negative_prompt", null, 32000);
        Long seed = f.longOrNull("seed");
        int steps = f.integer("steps", 50, 1, c.maxSteps());
        double guidance = f.number("guidance_scale", 5.0, 0, 100);
        String schedulerName = f.string("scheduler", null, 64);
        SchedulerKind scheduler = schedulerName == null ? null : Server.scheduler("scheduler", schedulerName);
        boolean refiner = f.bool("refiner", server.pipelines.hasRefiner());
        if (refiner && !server.pipelines.hasRefiner()) {
            throw ApiException.badRequest("refiner", "this server was started without --refiner");
        }
        double switchAt = f.number("refiner_switch_at", 0.8, 0, 1);
        if (switchAt <= 0 || switchAt >= 1) {
            throw ApiException.badRequest("refiner_switch_at", "must be strictly between 0 and 1, got " + switchAt);
        }
        String syntaxName = f.string("prompt_syntax", "plain", 16);
        PromptSyntax syntax;
        try {
            syntax = PromptSyntax.valueOf(syntaxName.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("prompt_syntax", "must be plain, compel or a1111, got \"" + syntaxName + "\"");
        }
        return new ImageSpec(prompt, negative, syntax, width, height, steps, guidance, seed != null ? seed : Server.randomSeed(),
                scheduler, n, refiner, switchAt, null, false, 0, 0, List.of(), null);
    }
}
