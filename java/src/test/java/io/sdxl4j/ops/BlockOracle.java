package io.sdxl4j.ops;

import io.sdxl4j.ops.TorchOracle.Precision;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * diffusers blocks written with LibTorch's functional ops in float64, as the oracle for the native blocks
 * (io.sdxl4j.models tests). The forward passes are transcribed from diffusers v0.31 (transformer_2d.py
 * {@code _operate_on_continuous_inputs} / {@code _get_output_for_continuous_inputs}, attention.py
 * {@code BasicTransformerBlock}, {@code FeedForward} + {@code GEGLU}, attention_processor.py
 * {@code AttnProcessor2_0}, resnet.py {@code ResnetBlock2D}); weights are looked up by diffusers' key names
 * below the block. Public so that tests outside this package can use it; the conversions are TorchOracle's.
 */
public final class BlockOracle {
    private BlockOracle() {}

    /** Weights by key (below the block's prefix), handed to torch in float64 as they are needed. */
    private record Weights(Map<String, io.sdxl4j.Tensor> map) {
        Tensor get(String key) {
            io.sdxl4j.Tensor t = map.get(key);
            if (t == null) {
                throw new IllegalArgumentException("oracle: no weight '" + key + "'");
            }
            return TorchOracle.tt(Precision.F64, HostArray.of(t));
        }

        TensorOptional opt(String key) {
            return new TensorOptional(get(key));
        }
    }

    private static Tensor input(io.sdxl4j.Tensor t) {
        return TorchOracle.tt(Precision.F64, HostArray.of(t));
    }

    /**
     * Transformer2DModel.forward (continuous input, no attention mask) in float64.
     *
     * @param w       weights keyed as below the block: norm.weight, proj_in.weight, transformer_blocks.0..., proj_out.bias
     * @param x       [N, C, H, W]
     * @param context [N, Lc, D]
     * @return the output values, [N, C, H, W] row-major
     */
    public static float[] transformer2d(Map<String, io.sdxl4j.Tensor> w, io.sdxl4j.Tensor x, io.sdxl4j.Tensor context,
                                        int heads, int headDim, int layers, int groups, boolean useLinearProjection) {
        try (PointerScope scope = new PointerScope()) {
            Weights p = new Weights(w);
            Tensor in = input(x);
            Tensor ctx = input(context);
            long n = in.size(0);
            long c = in.size(1);
            long h = in.size(2);
            long wd = in.size(3);
            long inner = (long) heads * headDim;
            Tensor s = torch.group_norm(in, groups, p.opt("norm.weight"), p.opt("norm.bias"), 1e-6, false);
            if (useLinearProjection) {
                s = s.permute(0, 2, 3, 1).reshape(n, h * wd, c);                           // [N, HW, C]
                s = torch.linear(s, p.get("proj_in.weight"), p.opt("proj_in.bias"));       // [N, HW, inner]
            } else {
                s = conv(s, p, "proj_in", 0);                                              // [N, inner, H, W]
                s = s.permute(0, 2, 3, 1).reshape(n, h * wd, inner);                       // [N, HW, inner]
            }
            for (int i = 0; i < layers; i++) {
                String b = "transformer_blocks." + i + ".";
                s = attention(p, b + "attn1.", layerNorm(p, b + "norm1.", s), null, heads, headDim).add(s);
                s = attention(p, b + "attn2.", layerNorm(p, b + "norm2.", s), ctx, heads, headDim).add(s);
                Tensor f = torch.linear(layerNorm(p, b + "norm3.", s), p.get(b + "ff.net.0.proj.weight"),
                        p.opt(b + "ff.net.0.proj.bias"));                                  // [N, HW, 8 inner]
                TensorVector hg = f.chunk(2, -1);
                f = hg.get(0).mul(torch.gelu(hg.get(1), "none"));                          // GEGLU: [N, HW, 4 inner]
                s = torch.linear(f, p.get(b + "ff.net.2.weight"), p.opt(b + "ff.net.2.bias")).add(s);
            }
            if (useLinearProjection) {
                s = torch.linear(s, p.get("proj_out.weight"), p.opt("proj_out.bias"));     // [N, HW, C]
                s = s.reshape(n, h, wd, c).permute(0, 3, 1, 2).contiguous();               // [N, C, H, W]
            } else {
                s = s.reshape(n, h, wd, inner).permute(0, 3, 1, 2).contiguous();           // [N, inner, H, W]
                s = conv(s, p, "proj_out", 0);                                             // [N, C, H, W]
            }
            return TorchOracle.host(s.add(in)).data();
        }
    }

