package io.sdxl4j.springai;

import io.sdxl4j.DType;
import io.sdxl4j.Device;
import io.sdxl4j.PipelineOptions;
import java.nio.file.Path;
import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * The {@code sdxl4j.*} properties of the Spring Boot auto-configuration: the model and how it loads, and the
 * defaults of every call (each may be overridden per call with {@link Sdxl4jImageOptions}).
 *
 * <pre>
 * # a diffusers folder or a single .safetensors file; without it there is no bean
 * sdxl4j.model=/models/sdxl-base-1.0
 * # cpu (default) or cuda; f32 (default), f16 or bf16
 * sdxl4j.device=cuda
 * sdxl4j.dtype=f16
 * sdxl4j.options.steps=30
 * sdxl4j.options.width=1024
 * sdxl4j.options.height=1024
 * sdxl4j.options.guidance-scale=5.0
 * sdxl4j.options.scheduler=DPM++ 2M Karras
 * sdxl4j.options.negative-prompt=blurry, low quality
 * # unset: a random seed per call
 * sdxl4j.options.seed=42
 * </pre>
 */
@ConfigurationProperties(prefix = "sdxl4j")
public class Sdxl4jProperties {
    /** The model: a diffusers folder or a single-file .safetensors checkpoint. The ImageModel bean needs it. */
    private Path model;
    /** Where the models run. */
    private Device device = Device.CPU;
    /** The compute type (the CPU backend computes in F32). */
    private DType dtype = DType.F32;
    /** Weight-file variant such as "fp16" (diffusion_pytorch_model.fp16.safetensors); unset: the plain files. */
    private String variant;
    /** diffusers' invisible watermark on decoded images. */
    private boolean watermark = true;
    /** Model-level offload: each component is on the device only while it runs. */
    private boolean cpuOffload;
    /** The defaults of every call. */
    private Sdxl4jImageOptions options = new Sdxl4jImageOptions();

    /** The load options these properties say. */
    public PipelineOptions pipelineOptions() {
        return new PipelineOptions(variant, device, dtype, watermark, cpuOffload);
    }

    public Path getModel() { return model; }
    public void setModel(Path model) { this.model = model; }
    public Device getDevice() { return device; }
    public void setDevice(Device device) { this.device = device; }
    public DType getDtype() { return dtype; }
    public void setDtype(DType dtype) { this.dtype = dtype; }
    public String getVariant() { return variant; }
    public void setVariant(String variant) { this.variant = variant; }
    public boolean isWatermark() { return watermark; }
    public void setWatermark(boolean watermark) { this.watermark = watermark; }
    public boolean isCpuOffload() { return cpuOffload; }
    public void setCpuOffload(boolean cpuOffload) { this.cpuOffload = cpuOffload; }
    public Sdxl4jImageOptions getOptions() { return options; }
    public void setOptions(Sdxl4jImageOptions options) { this.options = options; }
}
