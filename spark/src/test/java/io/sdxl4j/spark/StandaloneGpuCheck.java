package io.sdxl4j.spark;

import io.sdxl4j.Device;
import io.sdxl4j.Sdxl4j;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.resource.ResourceInformation;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * The driver of spark/scripts/standalone-gpu-check.sh: a real Spark standalone cluster (a master, a worker offering
 * two GPUs, two executors of one GPU each) generating on CUDA. Each row records the executor, the GPU address Spark
 * gave its task and the CUDA device the executor's process runs on; the check fails unless every row ran on the
 * device of its task's GPU, both GPUs were used, each executor loaded the pipeline once, and the same rows in one
 * partition (so some made on the other GPU) give the same PNG bytes.
 *
 * <p>Arguments: master URL, model folder (readable by the executors).
 */
public final class StandaloneGpuCheck {
    private StandaloneGpuCheck() {
    }

    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().master(args[0]).appName("sdxl4j standalone GPU check").getOrCreate();
        try {
            int failures = run(spark, args[1]);
            System.out.println(failures == 0 ? "STANDALONE GPU CHECK: PASS" : "STANDALONE GPU CHECK: FAIL (" + failures + ")");
            spark.stop();
            System.exit(failures == 0 ? 0 : 1);
        } catch (RuntimeException e) {
            e.printStackTrace();
            spark.stop();
            System.exit(2);
        }
    }

    private static int run(SparkSession spark, String model) {
        StructType schema = new StructType().add("id", DataTypes.StringType).add("prompt", DataTypes.StringType)
                .add("seed", DataTypes.LongType);
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            rows.add(RowFactory.create(String.format("r%02d", i), "a small red lighthouse, number " + i, 500L + i));
        }
        GenerateOptions options = GenerateOptions.builder(model).device(Device.CUDA).steps(2).size(64, 64).build();
        Progress progress = Progress.register(spark.sparkContext());
        Map<String, Row> first = tagged(Sdxl4jSpark.generate(spark.createDataFrame(rows, schema).repartition(6), options, progress));
        // All in one partition: one GPU makes every row, so the rows the other GPU made in the first run are compared
        // across GPUs.
        Map<String, Row> second = tagged(Sdxl4jSpark.generate(spark.createDataFrame(rows, schema).repartition(1), options, progress));
        int failures = 0;
        TreeSet<Integer> devices = new TreeSet<>();
        Map<String, Integer> loads = new TreeMap<>();
        for (Map<String, Row> run : List.of(first, second)) {
            for (Row r : run.values()) {
                String id = r.getString(0);
                String error = r.getString(2);
                String gpu = r.getString(4);
                int device = r.getInt(5);
                System.out.printf("%s executor %s gpu %s device %d loads %d%s%n", id, r.getString(3), gpu, device,
                        r.getInt(6), error == null ? "" : " error " + error);
                if (error != null || gpu == null || Integer.parseInt(gpu) != device) {
                    failures++;
                }
                devices.add(device);
                loads.merge(r.getString(3), r.getInt(6), Math::max);
            }
        }
        int sameBytesOnOtherGpu = 0;
        for (String id : first.keySet()) {
            boolean same = Arrays.equals((byte[]) first.get(id).get(1), (byte[]) second.get(id).get(1));
            if (!same) {
                System.out.println(id + ": different PNG bytes in the two runs");
                failures++;
            } else if (first.get(id).getInt(5) != second.get(id).getInt(5)) {
                sameBytesOnOtherGpu++;
            }
        }
        System.out.printf("devices used %s; pipeline loads per executor %s; rows made on both GPUs with equal bytes: %d; %s%n",
                devices, loads, sameBytesOnOtherGpu, progress);
        if (!devices.equals(new TreeSet<>(List.of(0, 1)))) {
            System.out.println("expected both GPUs (0 and 1) to be used");
            failures++;
        }
        if (loads.values().stream().anyMatch(n -> n != 1)) {
            System.out.println("expected one pipeline load per executor");
            failures++;
        }
        if (sameBytesOnOtherGpu == 0) {
            System.out.println("no row ran on a different GPU in the second run: nothing compared across GPUs");
            failures++;
        }
        return failures;
    }

    /** id, image, error, executor id, the task's GPU address, the process's CUDA device, the executor's loads. */
    private static Map<String, Row> tagged(Dataset<Row> generated) {
        StructType out = new StructType().add("id", DataTypes.StringType).add("image", DataTypes.BinaryType)
                .add("error", DataTypes.StringType).add("executor", DataTypes.StringType)
                .add("gpu", DataTypes.StringType).add("device", DataTypes.IntegerType).add("loads", DataTypes.IntegerType);
        MapPartitionsFunction<Row, Row> tag = (Iterator<Row> it) -> {
            ResourceInformation gpu = TaskContext.get().resourcesJMap().get("gpu");
            String address = gpu == null ? null : gpu.addresses()[0];
            String executor = SparkEnv.get().executorId();
            List<Row> result = new ArrayList<>();
            while (it.hasNext()) {
                // Generated in this same task (one stage), so on this executor and GPU. Rows here carry no schema:
                // id, prompt, seed, then image, seed_used, parameters, error.
                Row r = it.next();
                result.add(RowFactory.create(r.get(0), r.get(3), r.get(6),
                        executor, address, Sdxl4j.cudaDevice(), Sdxl4jSpark.pipelineLoads()));
            }
            return result.iterator();
        };
        Map<String, Row> byId = new TreeMap<>();
        for (Row r : generated.mapPartitions(tag, Encoders.row(out)).collectAsList()) {
            byId.put(r.getString(0), r);
        }
        return byId;
    }
}
