package io.sdxl4j;

/** The pipeline's use of diffusers' StableDiffusionXLWatermarker (see io.sdxl4j.images.InvisibleWatermark). */
final class Watermarking {
    private Watermarking() {}

    /**
     * diffusers skips images narrower than 256; imwatermark then fails on fewer than 256*256 pixels ("image too
     * small"), which would crash diffusers after all the work. Rejected here before any model runs.
     */
    static void checkSize(int height, int width) {
        if (width >= 256 && (long) height * width < 256L * 256L) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the invisible watermark needs at least 256x256 pixels "
                    + "(imwatermark's limit) but the image is " + height + "x" + width + " (height x width); "
                    + "make it larger or turn the watermark off");
        }
    }

    /** images [n, 3, h, w] in [-1, 1] -> watermarked copy (unchanged when narrower than 256). */
    static float[] apply(float[] images, int n, int height, int width) {
        throw new SdxlException(ErrorCode.UNSUPPORTED, "watermark not wired yet");
    }
}