    private static Tensor layerNorm(Weights p, String prefix, Tensor x) {
        return torch.layer_norm(x, new long[] {x.size(-1)}, p.opt(prefix + "weight"), p.opt(prefix + "bias"), 1e-5, false);
    }

    /** AttnProcessor2_0: to_q/k/v without bias, heads split, SDPA with scale head_dim^-0.5, to_out.0. */
    private static Tensor attention(Weights p, String prefix, Tensor x, Tensor context, int heads, int headDim) {
        Tensor ctx = context == null ? x : context;
        long n = x.size(0);
        Tensor q = torch.linear(x, p.get(prefix + "to_q.weight")).reshape(n, -1, heads, headDim).transpose(1, 2);
        Tensor k = torch.linear(ctx, p.get(prefix + "to_k.weight")).reshape(n, -1, heads, headDim).transpose(1, 2);
        Tensor v = torch.linear(ctx, p.get(prefix + "to_v.weight")).reshape(n, -1, heads, headDim).transpose(1, 2);
        Tensor o = torch.scaled_dot_product_attention(q, k, v, new TensorOptional(), 0.0, false,
                new DoubleOptional(1.0 / Math.sqrt(headDim)), false);                       // [N, heads, L, D]
        o = o.transpose(1, 2).reshape(n, -1, (long) heads * headDim);                       // [N, L, inner]
        return torch.linear(o, p.get(prefix + "to_out.0.weight"), p.opt(prefix + "to_out.0.bias"));
    }

    private static Tensor conv(Tensor x, Weights p, String prefix, long padding) {
        return torch.conv2d(x, p.get(prefix + ".weight"), p.opt(prefix + ".bias"), new long[] {1, 1},
                new long[] {padding, padding}, new long[] {1, 1}, 1);
    }

    /**
     * ResnetBlock2D.forward (time_embedding_norm "default", silu, output_scale_factor 1) in float64.
     *
     * @param temb [N, T], or null for a block without time_emb_proj
     * @return the output values, [N, out, H, W] row-major
     */
    public static float[] resnet(Map<String, io.sdxl4j.Tensor> w, io.sdxl4j.Tensor x, io.sdxl4j.Tensor temb, int groups,
                                 double eps) {
        try (PointerScope scope = new PointerScope()) {
            Weights p = new Weights(w);
            Tensor in = input(x);
            Tensor h = torch.silu(torch.group_norm(in, groups, p.opt("norm1.weight"), p.opt("norm1.bias"), eps, false));
            h = conv(h, p, "conv1", 1);                                                     // [N, out, H, W]
            if (temb != null) {
                Tensor t = torch.linear(torch.silu(input(temb)), p.get("time_emb_proj.weight"),
                        p.opt("time_emb_proj.bias"));                                       // [N, out]
                h = h.add(t.reshape(t.size(0), t.size(1), 1, 1));
            }
            h = torch.silu(torch.group_norm(h, groups, p.opt("norm2.weight"), p.opt("norm2.bias"), eps, false));
            h = conv(h, p, "conv2", 1);                                                     // [N, out, H, W]
            Tensor shortcut = w.containsKey("conv_shortcut.weight") ? conv(in, p, "conv_shortcut", 0) : in;
            return TorchOracle.host(shortcut.add(h)).data();
        }
    }
}
