package io.sdxl4j.ops;

import java.util.SplittableRandom;

/**
 * Fresh random inputs every run, reproducible on demand: one run seed (System.nanoTime(), or
 * {@code -Dsdxl4j.seed=N}), from which each case derives its own stream by name, so a failing case replays
 * alone with the seed its message prints, whatever order the tests run in.
 */
final class Seeds {
    private Seeds() {}

    static final long RUN_SEED = Long.getLong("sdxl4j.seed", System.nanoTime());

    static {
        System.out.println("[ops-parity] seed=" + RUN_SEED + " (replay with -Dsdxl4j.seed=" + RUN_SEED + ")");
    }

    /** The random stream of one case. */
    static SplittableRandom rng(String caseName) {
        long h = RUN_SEED;
        for (int i = 0; i < caseName.length(); i++) {
            h = h * 0x100000001B3L ^ caseName.charAt(i);
        }
        return new SplittableRandom(h * 0x9E3779B97F4A7C15L);
    }

    /** What a failure message must carry to be replayed. */
    static String replay() {
        return "seed=" + RUN_SEED + " (replay: -Dsdxl4j.seed=" + RUN_SEED + ")";
    }
}
