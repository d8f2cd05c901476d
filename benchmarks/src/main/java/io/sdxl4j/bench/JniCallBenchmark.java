package io.sdxl4j.bench;

import io.sdxl4j.Sdxl4j;
import io.sdxl4j.Tensor;
import io.sdxl4j.nat.global.sdxl;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/** The fixed cost of crossing into the native core: what every per-step call pays on top of its work. */
@BenchmarkMode(Mode.AverageTime) // a per-call latency, not a throughput
@OutputTimeUnit(TimeUnit.NANOSECONDS) // calls take tens of nanoseconds
@Warmup(iterations = 3, time = 1) // enough for C2 to compile the JNI stubs
@Measurement(iterations = 5, time = 1) // short calls: many samples per second
@Fork(1) // one fork: the cost of a JNI transition barely varies between JVMs
@State(Scope.Thread) // each thread its own tensor, no sharing effects
public class JniCallBenchmark {
    private Tensor tensor;
    private org.bytedeco.pytorch.Tensor torchTensor;

    @Setup(Level.Trial) // built once: creating tensors is not what is measured
    public void setup() {
        Sdxl4j.load();
        tensor = Tensor.of(new float[16], 4, 4);
        TorchSupport.load();
        torchTensor = org.bytedeco.pytorch.global.torch.zeros(4, 4);
    }

    @TearDown(Level.Trial) // released after the run so native memory is returned
    public void tearDown() {
        tensor.close();
        torchTensor.close();
    }

    /** A bare JavaCPP call of an empty C++ function. */
    @Benchmark
    public void noopCall() {
        sdxl.noop();
    }

    /** A call through the public API: handle check, error translation wrapper, native call. */
    @Benchmark
    public long numelThroughApi() {
        return tensor.numel();
    }

    /** The same question asked of LibTorch through its JavaCPP bindings. */
    @Benchmark
    public long numelLibTorch() {
        return torchTensor.numel();
    }
}
