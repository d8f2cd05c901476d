package io.sdxl4j;

import java.util.ArrayList;
import java.util.List;

/**
 * SDXL's micro-conditioning (diffusers' _get_add_time_ids): the time-id rows the UNet's added embedding takes with
 * the pooled text, for the base (sizes and crops) and the refiner (sizes, crops and aesthetic score), stacked in the
 * order each pipeline batches negative and positive rows.
 */
final class TimeIds {
    private TimeIds() {}

    /**
     * {positive, negative} time ids. Base: original_size + crops_coords_top_left + target_size; the negative ones
     * only differ when both negative_original_size and negative_target_size are given. Refiner
     * (requires_aesthetics_score): original_size + crops + (aesthetic_score,), negative with its own size, crops and
     * score; without the flag: sizes as the base, the negative with the positive crops (as diffusers does).
     */
    static float[][] of(GenerationRequest r, Plan p, boolean img2img, boolean requiresAestheticsScore) {
        int[] original = r.originalSize() != null ? r.originalSize() : new int[] {p.height, p.width};
        int[] target = r.targetSize() != null ? r.targetSize() : new int[] {p.height, p.width};
        int[] crops = r.cropsCoordsTopLeft();
        int[] negCrops = r.negativeCropsCoordsTopLeft();
        if (!img2img) {
            float[] pos = ids(original, crops, target);
            float[] neg = r.negativeOriginalSize() != null && r.negativeTargetSize() != null
                    ? ids(r.negativeOriginalSize(), negCrops, r.negativeTargetSize()) : pos;
            return new float[][] {pos, neg};
        }
        int[] negOriginal = r.negativeOriginalSize() != null ? r.negativeOriginalSize() : original;
        int[] negTarget = r.negativeTargetSize() != null ? r.negativeTargetSize() : target;
        if (requiresAestheticsScore) {
            return new float[][] {
                ids(original, crops, new int[0], (float) r.aestheticScore()),
                ids(negOriginal, negCrops, new int[0], (float) r.negativeAestheticScore())};
        }
        return new float[][] {ids(original, crops, target), ids(negOriginal, crops, negTarget)};
    }

    private static float[] ids(int[] a, int[] b, int[] c, float... extra) {
        float[] out = new float[a.length + b.length + c.length + extra.length];
        int k = 0;
        for (int v : a) {
            out[k++] = v;
        }
        for (int v : b) {
            out[k++] = v;
        }
        for (int v : c) {
            out[k++] = v;
        }
        for (float v : extra) {
            out[k++] = v;
        }
        return out;
    }

    /** Base: cat([neg, pos]).repeat(B*n, 1) when guiding: rows alternate negative, positive (as diffusers builds them). */
    static float[] stackBase(float[][] pn, int total, boolean guided) {
        List<float[]> rows = new ArrayList<>();
        for (int i = 0; i < total; i++) {
            if (guided) {
                rows.add(pn[1]);
            }
            rows.add(pn[0]);
        }
        return flatten(rows);
    }

    /** Refiner: cat([neg.repeat(B*n), pos.repeat(B*n)]) when guiding. */
    static float[] stackImg2Img(float[][] pn, int total, boolean guided) {
        List<float[]> rows = new ArrayList<>();
        if (guided) {
            for (int i = 0; i < total; i++) {
                rows.add(pn[1]);
            }
        }
        for (int i = 0; i < total; i++) {
            rows.add(pn[0]);
        }
        return flatten(rows);
    }

    private static float[] flatten(List<float[]> rows) {
        int w = rows.get(0).length;
        float[] out = new float[rows.size() * w];
        for (int i = 0; i < rows.size(); i++) {
            System.arraycopy(rows.get(i), 0, out, i * w, w);
        }
        return out;
    }
}
