// ClipTextModel structure on a tiny random model (no reference files): output shapes, the embedding sum,
// the pooling position rules, causality, batch independence, the activation switch and argument errors.
// Numbers against transformers are checked by the Java reference tests (cases/text_encoder).
//
// Tolerances: copies and gathers are exact; 1e-6 where only the sgemm blocking of a different batch size or
// a masked-out (zero-weighted) key can differ, far below the O(1) change a real dependency causes.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.h"
#include "core/tensor.h"
#include "models/clip_text.h"
#include "nn/weights.h"
#include "ops/ops.h"

using namespace sdxl;

namespace {

constexpr uint64_t kSeed = 1234;

api::ClipTextConfig tiny_config() {
    api::ClipTextConfig c;
    c.vocab_size = 50;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.max_position_embeddings = 8;
    c.hidden_act = "quick_gelu";
    c.layer_norm_eps = 1e-5f;
    c.with_projection = false;
    c.projection_dim = 12;
    c.eos_token_id = 2;
    return c;
}

// random_source is seeded per key, so a second builder over the same seed sees the model's weights.
nn::WeightBuilder builder() { return nn::WeightBuilder(nn::random_source(kSeed, 1.0f)); }

models::ClipTextModel make_model(const api::ClipTextConfig& c) { return models::ClipTextModel(c, builder()); }

Tensor ids_tensor(const Shape& shape, const std::vector<int64_t>& v) {
    Tensor t = Tensor::empty(shape, DType::I64);
    for (size_t i = 0; i < v.size() && int64_t(i) < t.numel(); ++i) t.data<int64_t>()[i] = v[i];
    return t;
}

// [B, L, C] row (b, l) as a vector.
std::vector<float> row(const Tensor& t, int64_t b, int64_t l) {
    Tensor c = t.contiguous();
    const int64_t L = c.size(1), C = c.size(2);
    const float* p = c.data<float>() + (b * L + l) * C;
    return std::vector<float>(p, p + C);
}

std::vector<float> row2(const Tensor& t, int64_t b) {  // [B, C] row b
    Tensor c = t.contiguous();
    const float* p = c.data<float>() + b * c.size(1);
    return std::vector<float>(p, p + c.size(1));
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::fmax(m, std::fabs(double(a[i]) - double(b[i])));
    return m;
}

// Max |a - b| over positions [l0, l1) of batch item b of two [B, L, C] tensors.
double max_diff_rows(const Tensor& x, const Tensor& y, int64_t b, int64_t l0, int64_t l1) {
    double m = 0;
    for (int64_t l = l0; l < l1; ++l) m = std::fmax(m, max_diff(row(x, b, l), row(y, b, l)));
    return m;
}

}  // namespace

SDXL_TEST(clip_text_shapes_and_embeddings) {
    for (bool projection : {false, true}) {
        api::ClipTextConfig c = tiny_config();
        c.with_projection = projection;
        const models::ClipTextModel model = make_model(c);
        CHECK(model.config().hidden_size == 16);
        const Tensor ids = ids_tensor({2, 6}, {49, 3, 7, 2, 0, 0, 49, 11, 12, 13, 48, 1});
        const models::ClipTextOutput out = model.forward(ids);
        CHECK(out.hidden_states.size() == 3);
        for (const Tensor& h : out.hidden_states) CHECK(h.shape() == Shape({2, 6, 16}) && h.dtype() == DType::F32);
        CHECK(out.last_hidden_state.shape() == Shape({2, 6, 16}));
        CHECK(out.pooled.shape() == (projection ? Shape({2, 12}) : Shape({2, 16})));

        // hidden_states[0] = token_embedding[id] + position_embedding[l], exactly.
        const nn::WeightBuilder emb = builder().pp("text_model").pp("embeddings");
        const Tensor tok = emb.pp("token_embedding").get("weight", {50, 16});
        const Tensor pos = emb.pp("position_embedding").get("weight", {8, 16});
        double worst = 0;
        for (int64_t b = 0; b < 2; ++b) {
            for (int64_t l = 0; l < 6; ++l) {
                const int64_t id = ids.data<int64_t>()[b * 6 + l];
                std::vector<float> want(16);
                for (int64_t k = 0; k < 16; ++k)
                    want[size_t(k)] = tok.data<float>()[id * 16 + k] + pos.data<float>()[l * 16 + k];
                worst = std::fmax(worst, max_diff(row(out.hidden_states[0], b, l), want));
            }
        }
        CHECK_MSG(worst == 0.0, "embedding sum differs by " << worst);
    }
}

