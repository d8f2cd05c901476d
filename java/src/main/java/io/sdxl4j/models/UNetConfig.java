package io.sdxl4j.models;

import io.sdxl4j.nat.LongVector;
import io.sdxl4j.nat.NativeUNetConfig;
import io.sdxl4j.nat.StringVector;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.bytedeco.javacpp.BytePointer;

/**
 * diffusers' UNet2DConditionModel config, the subset SDXL base and refiner use. Features outside it
 * (class embeddings, time-conditioning projections, dual cross-attention, other block types...) are rejected
 * by {@link #read} with UNSUPPORTED naming the key.
 *
 * @param numAttentionHeads per level; diffusers reads SDXL's {@code attention_head_dim} as the head count
 * @param transformerLayersPerBlock per level, in down-block order
 */
public record UNetConfig(long inChannels, long outChannels, long[] blockOutChannels, List<String> downBlockTypes,
                         List<String> upBlockTypes, String midBlockType, long layersPerBlock,
                         long[] transformerLayersPerBlock, long[] numAttentionHeads, long crossAttentionDim,
                         long normNumGroups, double normEps, boolean useLinearProjection, boolean flipSinToCos,
                         double freqShift, String additionEmbedType, long additionTimeEmbedDim,
                         long projectionClassEmbeddingsInputDim, long sampleSize) {

    static final Set<String> DOWN_TYPES = Set.of("DownBlock2D", "CrossAttnDownBlock2D");
    static final Set<String> UP_TYPES = Set.of("UpBlock2D", "CrossAttnUpBlock2D");

    /**
     * The UNet of stabilityai/stable-diffusion-xl-base-1.0 ({@code unet/config.json}, as {@link #read} gives it;
     * the native {@code UNetConfig::sdxl_base()} holds the same values): 2,567,463,684 parameters. For building
     * the real-size model without its weight files, e.g. {@code UNet2DConditionModel.random(UNetConfig.sdxlBase(),
     * seed, device, dtype)} for memory and speed checks.
     */
    public static UNetConfig sdxlBase() {
        return new UNetConfig(4, 4, new long[] {320, 640, 1280},
                List.of("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                List.of("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), "UNetMidBlock2DCrossAttn", 2,
                new long[] {1, 2, 10}, new long[] {5, 10, 20}, 2048, 32, 1e-5, true, true, 0, "text_time", 256, 2816,
                128);
    }

    public static UNetConfig read(Path configJson) {
        ConfigJson c = ConfigJson.read(configJson);
        String cls = c.string("_class_name", "UNet2DConditionModel");
        if (!cls.equals("UNet2DConditionModel")) {
            throw c.unsupported("_class_name", "is \"" + cls + "\"; expected \"UNet2DConditionModel\"");
        }
        // Features SDXL does not use: must be absent or at their defaults.
        c.requireDefault("act_fn", "silu");
        c.requireDefault("center_input_sample", false);
        c.requireDefault("class_embed_type", "none");
        c.requireDefault("num_class_embeds", "none");
        c.requireDefault("time_cond_proj_dim", "none");
        c.requireDefault("encoder_hid_dim", "none");
        c.requireDefault("encoder_hid_dim_type", "none");
        c.requireDefault("dual_cross_attention", false);
        c.requireDefault("only_cross_attention", false);
        c.requireDefault("resnet_time_scale_shift", "default");
        c.requireDefault("resnet_skip_time_act", false);
        c.requireDefault("resnet_out_scale_factor", 1.0);
        c.requireDefault("time_embedding_type", "positional");
        c.requireDefault("time_embedding_dim", "none");
        c.requireDefault("time_embedding_act_fn", "none");
        c.requireDefault("timestep_post_act", "none");
        c.requireDefault("conv_in_kernel", 3L);
        c.requireDefault("conv_out_kernel", 3L);
        c.requireDefault("downsample_padding", 1L);
        c.requireDefault("mid_block_scale_factor", 1L);
        c.requireDefault("class_embeddings_concat", false);
        c.requireDefault("mid_block_only_cross_attention", "none");
        c.requireDefault("cross_attention_norm", "none");
        c.requireDefault("attention_type", "default");

        long[] channels = c.longs("block_out_channels", new long[] {320, 640, 1280, 1280});
        int levels = channels.length;
        List<String> down = c.strings("down_block_types",
                List.of("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"));
        List<String> up = c.strings("up_block_types",
                List.of("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"));
        c.sameLength("down_block_types", down.size(), "block_out_channels", levels);
        c.sameLength("up_block_types", up.size(), "block_out_channels", levels);
        for (String t : down) {
            if (!DOWN_TYPES.contains(t)) {
                throw c.unsupported("down_block_types", "contains \"" + t + "\"; sdxl4j supports " + DOWN_TYPES);
            }
        }
        for (String t : up) {
            if (!UP_TYPES.contains(t)) {
                throw c.unsupported("up_block_types", "contains \"" + t + "\"; sdxl4j supports " + UP_TYPES);
            }
        }
        String mid = c.oneOf("mid_block_type", "UNetMidBlock2DCrossAttn", Set.of("UNetMidBlock2DCrossAttn"));
        // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (a naming quirk kept for
        // compatibility); an int applies to every level.
        String headsKey = c.has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
        long[] heads = c.longsOrScalar(headsKey, new long[] {8, 8, 8, 8}, levels);
        c.sameLength(headsKey, heads.length, "block_out_channels", levels);
        long[] tlayers = c.longsOrScalar("transformer_layers_per_block", filled(levels, 1), levels);
        c.sameLength("transformer_layers_per_block", tlayers.length, "block_out_channels", levels);
        long groups = c.positiveLong("norm_num_groups", 32);
        for (int i = 0; i < levels; i++) {
            if (channels[i] % groups != 0) {
                throw c.bad("norm_num_groups", groups + " does not divide block_out_channels[" + i + "] = " + channels[i]);
            }
            if (channels[i] % heads[i] != 0) {
                throw c.bad(headsKey, "[" + i + "] = " + heads[i] + " does not divide block_out_channels[" + i + "] = " + channels[i]);
            }
        }
        if (c.isArray("cross_attention_dim")) { // legal in diffusers, not used by SDXL
            throw c.unsupported("cross_attention_dim", "is a per-level list; sdxl4j supports a single integer");
        }
        String addType = c.oneOf("addition_embed_type", null, Set.of("text_time"));
        if (addType == null) {
            throw c.unsupported("addition_embed_type", "is missing; SDXL UNets use \"text_time\"");
        }
        long addDim = c.positiveLong("addition_time_embed_dim", 256);
        long projDim = c.positiveLong("projection_class_embeddings_input_dim", 2816);
        UNetConfig cfg = new UNetConfig(c.positiveLong("in_channels", 4), c.positiveLong("out_channels", 4), channels,
                down, up, mid, c.positiveLong("layers_per_block", 2), tlayers, heads,
                c.positiveLong("cross_attention_dim", 1280), groups, c.number("norm_eps", 1e-5),
                c.bool("use_linear_projection", false), c.bool("flip_sin_to_cos", true), c.number("freq_shift", 0),
                addType, addDim, projDim, c.positiveLong("sample_size", 128));
        if (projDim <= addDim) {
            throw c.bad("projection_class_embeddings_input_dim", projDim + " leaves no room for the pooled text"
                    + " embedding besides time ids of " + addDim);
        }
        return cfg;
    }

    private static long[] filled(int n, long v) {
        long[] a = new long[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    /** The native struct (the caller closes it). */
    public NativeUNetConfig toNative() {
        NativeUNetConfig n = new NativeUNetConfig();
        n.in_channels(inChannels).out_channels(outChannels).block_out_channels(new LongVector(blockOutChannels))
                .down_block_types(new StringVector(downBlockTypes.toArray(new String[0])))
                .up_block_types(new StringVector(upBlockTypes.toArray(new String[0])))
                .mid_block_type(new BytePointer(midBlockType)).layers_per_block(layersPerBlock)
                .transformer_layers_per_block(new LongVector(transformerLayersPerBlock))
                .num_attention_heads(new LongVector(numAttentionHeads)).cross_attention_dim(crossAttentionDim)
                .norm_num_groups(normNumGroups).norm_eps((float) normEps).use_linear_projection(useLinearProjection)
                .flip_sin_to_cos(flipSinToCos).freq_shift((float) freqShift)
                .addition_embed_type(new BytePointer(additionEmbedType)).addition_time_embed_dim(additionTimeEmbedDim)
                .projection_class_embeddings_input_dim(projectionClassEmbeddingsInputDim);
        return n;
    }
}
