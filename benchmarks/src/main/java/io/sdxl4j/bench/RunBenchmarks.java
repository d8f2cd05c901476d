package io.sdxl4j.bench;

import java.util.Collection;
import java.util.Map;
import java.util.TreeMap;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Runs the benchmarks and prints, for each shape, sdxl4j's time, LibTorch's time and their ratio.
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
                .build();
        Collection<RunResult> results = new Runner(opts).run();
        Map<String, double[]> pairs = new TreeMap<>();
        for (RunResult r : results) {
            String label = r.getParams().getBenchmark();
            String shape = r.getParams().getParam("shape");
            if (shape == null) {
                continue;
            }
            double score = r.getPrimaryResult().getScore();
            double[] pair = pairs.computeIfAbsent(shape, k -> new double[2]);
            pair[label.endsWith(".sdxl4j") ? 0 : 1] = score;
        }
        System.out.printf("%n%-26s %12s %12s %10s%n", "shape", "sdxl4j ms", "libtorch ms", "torch/ours");
        pairs.forEach((shape, p) -> System.out.printf("%-26s %12.3f %12.3f %10.2f%n", shape, p[0], p[1], p[1] / p[0]));
        System.out.println("(ratio > 1: sdxl4j is faster)");
    }
}
