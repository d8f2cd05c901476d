package io.sdxl4j;

import io.sdxl4j.models.AutoencoderKL;
import io.sdxl4j.models.BundledConfigs;
import io.sdxl4j.models.ClipTextConfig;
import io.sdxl4j.models.ClipTextModel;
import io.sdxl4j.models.DiffusersFolder;
import io.sdxl4j.models.HuggingFaceCache;
import io.sdxl4j.models.SingleFileCheckpoint;
import io.sdxl4j.models.UNet2DConditionModel;
import io.sdxl4j.models.UNetConfig;
import io.sdxl4j.models.VaeConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * Where a pipeline comes from: a diffusers folder (also what a Hugging Face repo id resolves to in the local hub
 * cache) or a single-file SGM / AUTOMATIC1111 checkpoint whose configs, tokenizers and scheduler config come from a
 * diffusers folder. Opening a source yields the pipeline's {@link Components}; the source decides only where each
 * component's weights are read from.
 */
sealed interface ModelSource permits ModelSource.Folder, ModelSource.SingleFile {
    /** A single {@code .safetensors} checkpoint (bundled configs), else a diffusers folder. */
    static ModelSource of(Path path) {
        return SingleFileCheckpoint.isSingleFile(path) ? new SingleFile(path, null) : new Folder(path);
    }

    /** diffusers' {@code from_pretrained} argument: a local folder or a repo id found in the local hub cache. */
    static ModelSource fromPretrained(String pathOrRepoId) {
        return of(HuggingFaceCache.fromEnvironment().resolveModelArgument(pathOrRepoId, null));
    }

    /**
     * Loads the components (as {@link PipelineOptions} say: device, dtype, variant, offload, VAE override).
     * {@code shareFrom}: the components of a loaded pipeline whose text_encoder_2 (with tokenizer_2), VAE and scheduler
     * config are used instead of this source's (the seed's {@code text_encoder_2=base.text_encoder_2, vae=base.vae});
     * they stay owned by that pipeline.
     */
    Components open(PipelineOptions options, Components shareFrom);

    /**
     * How an opened source loads each component's weights. Each supplier loads a fresh model (an offloaded component
     * is loaded again for every phase that needs it); configs are read from the diffusers folder.
     */
    interface Weights {
        Supplier<ClipTextModel> textEncoder(DiffusersFolder configs, String component, ClipTextConfig config,
                                            String variant, Device device, DType dtype);

        Supplier<UNet2DConditionModel> unet(DiffusersFolder configs, String variant, Device device, DType dtype);

        Supplier<AutoencoderKL> vae(DiffusersFolder configs, VaeConfig config, String variant, Device device,
                                    DType dtype);
    }

    /** A diffusers folder: model_index.json, unet/, vae/, text_encoder(_2)/, tokenizer(_2)/, scheduler/. */
    record Folder(Path folder) implements ModelSource {
        @Override
        public Components open(PipelineOptions options, Components shareFrom) {
            return Components.assemble(folder, null, new FolderWeights(), options, shareFrom, new ArrayList<>());
        }
    }

    /** The components' weight files in their sub-folders of a diffusers folder (of the variant, when it has one). */
    record FolderWeights() implements Weights {

        @Override
        public Supplier<ClipTextModel> textEncoder(DiffusersFolder df, String component, ClipTextConfig config,
                                                   String variant, Device device, DType dtype) {
            return component.equals("text_encoder") ? () -> df.textEncoder(variant, device, dtype)
                    : () -> df.textEncoder2(variant, device, dtype);
        }

        @Override
        public Supplier<UNet2DConditionModel> unet(DiffusersFolder df, String variant, Device device, DType dtype) {
            return () -> df.unet(variant, device, dtype);
        }

        @Override
        public Supplier<AutoencoderKL> vae(DiffusersFolder df, VaeConfig config, String variant, Device device,
                                           DType dtype) {
            return () -> df.vae(variant, device, dtype);
        }
    }

    /**
     * A single-file SGM/A1111 checkpoint: the weights from the file (mapped natively), everything else (component
     * configs, tokenizers, scheduler) from {@code configFolder}, a diffusers folder as diffusers'
     * {@code from_single_file(config=...)} takes it, or when null the real SDXL 1.0 base/refiner configs shipped in
     * the jar for the type the file's keys show.
     */
    record SingleFile(Path file, Path configFolder) implements ModelSource {
        @Override
        public Components open(PipelineOptions options, Components shareFrom) {
            Components.checkDevice(options);
            List<AutoCloseable> owned = new ArrayList<>();
            try {
                SingleFileCheckpoint ck = SingleFileCheckpoint.open(file);
                owned.add(ck);
                Path configs = configFolder != null ? configFolder : BundledConfigs.folder(ck.isRefiner());
                return Components.assemble(configs, ck, new CheckpointWeights(ck), options, shareFrom, owned);
            } catch (RuntimeException e) {
                Components.closeAll(owned);
                throw e;
            }
        }
    }

    /** The components' weights in an opened checkpoint, under the diffusers names of its key map. */
    record CheckpointWeights(SingleFileCheckpoint ck) implements Weights {
        @Override
        public Supplier<ClipTextModel> textEncoder(DiffusersFolder df, String component, ClipTextConfig config,
                                                   String variant, Device device, DType dtype) {
            return () -> ClipTextModel.load(ck, component, config, device, dtype);
        }

        @Override
        public Supplier<UNet2DConditionModel> unet(DiffusersFolder df, String variant, Device device, DType dtype) {
            UNetConfig config = UNetConfig.read(df.component("unet", "UNet2DConditionModel").resolve("config.json"));
            return () -> UNet2DConditionModel.load(ck, config, device, dtype);
        }

        @Override
        public Supplier<AutoencoderKL> vae(DiffusersFolder df, VaeConfig config, String variant, Device device,
                                           DType dtype) {
            return () -> AutoencoderKL.load(ck, config, device, dtype);
        }
    }
}
