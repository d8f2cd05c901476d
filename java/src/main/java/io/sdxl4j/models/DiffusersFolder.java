package io.sdxl4j.models;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A diffusers pipeline folder (as saved by save_pretrained or found in the Hugging Face cache): model_index.json
 * names each component's library and class; each component lives in its own sub-folder with a config.json and
 * weights, optionally in a variant such as "fp16".
 */
public final class DiffusersFolder {
    private final Path root;
    private final JsonNode index;

    private DiffusersFolder(Path root, JsonNode index) {
        this.root = root;
        this.index = index;
    }

    public static DiffusersFolder open(Path root) {
        Path file = root.resolve("model_index.json");
        try {
            JsonNode index = new ObjectMapper().readTree(Files.readAllBytes(file));
            if (index == null || !index.isObject()) {
                throw new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": must be a JSON object");
            }
            return new DiffusersFolder(root, index);
        } catch (NoSuchFileException e) {
            throw new SdxlException(ErrorCode.NOT_FOUND, root + " is not a diffusers model folder: no model_index.json", e);
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, file + ": not valid JSON: " + e.getMessage(), e);
        }
    }

    public Path root() {
        return root;
    }

    /** The pipeline class, e.g. StableDiffusionXLPipeline. */
    public String pipelineClass() {
        JsonNode n = index.get("_class_name");
        return n == null ? "" : n.asText();
    }

    /** The class of a component ("UNet2DConditionModel"), or empty when model_index.json has none (null entry). */
    public Optional<String> componentClass(String name) {
        JsonNode n = index.get(name);
        if (n == null || n.isNull()) {
            return Optional.empty();
        }
        if (!n.isArray() || n.size() != 2) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, root.resolve("model_index.json") + ": \"" + name
                    + "\" must be [library, class], found " + n);
        }
        return n.get(1).isNull() ? Optional.empty() : Optional.of(n.get(1).asText());
    }

    /** A boolean pipeline option such as force_zeros_for_empty_prompt. */
    public boolean flag(String key, boolean dflt) {
        JsonNode n = index.get(key);
        return n == null || !n.isBoolean() ? dflt : n.asBoolean();
    }

    /** The folder of a component that must exist and be of one of the expected classes. */
    public Path component(String name, String... expectedClasses) {
        String cls = componentClass(name).orElseThrow(() -> new SdxlException(ErrorCode.NOT_FOUND,
                root + ": this pipeline has no " + name + " (model_index.json lists it as null or not at all)"));
        if (expectedClasses.length > 0 && !java.util.List.of(expectedClasses).contains(cls)) {
            throw new SdxlException(ErrorCode.UNSUPPORTED, root.resolve("model_index.json") + ": " + name + " is a "
                    + cls + "; expected " + String.join(" or ", expectedClasses));
        }
        Path dir = root.resolve(name);
        if (!Files.isDirectory(dir)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, dir + " is missing (model_index.json lists " + name + ")");
        }
        return dir;
    }

    public ClipTextModel textEncoder(String variant) {
        return ClipTextModel.load(component("text_encoder", "CLIPTextModel"), variant);
    }

    public ClipTextModel textEncoder(String variant, io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        return ClipTextModel.load(component("text_encoder", "CLIPTextModel"), variant, device, dtype);
    }

    public ClipTextModel textEncoder2(String variant) {
        return ClipTextModel.load(component("text_encoder_2", "CLIPTextModelWithProjection"), variant);
    }

    public ClipTextModel textEncoder2(String variant, io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        return ClipTextModel.load(component("text_encoder_2", "CLIPTextModelWithProjection"), variant, device, dtype);
    }

    public UNet2DConditionModel unet(String variant) {
        return UNet2DConditionModel.load(component("unet", "UNet2DConditionModel"), variant);
    }

    public UNet2DConditionModel unet(String variant, io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        return UNet2DConditionModel.load(component("unet", "UNet2DConditionModel"), variant, device, dtype);
    }

    public AutoencoderKL vae(String variant) {
        return AutoencoderKL.load(component("vae", "AutoencoderKL"), variant);
    }

    public AutoencoderKL vae(String variant, io.sdxl4j.Device device, io.sdxl4j.DType dtype) {
        return AutoencoderKL.load(component("vae", "AutoencoderKL"), variant, device, dtype);
    }
}
