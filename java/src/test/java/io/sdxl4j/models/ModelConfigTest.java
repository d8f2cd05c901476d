package io.sdxl4j.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.ReferenceData;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Sdxl4j;
import io.sdxl4j.nat.NativeClipTextConfig;
import io.sdxl4j.nat.NativeUNetConfig;
import io.sdxl4j.nat.NativeVaeConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * config.json parsing: the real SDXL 1.0 configs (reference/configs) read in Java equal the native named
 * constructors written independently from the same files; the tiny configs parse; unsupported and
 * inconsistent configs are clear errors that name the key.
 */
class ModelConfigTest {
    private static final Path CONFIGS = ReferenceData.root().resolve("configs");

    @Test
    void realSdxlUnetConfigsMatchTheNativeConstructors() {
        Sdxl4j.load();
        UNetConfig base = UNetConfig.read(CONFIGS.resolve("sdxl-base-1.0/unet/config.json"));
        UNetConfig refiner = UNetConfig.read(CONFIGS.resolve("sdxl-refiner-1.0/unet/config.json"));
        try (NativeUNetConfig b = NativeUNetConfig.sdxl_base(); NativeUNetConfig r = NativeUNetConfig.sdxl_refiner()) {
            assertUnet(base, b);
            assertUnet(refiner, r);
        }
        assertArrayEquals(new long[] {5, 10, 20}, base.numAttentionHeads(), "attention_head_dim is the head count");
        assertArrayEquals(new long[] {4, 4, 4, 4}, refiner.transformerLayersPerBlock(), "an int applies to every level");
    }

    private static void assertUnet(UNetConfig java, NativeUNetConfig n) {
        assertArrayEquals(n.block_out_channels().get(), java.blockOutChannels());
        assertArrayEquals(n.transformer_layers_per_block().get(), java.transformerLayersPerBlock());
        assertArrayEquals(n.num_attention_heads().get(), java.numAttentionHeads());
        assertEquals(n.cross_attention_dim(), java.crossAttentionDim());
        assertEquals(n.addition_time_embed_dim(), java.additionTimeEmbedDim());
        assertEquals(n.projection_class_embeddings_input_dim(), java.projectionClassEmbeddingsInputDim());
        assertEquals(n.use_linear_projection(), java.useLinearProjection());
        assertEquals(n.layers_per_block(), java.layersPerBlock());
        assertEquals(n.norm_num_groups(), java.normNumGroups());
        for (int i = 0; i < java.downBlockTypes().size(); i++) {
            assertEquals(n.down_block_types().get(i).getString(), java.downBlockTypes().get(i));
            assertEquals(n.up_block_types().get(i).getString(), java.upBlockTypes().get(i));
        }
    }

    @Test
    void realSdxlTextEncoderAndVaeConfigsMatchTheNativeConstructors() {
        Sdxl4j.load();
        ClipTextConfig te1 = ClipTextConfig.read(CONFIGS.resolve("sdxl-base-1.0/text_encoder/config.json"));
        ClipTextConfig te2 = ClipTextConfig.read(CONFIGS.resolve("sdxl-base-1.0/text_encoder_2/config.json"));
        VaeConfig vae = VaeConfig.read(CONFIGS.resolve("sdxl-base-1.0/vae/config.json"));
        VaeConfig vaeRefiner = VaeConfig.read(CONFIGS.resolve("sdxl-refiner-1.0/vae/config.json"));
        try (NativeClipTextConfig n1 = NativeClipTextConfig.sdxl_text_encoder();
             NativeClipTextConfig n2 = NativeClipTextConfig.sdxl_text_encoder_2();
             NativeVaeConfig nv = NativeVaeConfig.sdxl()) {
            for (var pair : List.of(new Object[] {te1, n1}, new Object[] {te2, n2})) {
                ClipTextConfig j = (ClipTextConfig) pair[0];
                NativeClipTextConfig n = (NativeClipTextConfig) pair[1];
                assertEquals(n.hidden_size(), j.hiddenSize());
                assertEquals(n.intermediate_size(), j.intermediateSize());
                assertEquals(n.num_hidden_layers(), j.numHiddenLayers());
                assertEquals(n.num_attention_heads(), j.numAttentionHeads());
                assertEquals(n.hidden_act().getString(), j.hiddenAct());
                assertEquals(n.with_projection(), j.withProjection());
                assertEquals(n.projection_dim(), j.projectionDim());
                assertEquals(n.eos_token_id(), j.eosTokenId());
            }
            assertFalse(te1.withProjection());
            assertTrue(te2.withProjection());
            assertArrayEquals(nv.block_out_channels().get(), vae.blockOutChannels());
            assertEquals(nv.scaling_factor(), (float) vae.scalingFactor());
            assertArrayEquals(vae.blockOutChannels(), vaeRefiner.blockOutChannels());
            assertEquals(8, vae.downscaleFactor());
        }
    }

