package io.sdxl4j.server;

import io.sdxl4j.DType;
import io.sdxl4j.PipelineOptions;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.cli.ModelArguments;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code sdxl4j serve}: loads a model and serves the OpenAI Images and AUTOMATIC1111 APIs over HTTP. */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false, version = "sdxl4j-server 0.1.0",
        description = {"Serve Stable Diffusion XL over HTTP: the OpenAI Images API (POST /v1/images/generations) and the "
            + "AUTOMATIC1111 API (/sdapi/v1/txt2img, img2img, progress, ...), /health and Prometheus /metrics.",
            "With no --model and no SDXL in the Hugging Face cache, serves the small bundled test model (noise images)."})
public final class ServeCommand implements Callable<Integer> {
    static final String DEFAULT_REPO = ModelArguments.DEFAULT_REPO;

    @Option(names = {"-m", "--model"}, description = "base model: a diffusers folder, a single-file SDXL checkpoint or a Hugging "
            + "Face repo id in the local cache (default: $SDXL4J_MODEL, then " + DEFAULT_REPO + " in the cache, then the "
            + "bundled test model)")
    String model;
    @Option(names = "--lora-dir", description = "folder where A1111 prompt tags <lora:NAME:WEIGHT> find NAME.safetensors "
            + "(searched recursively; applied to that request only)")
    Path loraDir;

    @Option(names = "--refiner", description = "refiner model (folder, file or repo id): used as the ensemble of experts when a "
            + "request asks for it (OpenAI: \"refiner\": true, the default when loaded; A1111: refiner_checkpoint)")
    String refiner;
    @Option(names = "--config", description = "for single-file checkpoints: a diffusers folder with the configs to use")
    Path config;
    @Option(names = "--host", defaultValue = "127.0.0.1", description = "address to bind (default: ${DEFAULT-VALUE}; "
            + "0.0.0.0 serves every network, set --api-key then)")
    String host;
    @Option(names = {"-p", "--port"}, defaultValue = "7860", description = "port (default: ${DEFAULT-VALUE}; 0: a free one)")
    int port;
    @Option(names = "--api-key", description = "require Authorization: Bearer KEY on every route but /health "
            + "(default: $SDXL4J_API_KEY; none when unset)")
    String apiKey;
    @Option(names = "--queue", defaultValue = "16", description = "requests that may wait behind the running one; more get "
            + "429 (OpenAI) / 503 (A1111) (default: ${DEFAULT-VALUE})")
    int queue;
    @Option(names = "--timeout-s", defaultValue = "600", description = "longest a request may take, queue wait included; "
            + "then it is cancelled with 504 (default: ${DEFAULT-VALUE})")
    long timeoutSeconds;
    @Option(names = "--max-body-mb", defaultValue = "32", description = "largest request body in MiB (default: ${DEFAULT-VALUE})")
    long maxBodyMb;
    @Option(names = "--max-size", defaultValue = "2048", description = "largest width or height to generate (default: ${DEFAULT-VALUE})")
    int maxSide;
    @Option(names = "--max-images", defaultValue = "16", description = "most images per request (default: ${DEFAULT-VALUE})")
    int maxImages;
    @Option(names = "--max-steps", defaultValue = "150", description = "most denoising steps per request (default: ${DEFAULT-VALUE})")
    int maxSteps;
    @Option(names = "--device", defaultValue = "cpu", description = "cpu | cuda | cuda:N (default: ${DEFAULT-VALUE})")
    String device;
    @Option(names = "--dtype", defaultValue = "fp32", description = "fp32 | fp16 | bf16 (default: ${DEFAULT-VALUE})")
    String dtype;
    @Option(names = "--variant", description = "weight file variant, e.g. fp16")
    String variant;
    @Option(names = "--watermark", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "apply diffusers' invisible watermark (default: on; --no-watermark turns it off)")
    boolean watermark;
    @Option(names = "--threads", description = "CPU threads (default: all cores)")
    Integer threads;

    public static void main(String[] args) {
        CommandLine cli = new CommandLine(new ServeCommand());
        cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
            // A message, not a stack trace (a port in use, a missing model, a bad option); SDXL4J_DEBUG=1 shows it.
            cmd.getErr().println("error: " + (e.getMessage() != null ? e.getMessage() : e.toString()));
            if (System.getenv("SDXL4J_DEBUG") != null) {
                e.printStackTrace(cmd.getErr());
            }
            return 2;
        });
        int code = cli.execute(args);
        if (code != 0) {
            System.exit(code);
        }
    }

    @Override
    public Integer call() throws Exception {
        Sdxl4j.load();
        if (threads != null) {
            Sdxl4j.setNumThreads(threads);
        }
        String key = apiKey != null ? apiKey : System.getenv("SDXL4J_API_KEY");
        if (!isLoopback(host) && (key == null || key.isEmpty())) {
            System.err.println("warning: serving on " + host + " without an API key: anyone who reaches this port can "
                    + "generate. Set --api-key or SDXL4J_API_KEY.");
        }
        ServerConfig cfg = new ServerConfig(host, port, key, queue, Duration.ofSeconds(timeoutSeconds), maxBodyMb << 20,
                maxSide, (long) maxSide * maxSide, maxImages, maxSteps);
        PipelineOptions options = new PipelineOptions(variant, ModelArguments.device(device), dtype(dtype), watermark, false);
        Path modelPath = resolveModel();
        Path refinerPath = refiner == null ? null : resolve(refiner);
        System.err.println("loading " + modelPath + (refinerPath == null ? "" : " with refiner " + refinerPath) + " ...");
        Server server = Server.load(modelPath, refinerPath, config, options, cfg, loraDir).start();
        Runtime.getRuntime().addShutdownHook(new Thread(server::close, "sdxl4j-server-shutdown"));
        System.err.println("serving on http://" + host + ":" + server.port() + "/  (Ctrl-C stops)");
        server.awaitStop();
        return 0;
    }

    private static boolean isLoopback(String host) {
        return host.equals("127.0.0.1") || host.equals("localhost") || host.equals("::1") || host.startsWith("127.");
    }

    /** --model, else $SDXL4J_MODEL, else SDXL base in the Hugging Face cache, else the bundled test model. */
    private Path resolveModel() {
        Optional<Path> found = ModelArguments.locate(model);
        if (found.isPresent()) {
            return found.get();
        }
        Path bundled = ModelArguments.bundledModel();
        System.err.println("No SDXL model found: serving the small bundled TEST model (random weights: noise images).");
        System.err.println("For real images: --model /path/to/stable-diffusion-xl-base-1.0");
        return bundled;
    }

    private static Path resolve(String pathOrRepo) {
        return ModelArguments.resolve(pathOrRepo);
    }


    private static DType dtype(String s) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "fp32", "float32", "f32" -> DType.F32;
            case "fp16", "float16", "f16", "half" -> DType.F16;
            case "bf16", "bfloat16" -> DType.BF16;
            default -> throw new IllegalArgumentException("--dtype must be fp32, fp16 or bf16, got " + s);
        };
    }
}