SDXL_TEST(clip_text_full_length_and_single_token) {
    const models::ClipTextModel model = make_model(tiny_config());
    const models::ClipTextOutput full = model.forward(ids_tensor({1, 8}, {1, 2, 3, 4, 5, 6, 7, 8}));
    CHECK(full.last_hidden_state.shape() == Shape({1, 8, 16}));
    const models::ClipTextOutput one = model.forward(ids_tensor({1, 1}, {5}));
    CHECK(one.last_hidden_state.shape() == Shape({1, 1, 16}));
    CHECK(max_diff(row2(one.pooled, 0), row(one.last_hidden_state, 0, 0)) == 0.0);
}

SDXL_TEST(clip_text_pooled_position_argmax_rule) {
    // eos_token_id == 2: pooled = last_hidden_state at the FIRST occurrence of the highest id.
    const models::ClipTextModel model = make_model(tiny_config());
    // Row 0: max 40 at k = 4; row 1: max 49 at k = 1 and again at 5 (first wins), eos id 2 present at 0.
    const Tensor ids = ids_tensor({2, 7}, {3, 7, 2, 9, 40, 40, 1, 2, 49, 5, 6, 7, 49, 49});
    const models::ClipTextOutput out = model.forward(ids);
    CHECK_MSG(max_diff(row2(out.pooled, 0), row(out.last_hidden_state, 0, 4)) == 0.0, "row 0 not pooled at 4");
    CHECK_MSG(max_diff(row2(out.pooled, 1), row(out.last_hidden_state, 1, 1)) == 0.0, "row 1 not pooled at 1");
    CHECK(max_diff(row2(out.pooled, 1), row(out.last_hidden_state, 1, 5)) > 0.0);

    // With text_projection: pooled = W row (no bias).
    api::ClipTextConfig c = tiny_config();
    c.with_projection = true;
    const models::ClipTextOutput proj = make_model(c).forward(ids);
    const Tensor w = builder().pp("text_projection").get("weight", {12, 16});
    const Tensor last = proj.last_hidden_state.narrow(1, 4, 1).narrow(0, 0, 1).reshape({1, 16});  // [1, 16]
    const Tensor want = ops::linear(last, w, Tensor());                                              // [1, 12]
    CHECK_MSG(max_diff(row2(proj.pooled, 0), row2(want, 0)) <= 1e-6,
              "projection differs by " << max_diff(row2(proj.pooled, 0), row2(want, 0)));
}

SDXL_TEST(clip_text_pooled_position_eos_rule) {
    // eos_token_id != 2: first position of eos_token_id; position 0 when the row has none.
    api::ClipTextConfig c = tiny_config();
    c.eos_token_id = 7;
    const models::ClipTextModel model = make_model(c);
    const Tensor ids = ids_tensor({2, 6}, {49, 3, 7, 7, 48, 1, 49, 3, 4, 5, 6, 1});
    const models::ClipTextOutput out = model.forward(ids);
    CHECK_MSG(max_diff(row2(out.pooled, 0), row(out.last_hidden_state, 0, 2)) == 0.0, "row 0 not pooled at 2");
    CHECK_MSG(max_diff(row2(out.pooled, 1), row(out.last_hidden_state, 1, 0)) == 0.0, "row 1 not pooled at 0");
}

