package io.sdxl4j;

import io.sdxl4j.images.InvisibleWatermark;
import io.sdxl4j.models.UNetConfig;
import java.util.Arrays;
import java.util.List;

/** What validation derives from a request: the prompt batch, the output size and whether to watermark. */
final class Plan {
        int batch;
        int height, width;      // output pixels
        int latentH, latentW;   // img2img: the input's latent size
        boolean watermark;

    private Plan() {}

    /**
     * Checks a request against this pipeline (INVALID_ARGUMENT saying what to change; BAD_MODEL_FILE when the UNet's
     * added conditioning does not fit the time ids) and derives its plan.
     */
    static Plan validate(GenerationRequest r, Components parts, PipelineOptions options, boolean img2img) {
        UNetConfig unetConfig = parts.unetConfig;
        Plan p = new Plan();
        if (r.steps() < 1 || r.steps() > 10000) {
            throw bad("steps must be between 1 and 10000, got " + r.steps());
        }
        if (!Double.isFinite(r.guidanceScale())) {
            throw bad("guidance scale must be a finite number, got " + r.guidanceScale());
        }
        if (!(r.guidanceRescale() >= 0.0 && r.guidanceRescale() <= 1.0)) {
            throw bad("guidance rescale must be in [0, 1], got " + r.guidanceRescale());
        }
        if (r.imagesPerPrompt() < 1 || r.imagesPerPrompt() > 64) {
            throw bad("images per prompt must be between 1 and 64, got " + r.imagesPerPrompt());
        }
        checkFraction("denoising end", r.denoisingEnd());
        // ---- prompts
        if (r.prompt() != null && r.embeddings() != null) {
            throw bad("give either prompts or precomputed embeddings, not both");
        }
        if (r.prompt() == null && r.embeddings() == null) {
            throw bad("no prompt: give a prompt (it may be \"\") or precomputed embeddings");
        }
        if (r.prompt() != null) {
            if (r.prompt().isEmpty() || r.prompt().stream().anyMatch(s -> s == null)) {
                throw bad("the prompt list is empty or contains null");
            }
            p.batch = r.prompt().size();
            checkList("prompt_2", r.prompt2(), p.batch, false);
        } else {
            if (r.prompt2() != null) {
                throw bad("prompt_2 given with precomputed embeddings; encode it into the embeddings instead");
            }
            long[] s = r.embeddings().promptEmbeds().shape();
            if (s.length != 3) {
                throw bad("prompt embeddings must be [batch, tokens, features], got " + Arrays.toString(s));
            }
            p.batch = (int) s[0];
        }
        checkList("negative prompt", r.negativePrompt(), p.batch, true);
        checkList("negative prompt_2", r.negativePrompt2(), p.batch, true);
        if (r.embeddings() != null && r.negativePrompt() != null && r.embeddings().negativePromptEmbeds() != null) {
            throw bad("give either a negative prompt or negative embeddings, not both");
        }
        if (r.syntax() == PromptSyntax.COMPEL && (r.prompt2() != null || r.negativePrompt2() != null)) {
            throw bad("prompt_2 / negative prompt_2 are not used with the COMPEL syntax (compel encodes one prompt "
                    + "with both text encoders); leave them unset");
        }
        // ---- sizes and the image
        if (img2img) {
            if (r.image() == null) {
                throw bad("the refiner (img2img) needs an image: pixels in [0, 1] or the base's latents");
            }
            if (r.latents() != null) {
                throw bad("initial latents are for text-to-image; give the refiner an image instead");
            }
            if (r.denoisingStart() == null && !(r.strength() > 0.0 && r.strength() <= 1.0)) {
                throw bad("strength must be in (0, 1], got " + r.strength());
            }
            checkFraction("denoising start", r.denoisingStart());
            if (r.denoisingStart() != null && r.denoisingEnd() != null && r.denoisingStart() >= r.denoisingEnd()) {
                throw bad("denoising start " + r.denoisingStart() + " must be below denoising end " + r.denoisingEnd());
            }
            ImageInput img = r.image();
            long latentChannels = unetConfig.inChannels();
            if (img.isLatents()) {
                if (img.channels() != latentChannels) {
                    throw bad("image latents have " + img.channels() + " channels; this UNet takes " + latentChannels);
                }
                p.latentH = img.height();
                p.latentW = img.width();
            } else {
                if (img.height() % 8 != 0 || img.width() % 8 != 0) {
                    throw bad("image size " + img.height() + "x" + img.width() + " (height x width) must be a multiple "
                            + "of 8; resize or crop it");
                }
                p.latentH = img.height() / 8;
                p.latentW = img.width() / 8;
            }
            int total = p.batch * r.imagesPerPrompt();
            if (total % img.batch() != 0 || img.batch() > total) {
                throw bad("cannot share " + img.batch() + " input images among " + total + " outputs "
                        + "(batch x images per prompt must be a multiple of the image count)");
            }
            p.height = p.latentH * 8;
            p.width = p.latentW * 8;
            if ((r.height() != null && r.height() != p.height) || (r.width() != null && r.width() != p.width)) {
                throw bad("img2img output has the input image's size, " + p.height + "x" + p.width + " (height x width); "
                        + "the request asks for " + r.height() + "x" + r.width() + ": leave height and width unset or "
                        + "resize the image");
            }
        } else {
            if (r.image() != null || r.denoisingStart() != null) {
                throw bad("image and denoising start are refiner (img2img) options; use Refiner for them");
            }
            p.height = r.height() != null ? r.height() : parts.defaultSize();
            p.width = r.width() != null ? r.width() : parts.defaultSize();
            if (p.height <= 0 || p.width <= 0 || p.height % 8 != 0 || p.width % 8 != 0) {
                throw bad("height and width must be positive multiples of 8, got " + p.height + "x" + p.width);
            }
            if ((long) p.height * p.width > 8192L * 8192L) {
                throw bad("image size " + p.height + "x" + p.width + " is larger than 8192x8192");
            }
            if (r.latents() != null) {
                long need = (long) p.batch * r.imagesPerPrompt() * unetConfig.inChannels() * (p.height / 8) * (p.width / 8);
                if (r.latents().length != need) {
                    throw bad("initial latents have " + r.latents().length + " values; [" + p.batch * r.imagesPerPrompt()
                            + ", " + unetConfig.inChannels() + ", " + p.height / 8 + ", " + p.width / 8 + "] needs " + need);
                }
            }
        }
        p.watermark = r.output() == GenerationRequest.Output.IMAGE
                && (r.watermark() != null ? r.watermark() : options.watermark());
        if (p.watermark) {
            InvisibleWatermark.checkSize(p.height, p.width);
        }
        // the UNet's added conditioning must fit the time ids this pipeline builds
        UNetConfig u = unetConfig;
        int nIds = img2img && parts.requiresAestheticsScore ? 5 : 6;
        long expected = u.additionTimeEmbedDim() * nIds + parts.pooledDim();
        if (expected != u.projectionClassEmbeddingsInputDim()) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, parts.folder + ": the UNet expects "
                    + u.projectionClassEmbeddingsInputDim() + " added-condition features but " + nIds + " time ids give "
                    + expected + (img2img ? " (check requires_aesthetics_score in model_index.json)"
                    : " (is this a refiner? load it with Refiner)"));
        }
        return p;
    }

    private static void checkFraction(String name, Double f) {
        if (f != null && !(f > 0.0 && f < 1.0)) {
            throw bad(name + " must be in (0, 1), got " + f);
        }
    }

    private static void checkList(String what, List<String> l, int batch, boolean broadcastOne) {
        if (l == null) {
            return;
        }
        if (l.stream().anyMatch(s -> s == null)) {
            throw bad(what + " list contains null");
        }
        if (l.size() != batch && !(broadcastOne && l.size() == 1)) {
            throw bad(l.size() + " " + what + "s for " + batch + " prompts; give one per prompt"
                    + (broadcastOne ? " (or a single one for all)" : ""));
        }
    }

    static SdxlException bad(String message) {
        return new SdxlException(ErrorCode.INVALID_ARGUMENT, message);
    }
}
