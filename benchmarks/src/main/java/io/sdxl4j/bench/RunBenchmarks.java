package io.sdxl4j.bench;

import io.sdxl4j.Sdxl4j;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Map;
import java.util.TreeMap;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Runs the benchmarks (UNetStepBenchmark on one case the machine can run, see {@link #unetStepOptions}) and
 * prints, for each shape, sdxl4j's time, LibTorch's time and their ratio (CpuOpsBenchmark's ops and
 * ModelBenchmark's transformer block; see {@link #pairKey}).
 * With arguments, behaves as JMH's own main (e.g. {@code -l}, or a regex of benchmarks to run).
 */
public final class RunBenchmarks {
    private RunBenchmarks() {}

    public static void main(String[] args) throws Exception {
        if (args.length > 0) {
            org.openjdk.jmh.Main.main(args);
            return;
        }
        Options opts = new OptionsBuilder()
                .include(JniCallBenchmark.class.getSimpleName())
                .include(CpuOpsBenchmark.class.getSimpleName())
                .include(ModelBenchmark.class.getSimpleName())
                .include(TextAndSchedulerBenchmark.class.getSimpleName())
                .build();
        Collection<RunResult> results = new ArrayList<>(new Runner(opts).run());
        results.addAll(new Runner(unetStepOptions()).run());
        Map<String, double[]> pairs = new TreeMap<>();
        for (RunResult r : results) {
            String key = pairKey(r);
            if (key == null) {
                continue;
            }
            double score = r.getPrimaryResult().getScore();
            double[] pair = pairs.computeIfAbsent(key, k -> new double[] {Double.NaN, Double.NaN});
            pair[isSdxl4j(r) ? 0 : 1] = score;
        }
        pairs.values().removeIf(p -> Double.isNaN(p[0]) || Double.isNaN(p[1])); // only complete pairs
        System.out.printf("%n%-26s %12s %12s %10s%n", "shape", "sdxl4j ms", "libtorch ms", "torch/ours");
        pairs.forEach((shape, p) -> System.out.printf("%-26s %12.3f %12.3f %10.2f%n", shape, p[0], p[1], p[1] / p[0]));
        System.out.println("(ratio > 1: sdxl4j is faster)");
    }

    /**
     * UNetStepBenchmark, one case the machine can run (its other parameter combinations fail by design): the
     * project's promise, f16 at 1024x1024, where a CUDA device is usable; else f32 at 512x512 on the CPU, with one
     * warm-up and three measured calls (each is about a minute on 2 cores).
     */
    static Options unetStepOptions() {
        OptionsBuilder b = new OptionsBuilder();
        b.include(UNetStepBenchmark.class.getSimpleName());
        if (Sdxl4j.cudaAvailable()) {
            b.param("device", "cuda").param("dtype", "f16").param("size", "1024");
        } else {
            b.param("device", "cpu").param("dtype", "f32").param("size", "512")
                    .warmupIterations(1).measurementIterations(3);
        }
        return b.build();
    }

    private static String method(RunResult r) {
        String b = r.getParams().getBenchmark();
        return b.substring(b.lastIndexOf('.') + 1);
    }

    private static boolean isSdxl4j(RunResult r) {
        String m = method(r);
        return m.endsWith("sdxl4j") || m.endsWith("Sdxl4j");
    }

    /**
     * The row a result belongs to, or null if it is not one side of a pair. A pair is a method named
     * {@code <stem>sdxl4j} / {@code <stem>libtorch} (e.g. CpuOpsBenchmark's sdxl4j/libtorch, ModelBenchmark's
     * transformerSdxl4j/transformerLibtorch); the row is the stem, then the parameter values, joined by "_"
     * (for CpuOpsBenchmark just its shape, as before).
     */
    private static String pairKey(RunResult r) {
        String m = method(r);
        String stem;
        if (isSdxl4j(r)) {
            stem = m.substring(0, m.length() - "sdxl4j".length());
        } else if (m.endsWith("libtorch") || m.endsWith("Libtorch")) {
            stem = m.substring(0, m.length() - "libtorch".length());
        } else {
            return null;
        }
        StringBuilder key = new StringBuilder(stem);
        for (String p : r.getParams().getParamsKeys()) {
            key.append(key.length() == 0 ? "" : "_").append(r.getParams().getParam(p));
        }
        return key.length() == 0 ? null : key.toString();
    }
}
