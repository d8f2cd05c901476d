package io.sdxl4j.models;

import io.sdxl4j.nat.LongVector;
import io.sdxl4j.nat.NativeVaeConfig;
import java.nio.file.Path;
import java.util.List;

/** diffusers' AutoencoderKL config (DownEncoderBlock2D / UpDecoderBlock2D, as SDXL's VAE). */
public record VaeConfig(long inChannels, long outChannels, long latentChannels, long[] blockOutChannels,
                        long layersPerBlock, long normNumGroups, double scalingFactor, boolean forceUpcast,
                        long sampleSize) {

    public static VaeConfig read(Path configJson) {
        ConfigJson c = ConfigJson.read(configJson);
        String cls = c.string("_class_name", "AutoencoderKL");
        if (!cls.equals("AutoencoderKL")) {
            throw c.unsupported("_class_name", "is \"" + cls + "\"; expected \"AutoencoderKL\"");
        }
        c.requireDefault("act_fn", "silu");
        c.requireDefault("mid_block_add_attention", true);
        c.requireDefault("use_quant_conv", true);
        c.requireDefault("use_post_quant_conv", true);
        c.requireDefault("shift_factor", "none");
        c.requireDefault("latents_mean", "none");
        c.requireDefault("latents_std", "none");
        long[] channels = c.longs("block_out_channels", new long[] {64});
        List<String> down = c.strings("down_block_types", List.of("DownEncoderBlock2D"));
        List<String> up = c.strings("up_block_types", List.of("UpDecoderBlock2D"));
        c.sameLength("down_block_types", down.size(), "block_out_channels", channels.length);
        c.sameLength("up_block_types", up.size(), "block_out_channels", channels.length);
        if (down.stream().anyMatch(t -> !t.equals("DownEncoderBlock2D"))) {
            throw c.unsupported("down_block_types", "is " + down + "; sdxl4j supports DownEncoderBlock2D only");
        }
        if (up.stream().anyMatch(t -> !t.equals("UpDecoderBlock2D"))) {
            throw c.unsupported("up_block_types", "is " + up + "; sdxl4j supports UpDecoderBlock2D only");
        }
        long groups = c.positiveLong("norm_num_groups", 32);
        for (int i = 0; i < channels.length; i++) {
            if (channels[i] % groups != 0) {
                throw c.bad("norm_num_groups", groups + " does not divide block_out_channels[" + i + "] = " + channels[i]);
            }
        }
        double scaling = c.number("scaling_factor", 0.18215);
        if (scaling <= 0) {
            throw c.bad("scaling_factor", "must be positive, found " + scaling);
        }
        return new VaeConfig(c.positiveLong("in_channels", 3), c.positiveLong("out_channels", 3),
                c.positiveLong("latent_channels", 4), channels, c.positiveLong("layers_per_block", 1), groups, scaling,
                c.bool("force_upcast", true), c.positiveLong("sample_size", 32));
    }

    /** Spatial factor between image and latents: 2^(levels - 1). */
    public long downscaleFactor() {
        return 1L << (blockOutChannels.length - 1);
    }

    /** The native struct (the caller closes it). */
    public NativeVaeConfig toNative() {
        NativeVaeConfig n = new NativeVaeConfig();
        n.in_channels(inChannels).out_channels(outChannels).latent_channels(latentChannels)
                .block_out_channels(new LongVector(blockOutChannels)).layers_per_block(layersPerBlock)
                .norm_num_groups(normNumGroups).scaling_factor((float) scalingFactor).force_upcast(forceUpcast)
                .sample_size(sampleSize);
        return n;
    }
}