SDXL_TEST(clip_text_causal) {
    const models::ClipTextModel model = make_model(tiny_config());
    const std::vector<int64_t> base = {49, 10, 11, 12, 13, 14, 15, 2};
    const models::ClipTextOutput a = model.forward(ids_tensor({1, 8}, base));
    for (int64_t j : {0, 3, 7}) {
        std::vector<int64_t> changed = base;
        changed[size_t(j)] = 30;
        const models::ClipTextOutput b = model.forward(ids_tensor({1, 8}, changed));
        for (size_t i = 0; i < a.hidden_states.size(); ++i) {
            const double before = max_diff_rows(a.hidden_states[i], b.hidden_states[i], 0, 0, j);
            const double after = max_diff_rows(a.hidden_states[i], b.hidden_states[i], 0, j, 8);
            CHECK_MSG(before <= 1e-6, "hidden_states[" << i << "] before position " << j << " changed by " << before);
            CHECK_MSG(after > 1e-3, "hidden_states[" << i << "] from position " << j << " did not change");
        }
        CHECK(max_diff_rows(a.last_hidden_state, b.last_hidden_state, 0, 0, j) <= 1e-6);
    }
}

SDXL_TEST(clip_text_batch_items_independent) {
    // No padding mask and no cross-item mixing: item 1 of a batch equals the same ids run alone.
    const models::ClipTextModel model = make_model(tiny_config());
    const models::ClipTextOutput pair = model.forward(ids_tensor({2, 5}, {1, 2, 3, 4, 5, 9, 8, 7, 6, 49}));
    const models::ClipTextOutput alone = model.forward(ids_tensor({1, 5}, {9, 8, 7, 6, 49}));
    double worst = 0;
    for (int64_t l = 0; l < 5; ++l)
        worst = std::fmax(worst, max_diff(row(pair.last_hidden_state, 1, l), row(alone.last_hidden_state, 0, l)));
    CHECK_MSG(worst <= 1e-6, "batch item differs by " << worst);
    CHECK(max_diff(row2(pair.pooled, 1), row2(alone.pooled, 0)) <= 1e-6);
}

SDXL_TEST(clip_text_activation_switch) {
    api::ClipTextConfig quick = tiny_config(), exact = tiny_config();
    exact.hidden_act = "gelu";
    const Tensor ids = ids_tensor({1, 6}, {49, 20, 21, 22, 23, 2});
    const models::ClipTextOutput q = make_model(quick).forward(ids);
    const models::ClipTextOutput g = make_model(exact).forward(ids);
    CHECK(max_diff_rows(q.hidden_states[0], g.hidden_states[0], 0, 0, 6) == 0.0);  // same weights
    const double d = max_diff_rows(q.last_hidden_state, g.last_hidden_state, 0, 0, 6);
    CHECK_MSG(d > 1e-3, "quick_gelu and gelu gave the same output (max diff " << d << ")");
}

SDXL_TEST(clip_text_bad_inputs) {
    const models::ClipTextModel model = make_model(tiny_config());
    const ErrorCode bad = ErrorCode::INVALID_ARGUMENT;
    CHECK_THROWS_CODE(model.forward(Tensor()), bad);
    CHECK_THROWS_CODE(model.forward(Tensor::zeros({1, 4}, DType::F32)), bad);     // dtype
    CHECK_THROWS_CODE(model.forward(Tensor::zeros({4}, DType::I64)), bad);        // rank 1
    CHECK_THROWS_CODE(model.forward(Tensor::zeros({1, 2, 4}, DType::I64)), bad);  // rank 3
    CHECK_THROWS_CODE(model.forward(Tensor::zeros({1, 9}, DType::I64)), bad);     // L > max_position_embeddings
    CHECK_THROWS_CODE(model.forward(Tensor::zeros({1, 0}, DType::I64)), bad);     // empty
    CHECK_THROWS_CODE(model.forward(Tensor::zeros({0, 4}, DType::I64)), bad);
    // Out-of-vocabulary ids anywhere in the batch are rejected before any embedding row is read.
    for (int64_t id : {int64_t(50), int64_t(-1), std::numeric_limits<int64_t>::max(),
                       std::numeric_limits<int64_t>::min()})
        CHECK_THROWS_CODE(model.forward(ids_tensor({2, 3}, {1, 2, 3, 4, 5, id})), bad);
    // A strided (non-contiguous) view of valid ids is fine.
    const Tensor wide = ids_tensor({2, 4}, {1, 2, 3, 4, 5, 6, 7, 49});
    CHECK(model.forward(wide.narrow(1, 1, 2)).last_hidden_state.shape() == Shape({2, 2, 16}));
}

