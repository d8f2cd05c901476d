package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;

/**
 * Tiled VAE decode/encode as diffusers 0.31's {@code AutoencoderKL.enable_tiling()} does it: images larger than
 * one tile are decoded (encoded) tile by tile, the tiles overlapping by {@code overlap} of a tile and blended
 * linearly, so memory stays bounded whatever the image size. A tiled image differs slightly from the one-pass
 * image (each tile sees only its own pixels), as in diffusers. Immutable.
 *
 * @param mode           {@link Mode#OFF}: one pass; {@link Mode#AUTO}: diffusers' {@code use_tiling} (tiled only
 *                       when the image is larger than one tile); {@link Mode#ALWAYS}: diffusers'
 *                       {@code tiled_decode}/{@code tiled_encode} (tiled whatever the size)
 * @param tileSampleSize the tile side in pixels (diffusers' {@code tile_sample_min_size}); 0 = the VAE config's
 *                       {@code sample_size} (1024 for SDXL)
 * @param overlap        diffusers' {@code tile_overlap_factor}, in [0, 1) (0.25)
 */
public record VaeTiling(Mode mode, long tileSampleSize, double overlap) {
    /** How decode/encode tile (numbers shared with the native VaeTilingMode). */
    public enum Mode {
        OFF(0), AUTO(1), ALWAYS(2);

        private final int code;

        Mode(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }
    }

    /** One pass (diffusers' default). */
    public static final VaeTiling OFF = new VaeTiling(Mode.OFF, 0, 0.25);
    /** diffusers' {@code enable_tiling()}: tiles of the config's sample_size, overlap 0.25. */
    public static final VaeTiling AUTO = new VaeTiling(Mode.AUTO, 0, 0.25);

    public VaeTiling {
        if (mode == null) {
            mode = Mode.OFF;
        }
        if (tileSampleSize < 0) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT,
                    "VAE tile size must be >= 0 pixels (0: the VAE's sample_size), got " + tileSampleSize);
        }
        if (!(overlap >= 0 && overlap < 1)) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "VAE tile overlap must be in [0, 1), got " + overlap);
        }
    }

    /** {@link Mode#AUTO} with tiles of {@code tileSampleSize} pixels (0: the config's sample_size). */
    public static VaeTiling auto(long tileSampleSize) {
        return new VaeTiling(Mode.AUTO, tileSampleSize, 0.25);
    }

    public boolean enabled() {
        return mode != Mode.OFF;
    }
}
