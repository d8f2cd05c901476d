package io.sdxl4j.spark;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.GenerationRequest;
import io.sdxl4j.GenerationResult;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.SdxlException;
import io.sdxl4j.StableDiffusionXL;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Locale;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Batch text to image over a Spark {@link Dataset} of prompts.
 *
 * <p>Input columns: {@code prompt} (required); optional {@code negative_prompt}, {@code seed}, {@code width},
 * {@code height}, {@code steps}, {@code guidance}, {@code scheduler}, {@code id}; a column left out or null takes the
 * {@link GenerateOptions} default. The result has every input column plus {@code image} (PNG bytes with the A1111
 * {@code parameters} text chunk), {@code seed_used}, {@code parameters} (the A1111 infotext) and {@code error} (null
 * when the row succeeded; then image is null).
 *
 * <p>Each executor JVM loads the pipeline once, on its first row, and every task on it reuses it (tasks of one
 * executor take turns on it: one pipeline per GPU). A row's image depends only on its own values: a row without a
 * seed gets {@link #deriveSeed} of the job seed and its id (or, without an id column, its prompt), never anything
 * about partitioning, so retries, speculative tasks and a repartitioned job give the same bytes.
 */
public final class Sdxl4jSpark {
    /** Columns the result adds. seed_used, not seed: the input may carry a seed column of its own. */
    public static final String IMAGE = "image";
    public static final String SEED_USED = "seed_used";
    public static final String PARAMETERS = "parameters";
    public static final String ERROR = "error";

    private Sdxl4jSpark() {
    }

    /**
     * The input rows with image, seed_used, parameters and error added; lazy like any Spark transformation (nothing
     * runs before an action). Progress goes to new named accumulators (see {@link Progress}), shown in the Spark UI.
     *
     * @throws SdxlException INVALID_ARGUMENT when the input has no string prompt column or already has an output column
     */
    public static Dataset<Row> generate(Dataset<Row> prompts, GenerateOptions options) {
        return generate(prompts, options, Progress.register(prompts.sparkSession().sparkContext()));
    }

    /** {@link #generate(Dataset, GenerateOptions)} counting into {@code progress}, readable on the driver after an action. */
    public static Dataset<Row> generate(Dataset<Row> prompts, GenerateOptions options, Progress progress) {
        StructType in = prompts.schema();
        if (!Arrays.asList(in.fieldNames()).contains("prompt") || !in.apply("prompt").dataType().equals(DataTypes.StringType)) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the input needs a string column \"prompt\"; it has " + in.simpleString());
        }
        for (String c : new String[] {IMAGE, SEED_USED, PARAMETERS, ERROR}) {
            if (Arrays.asList(in.fieldNames()).contains(c)) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the input already has a column \"" + c + "\"");
            }
        }
        StructType out = in.add(IMAGE, DataTypes.BinaryType, true).add(SEED_USED, DataTypes.LongType, true)
                .add(PARAMETERS, DataTypes.StringType, true).add(ERROR, DataTypes.StringType, true);
        RowGenerator generator = new RowGenerator(options, in, progress);
        return prompts.mapPartitions(generator, Encoders.row(out));
    }

    /** The format of {@link #writeImages}'s manifest at {@code <dir>/manifest}. */
    public enum ManifestFormat {
        /** Parquet files (Spark's default table format). */
        PARQUET,
        /** JSON Lines files, one object per row (Spark's {@code write().json}). */
        JSON
    }

    /** {@link #writeImages(Dataset, GenerateOptions, String, ManifestFormat, Progress)} with a Parquet manifest. */
    public static Dataset<Row> writeImages(Dataset<Row> prompts, GenerateOptions options, String directory) {
        return writeImages(prompts, options, directory, ManifestFormat.PARQUET,
                Progress.register(prompts.sparkSession().sparkContext()));
    }

    /**
     * Generates into a Hadoop-compatible directory (file:, hdfs:, s3a:, ...): {@code <dir>/images/<id>.png} for each
     * row, then a manifest at {@code <dir>/manifest} (id, path, seed_used, parameters, error, status) in
     * {@code format}, and returns it. The input needs an id column of file-name-safe text ([A-Za-z0-9._-]). A PNG that
     * already exists is not generated again (status "exists": a re-run after a failure only does what is missing);
     * new files are written under a temporary name and renamed, so a killed or speculative task never leaves half a
     * PNG. {@code progress} counts the images made (not the skipped ones).
     */
    public static Dataset<Row> writeImages(Dataset<Row> prompts, GenerateOptions options, String directory,
                                           ManifestFormat format, Progress progress) {
        if (!Arrays.asList(prompts.schema().fieldNames()).contains("id")) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "writeImages needs an id column: it names the files");
        }
        for (String c : new String[] {"path", "status"}) {
            if (Arrays.asList(prompts.schema().fieldNames()).contains(c)) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "the input already has a column \"" + c + "\"");
            }
        }
        Dataset<Row> generated = generate(prompts, options, directory, progress);
        Dataset<Row> manifest = generated.select("id", "path", SEED_USED, PARAMETERS, ERROR, "status");
        String at = directory + "/manifest";
        if (format == ManifestFormat.JSON) {
            manifest.write().mode("overwrite").json(at);
            return prompts.sparkSession().read().schema(manifest.schema()).json(at);
        }
        manifest.write().mode("overwrite").parquet(at);
        return prompts.sparkSession().read().parquet(at);
    }

    private static Dataset<Row> generate(Dataset<Row> prompts, GenerateOptions options, String directory, Progress progress) {
        StructType in = prompts.schema();
        StructType out = in.add(IMAGE, DataTypes.BinaryType, true).add(SEED_USED, DataTypes.LongType, true)
                .add(PARAMETERS, DataTypes.StringType, true).add(ERROR, DataTypes.StringType, true)
                .add("path", DataTypes.StringType, true).add("status", DataTypes.StringType, true);
        ImageWriter writer = new ImageWriter(new RowGenerator(options, in, progress), in.size(), directory);
        return prompts.mapPartitions(writer, Encoders.row(out));
    }

    /** Writes each generated row's PNG; the image bytes leave the row (the manifest holds the path). */
    static final class ImageWriter implements MapPartitionsFunction<Row, Row> {
        private static final long serialVersionUID = 1L;
        private static final java.util.regex.Pattern SAFE_ID = java.util.regex.Pattern.compile("[A-Za-z0-9._-]{1,200}");
        private final RowGenerator generator;
        private final int inputColumns;
        private final String directory;

        ImageWriter(RowGenerator generator, int inputColumns, String directory) {
            this.generator = generator;
            this.inputColumns = inputColumns;
            this.directory = directory;
        }

        @Override
        public Iterator<Row> call(Iterator<Row> rows) throws Exception {
            org.apache.hadoop.fs.Path images = new org.apache.hadoop.fs.Path(directory, "images");
            // The executor's own Hadoop configuration: cluster defaults plus spark.hadoop.* settings.
            org.apache.hadoop.conf.Configuration conf = org.apache.spark.deploy.SparkHadoopUtil.get().conf();
            org.apache.hadoop.fs.FileSystem fs = images.getFileSystem(conf);
            fs.mkdirs(images);
            return new Iterator<>() {
                @Override
                public boolean hasNext() {
                    return rows.hasNext();
                }

                @Override
                public Row next() {
                    Row row = rows.next();
                    Object[] v = new Object[inputColumns + 6];
                    for (int i = 0; i < inputColumns; i++) {
                        v[i] = row.get(i);
                    }
                    Object id = row.getAs("id");
                    if (id == null || !SAFE_ID.matcher(id.toString()).matches() || id.toString().startsWith(".")) {
                        if (generator.options.failOnError()) {
                            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "id \"" + id + "\" is not a safe file name");
                        }
                        v[inputColumns + 3] = ErrorCode.INVALID_ARGUMENT + ": id \"" + id + "\" is not a safe file name ([A-Za-z0-9._-])";
                        v[inputColumns + 5] = "error";
                        return RowFactory.create(v);
                    }
                    org.apache.hadoop.fs.Path file = new org.apache.hadoop.fs.Path(images, id + ".png");
                    v[inputColumns + 4] = file.toString();
                    try {
                        if (fs.exists(file)) {
                            v[inputColumns + 5] = "exists";
                            return RowFactory.create(v);
                        }
                        Row generated = generator.generateRow(row);
                        for (int i = inputColumns + 1; i < inputColumns + 4; i++) {
                            v[i] = generated.get(i);
                        }
                        byte[] png = (byte[]) generated.get(inputColumns);
                        if (png == null) {
                            v[inputColumns + 5] = "error";
                            return RowFactory.create(v);
                        }
                        org.apache.hadoop.fs.Path tmp = new org.apache.hadoop.fs.Path(images,
                                "." + id + "." + java.util.UUID.randomUUID() + ".tmp");
                        try (java.io.OutputStream os = fs.create(tmp, true)) {
                            os.write(png);
                        }
                        // Another attempt of this task may have won the race: its bytes are the same, keep them.
                        if (!fs.rename(tmp, file)) {
                            fs.delete(tmp, false);
                        }
                        v[inputColumns + 5] = "written";
                        return RowFactory.create(v);
                    } catch (java.io.IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }
            };
        }
    }

    /**
     * Registers a SQL function {@code name(prompt, seed, id)} returning a struct (image, seed_used, parameters, error)
     * with the options' size, steps, guidance, scheduler and negative prompt, for Spark SQL and PySpark
     * ({@code spark.sql("SELECT id, sdxl4j(prompt, seed, id) AS g FROM prompts")}); seed and id may be null (the
     * seed then comes from the job seed and the id, or the prompt). Registered as non-deterministic only so that
     * the optimiser never calls it twice for one row (selecting g.image and g.seed_used); its results are
     * deterministic.
     */
    public static void registerUdf(org.apache.spark.sql.SparkSession spark, String name, GenerateOptions options) {
        StructType in = new StructType().add("prompt", DataTypes.StringType).add("seed", DataTypes.LongType)
                .add("id", DataTypes.StringType);
        StructType result = new StructType().add(IMAGE, DataTypes.BinaryType).add(SEED_USED, DataTypes.LongType)
                .add(PARAMETERS, DataTypes.StringType).add(ERROR, DataTypes.StringType);
        RowGenerator generator = new RowGenerator(options, in, null);
        org.apache.spark.sql.api.java.UDF3<Object, Object, Object, Row> f = (prompt, seed, id) -> {
            Row r = generator.generateRow(RowFactory.create(prompt, seed, id));
            return RowFactory.create(r.get(3), r.get(4), r.get(5), r.get(6));
        };
        spark.udf().register(name, org.apache.spark.sql.functions.udf(f, result).asNondeterministic());
    }

    /** How many times this JVM has loaded a pipeline (in local mode: the driver's, which is the executor). */
    public static int pipelineLoads() {
        return PipelineHolder.loads();
    }

    /**
     * The seed of a row without one: SplitMix64's finaliser over the job seed and a 64-bit FNV-1a hash of the id's
     * text, kept to 32 bits (A1111's seed range, so the infotext can be replayed there).
     */
    public static long deriveSeed(long jobSeed, String id) {
        long h = 0xcbf29ce484222325L;
        for (byte b : id.getBytes(StandardCharsets.UTF_8)) {
            h = (h ^ (b & 0xff)) * 0x100000001b3L;
        }
        long z = jobSeed * 0x9e3779b97f4a7c15L + h;
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        z = z ^ (z >>> 31);
        return z & 0xffffffffL;
    }

    /** The per-partition function Spark ships to executors: options and schema only, the pipeline stays there. */
    static final class RowGenerator implements MapPartitionsFunction<Row, Row> {
        private static final long serialVersionUID = 1L;
        /** Failures the test hook has thrown in this JVM. */
        static final java.util.concurrent.atomic.AtomicInteger INJECTED_FAILURES = new java.util.concurrent.atomic.AtomicInteger();
        final GenerateOptions options;
        private final StructType in;
        private final Progress progress;  // null: not counted (the SQL function)

        RowGenerator(GenerateOptions options, StructType in, Progress progress) {
            this.options = options;
            this.in = in;
            this.progress = progress;
        }

        @Override
        public Iterator<Row> call(Iterator<Row> rows) {
            TaskContext task = TaskContext.get();
            boolean injectFailure = task != null && task.attemptNumber() == 0
                    && task.partitionId() == options.failFirstAttemptOfPartition;
            return new Iterator<>() {
                private int done;

                @Override
                public boolean hasNext() {
                    return rows.hasNext();
                }

                @Override
                public Row next() {
                    if (injectFailure && done == 1) {
                        INJECTED_FAILURES.incrementAndGet();
                        throw new IllegalStateException("injected failure of the first attempt (test hook)");
                    }
                    Row r = generateRow(rows.next());
                    done++;
                    return r;
                }
            };
        }

        Row generateRow(Row row) {
            Object[] values = new Object[in.size() + 4];
            for (int i = 0; i < in.size(); i++) {
                values[i] = row.get(i);
            }
            int at = in.size();
            try {
                GenerationRequest request = request(row);
                values[at + 1] = request.seed();
                StableDiffusionXL pipeline = PipelineHolder.get(options);
                GenerationResult result;
                long nanos;
                synchronized (pipeline) {  // one pipeline per executor: its tasks take turns on it (and on its GPU)
                    long start = System.nanoTime();
                    result = pipeline.generate(request);
                    nanos = System.nanoTime() - start;
                }
                values[at] = result.pngBytes(0);
                values[at + 2] = result.parameters(0).toInfotext();
                if (progress != null) {
                    progress.add(request.steps(), nanos);
                }
            } catch (SdxlException | IllegalArgumentException | ClassCastException | ArithmeticException e) {
                if (options.failOnError()) {
                    throw e instanceof SdxlException s ? s : new SdxlException(ErrorCode.INVALID_ARGUMENT, e.getMessage(), e);
                }
                values[at + 3] = e instanceof SdxlException s ? s.getMessage()  // "CODE: message" already
                        : ErrorCode.INVALID_ARGUMENT + ": " + e.getMessage();
            }
            return RowFactory.create(values);
        }

        /** The Java API request for a row; the row's own values first, the options' defaults for the rest. */
        GenerationRequest request(Row row) {
            String prompt = (String) value(row, "prompt");
            if (prompt == null || prompt.isBlank()) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "empty prompt");
            }
            String negative = value(row, "negative_prompt") != null ? value(row, "negative_prompt").toString() : options.negativePrompt();
            int width = intValue(row, "width", options.width());
            int height = intValue(row, "height", options.height());
            checkSize("width", width);
            checkSize("height", height);
            int steps = intValue(row, "steps", options.steps());
            if (steps < 1 || steps > 1000) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "steps must be 1 to 1000, not " + steps);
            }
            Object g = value(row, "guidance");
            double guidance = g == null ? options.guidanceScale() : number(g).doubleValue();
            if (!Double.isFinite(guidance) || guidance < 0) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "guidance must be a finite number >= 0, not " + guidance);
            }
            Object s = value(row, "scheduler");
            SchedulerKind scheduler = SchedulerKind.fromName(s == null ? options.scheduler() : s.toString());
            Object seedValue = value(row, "seed");
            long seed;
            if (seedValue != null) {
                seed = number(seedValue).longValue();
            } else {
                Object id = value(row, "id");
                seed = deriveSeed(options.jobSeed(), id != null ? id.toString() : prompt);
            }
            return GenerationRequest.builder().prompt(prompt).negativePrompt(negative).size(height, width).steps(steps)
                    .guidanceScale(guidance).scheduler(scheduler).seed(seed).build();
        }

        private static void checkSize(String name, int v) {
            if (v < 8 || v > 4096 || v % 8 != 0) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, name + " must be a multiple of 8 from 8 to 4096, not " + v);
            }
        }

        private Object value(Row row, String column) {
            int i = Arrays.asList(in.fieldNames()).indexOf(column);
            return i < 0 || row.isNullAt(i) ? null : row.get(i);
        }

        private int intValue(Row row, String column, int fallback) {
            Object v = value(row, column);
            return v == null ? fallback : Math.toIntExact(number(v).longValue());
        }

        /** Numbers as any numeric column type, or as text ("42") from CSV input read without a schema. */
        private static Number number(Object v) {
            if (v instanceof Number n) {
                return n;
            }
            String t = v.toString().trim().toLowerCase(Locale.ROOT);
            return t.contains(".") || t.contains("e") ? (Number) Double.parseDouble(t) : (Number) Long.parseLong(t);
        }
    }
}