SDXL_TEST(clip_text_bad_configs) {
    api::ClipTextConfig c = tiny_config();
    c.num_attention_heads = 5;  // 16 % 5 != 0
    CHECK_THROWS_CODE(make_model(c), ErrorCode::INVALID_ARGUMENT);
    c = tiny_config();
    c.hidden_size = 0;
    CHECK_THROWS_CODE(make_model(c), ErrorCode::INVALID_ARGUMENT);
    c = tiny_config();
    c.with_projection = true;
    c.projection_dim = 0;
    CHECK_THROWS_CODE(make_model(c), ErrorCode::INVALID_ARGUMENT);
    c = tiny_config();
    c.hidden_act = "relu";
    CHECK_THROWS_CODE(make_model(c), ErrorCode::UNSUPPORTED);
}

SDXL_TEST(clip_text_added_token_embeddings) {
    // Textual inversion: ids 50, 51 read the two added rows; the model's own rows are unchanged, and the
    // legacy pooling (first highest id) picks the first added token, not the eos (id 49 here).
    const models::ClipTextModel model = make_model(tiny_config());
    Tensor added = Tensor::empty({2, 16}, DType::F32);
    for (int64_t i = 0; i < 32; ++i) added.data<float>()[i] = 0.05f * float(i % 7) - 0.1f;
    const Tensor plain_ids = ids_tensor({1, 5}, {48, 3, 4, 49, 49});
    const models::ClipTextOutput plain = model.forward(plain_ids);
    const models::ClipTextOutput same = model.forward(plain_ids, Tensor(), added);
    CHECK(max_diff_rows(plain.last_hidden_state, same.last_hidden_state, 0, 0, 5) == 0.0);

    const models::ClipTextOutput out = model.forward(ids_tensor({1, 6}, {48, 50, 51, 3, 51, 49}), Tensor(), added);
    const models::ClipTextOutput zero = model.forward(ids_tensor({1, 6}, {0, 0, 0, 0, 0, 0}));
    // hidden_states[0] = token row + position row, so at positions 1 and 2:
    // (h - h_zero)[1] - (h - h_zero)[2] = (added0 - tok0) - (added1 - tok0) = added0 - added1.
    const std::vector<float> h1 = row(out.hidden_states[0], 0, 1), h2 = row(out.hidden_states[0], 0, 2);
    const std::vector<float> z1 = row(zero.hidden_states[0], 0, 1), z2 = row(zero.hidden_states[0], 0, 2);
    double worst = 0;
    for (size_t c = 0; c < 16; ++c) {
        const double lhs = (double(h1[c]) - z1[c]) - (double(h2[c]) - z2[c]);
        const double rhs = double(added.data<float>()[c]) - added.data<float>()[16 + c];
        worst = std::fmax(worst, std::fabs(lhs - rhs));
    }
    CHECK_MSG(worst <= 1e-6, "added rows not gathered (max diff " << worst << ")");
    CHECK_MSG(max_diff(row2(out.pooled, 0), row(out.last_hidden_state, 0, 2)) == 0.0, "not pooled at the first 51");

    const ErrorCode bad = ErrorCode::INVALID_ARGUMENT;
    CHECK_THROWS_CODE(model.forward(ids_tensor({1, 2}, {48, 52}), Tensor(), added), bad);  // past the added rows
    CHECK_THROWS_CODE(model.forward(ids_tensor({1, 2}, {48, 50})), bad);                   // no rows given
    CHECK_THROWS_CODE(model.forward(plain_ids, Tensor(), Tensor::zeros({2, 15}, DType::F32)), bad);
    CHECK_THROWS_CODE(model.forward(plain_ids, Tensor(), Tensor::zeros({16}, DType::F32)), bad);
}
