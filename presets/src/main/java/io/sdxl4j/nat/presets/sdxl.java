package io.sdxl4j.nat.presets;

import org.bytedeco.javacpp.annotation.Platform;
import org.bytedeco.javacpp.annotation.Properties;
import org.bytedeco.javacpp.tools.Info;
import org.bytedeco.javacpp.tools.InfoMap;
import org.bytedeco.javacpp.tools.InfoMapper;

/**
 * JavaCPP preset for libsdxl: parses the one public header, {@code native/include/sdxl/sdxl.h}.
 * libsdxl.so links against libopenblas.so.0; {@code preload} + {@code preloadresource} make {@code Loader}
 * load that library (and its libgfortran) from the org.bytedeco:openblas platform jar first, without copying
 * it into this jar and without making the JNI glue itself depend on OpenBLAS.
 */
@Properties(
        target = "io.sdxl4j.nat",
        global = "io.sdxl4j.nat.global.sdxl",
        value = @Platform(
                value = "linux-x86_64",
                compiler = "cpp17",
                include = {"sdxl/configs.h", "sdxl/sdxl.h"},
                link = "sdxl",
                preload = {"gfortran@.5", "openblas@.0"},
                preloadresource = "/org/bytedeco/openblas/"))
public class sdxl implements InfoMapper {
    @Override
    public void map(InfoMap infoMap) {
        // Java-side names that do not clash with the user-facing io.sdxl4j classes.
        infoMap.put(new Info("std::vector<int64_t>").pointerTypes("LongVector").define())
                .put(new Info("std::vector<std::string>").pointerTypes("StringVector").define())
                .put(new Info("std::vector<double>").pointerTypes("DoubleVector").define())
                .put(new Info("sdxl::api::Tensor").pointerTypes("NativeTensor"))
                .put(new Info("sdxl::api::TensorList").pointerTypes("NativeTensorList"))
                .put(new Info("sdxl::api::SafetensorsFile").pointerTypes("NativeSafetensorsFile"))
                .put(new Info("sdxl::api::SingleFileCheckpoint").pointerTypes("NativeSingleFileCheckpoint"))
                .put(new Info("sdxl::api::SingleFileCheckpoint::operator =").skip())
                .put(new Info("sdxl::api::LoraFile").pointerTypes("NativeLoraFile"))
                .put(new Info("sdxl::api::LoraList").pointerTypes("NativeLoraList"))
                .put(new Info("sdxl::api::LoraFile::operator =", "sdxl::api::LoraList::operator =").skip())
                .put(new Info("sdxl::api::Generator").pointerTypes("NativeGenerator"))
                .put(new Info("sdxl::api::Generator::operator =").skip())
                .put(new Info("sdxl::api::TensorAccess").skip())
                .put(new Info("sdxl::api::ClipTextModel").pointerTypes("NativeClipTextModel"))
                .put(new Info("sdxl::api::UNetModel").pointerTypes("NativeUNetModel"))
                .put(new Info("sdxl::api::VaeModel").pointerTypes("NativeVaeModel"))
                .put(new Info("sdxl::api::Transformer2DBlock").pointerTypes("NativeTransformer2DBlock"))
                .put(new Info("sdxl::api::ResnetBlock").pointerTypes("NativeResnetBlock"))
                .put(new Info("sdxl::api::ClipTextConfig").pointerTypes("NativeClipTextConfig"))
                .put(new Info("sdxl::api::Scheduler").pointerTypes("NativeScheduler"))
                .put(new Info("sdxl::api::SchedulerConfig").pointerTypes("NativeSchedulerConfig"))
                .put(new Info("sdxl::api::Scheduler::operator =").skip())
                .put(new Info("sdxl::api::Denoiser").pointerTypes("NativeDenoiser"))
                .put(new Info("sdxl::api::Denoiser::operator =").skip())
                .put(new Info("sdxl::api::HandleAccess").skip())
                .put(new Info("sdxl::api::UNetConfig").pointerTypes("NativeUNetConfig"))
                .put(new Info("sdxl::api::VaeConfig").pointerTypes("NativeVaeConfig"))
                // Assignment operators would be exposed as put(); copies are made with the copy constructor.
                .put(new Info("sdxl::api::Tensor::operator =", "sdxl::api::TensorList::operator =",
                        "sdxl::api::SafetensorsFile::operator =", "sdxl::api::ClipTextModel::operator =",
                        "sdxl::api::UNetModel::operator =", "sdxl::api::VaeModel::operator =",
                        "sdxl::api::Transformer2DBlock::operator =", "sdxl::api::ResnetBlock::operator =").skip());
    }
}