    @Test
    void tinyConfigsParse() {
        Path base = ReferenceData.root().resolve("models/tiny-sdxl-base");
        assertEquals(3, UNetConfig.read(base.resolve("unet/config.json")).blockOutChannels().length);
        assertEquals(4, UNetConfig.read(ReferenceData.root().resolve("models/tiny-sdxl-refiner/unet/config.json"))
                .blockOutChannels().length);
        assertEquals("quick_gelu", ClipTextConfig.read(base.resolve("text_encoder/config.json")).hiddenAct());
        assertEquals(0.13025, VaeConfig.read(base.resolve("vae/config.json")).scalingFactor(), 1e-12);
        DiffusersFolder folder = DiffusersFolder.open(base);
        assertEquals("StableDiffusionXLPipeline", folder.pipelineClass());
        DiffusersFolder refiner = DiffusersFolder.open(ReferenceData.root().resolve("models/tiny-sdxl-refiner"));
        assertTrue(refiner.componentClass("text_encoder").isEmpty());
        assertTrue(refiner.flag("requires_aesthetics_score", false));
        SdxlException none = assertThrows(SdxlException.class, () -> refiner.textEncoder(null));
        assertEquals(ErrorCode.NOT_FOUND, none.code());
    }

    @Test
    void unsupportedOrInconsistentConfigsNameTheKey(@TempDir Path dir) throws Exception {
        Path real = CONFIGS.resolve("sdxl-base-1.0/unet/config.json");
        expect(dir, real, ErrorCode.UNSUPPORTED, "down_block_types", c -> c.putArray("down_block_types")
                .add("DownBlock2D").add("SimpleCrossAttnDownBlock2D").add("CrossAttnDownBlock2D"));
        expect(dir, real, ErrorCode.BAD_MODEL_FILE, "up_block_types", c -> c.putArray("up_block_types").add("UpBlock2D"));
        expect(dir, real, ErrorCode.BAD_MODEL_FILE, "norm_num_groups", c -> c.put("norm_num_groups", 48));
        expect(dir, real, ErrorCode.BAD_MODEL_FILE, "attention_head_dim", c -> c.putArray("attention_head_dim").add(5).add(10));
        expect(dir, real, ErrorCode.UNSUPPORTED, "class_embed_type", c -> c.put("class_embed_type", "timestep"));
        expect(dir, real, ErrorCode.UNSUPPORTED, "addition_embed_type", c -> c.put("addition_embed_type", "text"));
        expect(dir, real, ErrorCode.BAD_MODEL_FILE, "layers_per_block", c -> c.put("layers_per_block", -2));
        expect(dir, real, ErrorCode.UNSUPPORTED, "cross_attention_dim", c -> c.putArray("cross_attention_dim").add(2048));
        Path te = CONFIGS.resolve("sdxl-base-1.0/text_encoder/config.json");
        expect(dir, te, ErrorCode.UNSUPPORTED, "hidden_act", c -> c.put("hidden_act", "relu"));
        expect(dir, te, ErrorCode.BAD_MODEL_FILE, "hidden_size", c -> c.put("hidden_size", "768"));
        Path vae = CONFIGS.resolve("sdxl-base-1.0/vae/config.json");
        expect(dir, vae, ErrorCode.UNSUPPORTED, "mid_block_add_attention", c -> c.put("mid_block_add_attention", false));
        expect(dir, vae, ErrorCode.BAD_MODEL_FILE, "scaling_factor", c -> c.put("scaling_factor", "big"));
    }

    private static void expect(Path dir, Path source, ErrorCode code, String key, Consumer<ObjectNode> edit) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode c = (ObjectNode) json.readTree(source.toFile());
        edit.accept(c);
        Path file = dir.resolve("config.json");
        Files.writeString(file, json.writeValueAsString(c));
        SdxlException e = assertThrows(SdxlException.class, () -> {
            if (source.toString().contains("unet")) {
                UNetConfig.read(file);
            } else if (source.toString().contains("vae")) {
                VaeConfig.read(file);
            } else {
                ClipTextConfig.read(file);
            }
        }, key);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains("\"" + key + "\""), e.getMessage());
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    }
}
