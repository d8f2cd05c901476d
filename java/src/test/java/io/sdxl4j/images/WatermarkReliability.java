package io.sdxl4j.images;

import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Measures how reliably {@link InvisibleWatermark#decode} reads SDXL's 48 watermark bits back (the figures quoted
 * in its documentation): per size, over many seeds, the bits recovered from the float image {@link
 * InvisibleWatermark#apply} returns and after the 8-bit round trip a saved PNG makes (diffusers' postprocessing:
 * round((x + 1) / 2 * 255), read back as v / 255 * 2 - 1). Two kinds of image: uniform noise in [-1, 1] (the
 * reference cases' torch.rand * 2 - 1, the hardest case) and a smooth gradient with mild noise (closer to a
 * photograph). Not a unit test: run it by hand, e.g.
 *
 * <pre>java -cp java/target/classes:java/target/test-classes:... io.sdxl4j.images.WatermarkReliability [seeds]</pre>
 */
public final class WatermarkReliability {
    private WatermarkReliability() {}

    public static void main(String[] args) {
        int seeds = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        int[][] sizes = {{256, 256}, {288, 256}, {512, 512}, {768, 768}, {1024, 1024}};
        InvisibleWatermark wm = InvisibleWatermark.sdxl();
        int[] bits = wm.bits();
        System.out.printf(Locale.ROOT, "%-10s %-8s %-6s %14s %9s %14s %9s%n", "size", "image", "seeds", "float: mean/min",
                "all 48", "8-bit: mean/min", "all 48");
        for (int[] hw : sizes) {
            for (String kind : new String[] {"noise", "smooth"}) {
                int h = hw[0], w = hw[1];
                double sumF = 0, sumQ = 0;
                int minF = bits.length, minQ = bits.length, perfectF = 0, perfectQ = 0;
                for (int s = 0; s < seeds; s++) {
                    float[] img = image(kind, h, w, 1000L * s + h + w);
                    float[] marked = wm.apply(img, 1, h, w);
                    int f = recovered(bits, InvisibleWatermark.decode(marked, 1, h, w, bits.length)[0]);
                    int q = recovered(bits, InvisibleWatermark.decode(eightBit(marked), 1, h, w, bits.length)[0]);
                    sumF += f;
                    sumQ += q;
                    minF = Math.min(minF, f);
                    minQ = Math.min(minQ, q);
                    perfectF += f == bits.length ? 1 : 0;
                    perfectQ += q == bits.length ? 1 : 0;
                }
                System.out.printf(Locale.ROOT, "%-10s %-8s %-6d %8.2f / %-3d %8.0f%% %8.2f / %-3d %8.0f%%%n", h + "x" + w, kind,
                        seeds, sumF / seeds, minF, 100.0 * perfectF / seeds, sumQ / seeds, minQ, 100.0 * perfectQ / seeds);
            }
        }
    }

    private static int recovered(int[] want, int[] got) {
        int n = 0;
        for (int i = 0; i < want.length; i++) {
            n += want[i] == got[i] ? 1 : 0;
        }
        return n;
    }

    // [1, 3, h, w] in [-1, 1].
    private static float[] image(String kind, int h, int w, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[3 * h * w];
        double fx = 1 + r.nextDouble() * 3, fy = 1 + r.nextDouble() * 3;
        for (int c = 0; c < 3; c++) {
            double phase = r.nextDouble() * 6.28;
            for (int y = 0; y < h; y++) {
                for (int i = 0; i < w; i++) {
                    double v = kind.equals("noise") ? r.nextDouble() * 2 - 1
                            : 0.6 * Math.sin(fx * i / w * 3.14 + phase) * Math.cos(fy * y / h * 3.14) + 0.05 * (r.nextDouble() * 2 - 1);
                    x[(c * h + y) * w + i] = (float) v;
                }
            }
        }
        return x;
    }

    // What a saved 8-bit PNG gives back: diffusers' numpy_to_pil rounding, then [0, 255] -> [-1, 1].
    private static float[] eightBit(float[] x) {
        float[] q = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            double v = Math.max(0, Math.min(1, x[i] / 2 + 0.5));
            q[i] = (float) (Math.rint(v * 255) / 255.0 * 2 - 1);  // numpy round: half to even
        }
        return q;
    }
}
