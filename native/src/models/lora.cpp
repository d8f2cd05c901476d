#include "models/lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/device.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "models/single_file.h"
#include "ops/ops.h"

namespace sdxl::models {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// "a", "b", ... (at most 8, then "and N more") for messages.
std::string list_of(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size() && i < 8; ++i) out += (i ? ", '" : "'") + names[i] + "'";
    if (names.size() > 8) out += " and " + std::to_string(names.size() - 8) + " more";
    return out;
}

// The kohya component prefixes and the diffusers component each names.
const std::vector<std::pair<std::string, std::string>> kKohyaPrefixes = {
    {"lora_unet_", "unet"}, {"lora_te1_", "text_encoder"}, {"lora_te2_", "text_encoder_2"}};
// PEFT: longest first, so "text_encoder_2." is not read as "text_encoder." + "_2...".
const std::vector<std::pair<std::string, std::string>> kPeftPrefixes = {
    {"text_encoder_2.", "text_encoder_2"}, {"text_encoder.", "text_encoder"}, {"unet.", "unet"}};

// The tensors of a module under a kohya prefix (LyCORIS / A1111 names) and the kind each belongs to; ".alpha" to all.
const std::vector<std::pair<std::string, LoraKind>> kKohyaParts = {
    {".lora_down.weight", LoraKind::LORA}, {".lora_up.weight", LoraKind::LORA},
    {".hada_w1_a", LoraKind::LOHA},        {".hada_w1_b", LoraKind::LOHA},
    {".hada_w2_a", LoraKind::LOHA},        {".hada_w2_b", LoraKind::LOHA},
    {".hada_t1", LoraKind::LOHA},          {".hada_t2", LoraKind::LOHA},
    {".lokr_w1", LoraKind::LOKR},          {".lokr_w1_a", LoraKind::LOKR},
    {".lokr_w1_b", LoraKind::LOKR},        {".lokr_w2", LoraKind::LOKR},
    {".lokr_w2_a", LoraKind::LOKR},        {".lokr_w2_b", LoraKind::LOKR},
    {".lokr_t2", LoraKind::LOKR}};

// Keys of LoRA-like kinds that are not run here, named in the refusal (A1111's network_*.py / LyCORIS modules).
const std::vector<std::pair<std::string, std::string>> kUnsupported = {
    {".oft_blocks", "OFT/BOFT (oft_blocks)"},
    {".oft_diag", "OFT (oft_diag)"},
    {".rescale", "BOFT (rescale)"},
    {".dora_scale", "DoRA (dora_scale)"},
    {".lora_magnitude_vector", "DoRA (lora_magnitude_vector)"},
    {".lora_magnitude_vector.weight", "DoRA (lora_magnitude_vector)"},
    {".diff", "LyCORIS full (diff)"},
    {".diff_b", "LyCORIS full (diff_b)"},
    {".w_norm", "LyCORIS norm (w_norm)"},
    {".b_norm", "LyCORIS norm (b_norm)"},
    {".a1.weight", "GLoRA (a1/a2/b1/b2)"},
    {".a2.weight", "GLoRA (a1/a2/b1/b2)"},
    {".b1.weight", "GLoRA (a1/a2/b1/b2)"},
    {".b2.weight", "GLoRA (a1/a2/b1/b2)"},
    {".on_input", "(IA)^3 (on_input)"},
    {".lora_mid.weight", "LoCon with a Tucker core (lora_mid)"},
    {".lokr_t1", "LoKr with lokr_t1"},
};

const char* kind_name(LoraKind k) { return k == LoraKind::LORA ? "LoRA" : k == LoraKind::LOHA ? "LoHa" : "LoKr"; }

// a [M, K] @ b [K, N], F32 CPU contiguous; K is a rank (small).
Tensor mm(const Tensor& a, const Tensor& b) {
    const int64_t M = a.shape()[0], K = a.shape()[1], N = b.shape()[1];
    Tensor out = Tensor::zeros({M, N}, DType::F32);
    const float* A = a.data<float>();
    const float* B = b.data<float>();
    float* C = out.data<float>();
    parallel_for(M, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t m = lo; m < hi; ++m)
            for (int64_t k = 0; k < K; ++k) {
                const float s = A[m * K + k];
                for (int64_t n = 0; n < N; ++n) C[m * N + n] += s * B[k * N + n];
            }
    });
    return out;
}

// LyCORIS's Tucker rebuild (rebuild_tucker / A1111 make_weight_cp): t [P, Q, kh, kw], wa [P, O], wb [Q, I] ->
// out[o, i, :, :] = sum_p sum_q t[p, q] wa[p, o] wb[q, i], [O, I, kh, kw].
Tensor tucker(const Tensor& t, const Tensor& wa, const Tensor& wb) {
    const int64_t P = t.shape()[0], Q = t.shape()[1], S = t.shape()[2] * t.shape()[3];
    const int64_t O = wa.shape()[1], I = wb.shape()[1];
    const float* T = t.data<float>();
    const float* A = wa.data<float>();
    const float* B = wb.data<float>();
    std::vector<float> tmp(size_t(P * I * S), 0.0f);  // tmp[p, i, s] = sum_q t[p, q, s] wb[q, i]
    for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q)
            for (int64_t i = 0; i < I; ++i) {
                const float b = B[q * I + i];
                for (int64_t s = 0; s < S; ++s) tmp[size_t((p * I + i) * S + s)] += T[(p * Q + q) * S + s] * b;
            }
    Tensor out = Tensor::zeros({O, I, t.shape()[2], t.shape()[3]}, DType::F32);
    float* R = out.data<float>();
    parallel_for(O, 4, [&](int64_t lo, int64_t hi) {
        for (int64_t o = lo; o < hi; ++o)
            for (int64_t p = 0; p < P; ++p) {
                const float a = A[p * O + o];
                for (int64_t j = 0; j < I * S; ++j) R[o * I * S + j] += a * tmp[size_t(p * I * S + j)];
            }
    });
    return out;
}

// [d0, rest...] -> [d0, prod(rest)] (contiguous).
Tensor flat2(const Tensor& t) { return t.contiguous().view({t.shape()[0], t.numel() / t.shape()[0]}); }

// The module's tensors by part name (".lora_down.weight", ".hada_w1_a", ".alpha", ...).
struct Parts {
    LoraKind kind = LoraKind::LORA;
    std::set<LoraKind> kinds;
    std::map<std::string, std::string> keys;  // part -> tensor key
    std::string key(const std::string& part) const {
        auto it = keys.find(part);
        return it == keys.end() ? std::string() : it->second;
    }
};

}  // namespace

Tensor lycoris_delta(const LoraModule& m) {
    SDXL_CHECK(m.kind != LoraKind::LORA, "lycoris_delta: ", m.name, " is a LoRA module");
    if (m.kind == LoraKind::LOHA) {
        // ΔW = (w1a @ w1b) ⊙ (w2a @ w2b) (FedPara's Hadamard product; Tucker: each factor rebuilt from its core).
        Tensor d1, d2;
        if (m.t1.defined()) {
            d1 = tucker(m.t1, m.w1a, m.w1b);
            d2 = tucker(m.t2, m.w2a, m.w2b);
        } else {
            d1 = mm(flat2(m.w1a), flat2(m.w1b));
            d2 = mm(flat2(m.w2a), flat2(m.w2b));
        }
        float* a = d1.data<float>();
        const float* b = d2.data<float>();
        for (int64_t i = 0; i < d1.numel(); ++i) a[i] *= b[i];
        return d1.view(m.delta_shape);
    }
    // LoKr: ΔW = kron(W1, W2), W1 [a, c], W2 [b, D] (a conv's W2 [b, d, kh, kw] read as [b, d * kh * kw]: the kron
    // with W1[:, :, None, None] then has the same memory order) -> [a * b, c * D].
    const Tensor W1 = m.w1.defined() ? m.w1.contiguous() : mm(m.w1a.contiguous(), m.w1b.contiguous());
    Tensor W2;
    if (m.w2.defined()) W2 = flat2(m.w2);
    else if (m.t2.defined()) W2 = flat2(tucker(m.t2, m.w2a, m.w2b));
    else W2 = mm(m.w2a.contiguous(), m.w2b.contiguous());
    const int64_t a = W1.shape()[0], c = W1.shape()[1], b = W2.shape()[0], D = W2.shape()[1];
    Tensor out = Tensor::empty({a * b, c * D}, DType::F32);
    const float* P = W1.data<float>();
    const float* Q = W2.data<float>();
    float* R = out.data<float>();
    for (int64_t i = 0; i < a; ++i)
        for (int64_t p = 0; p < b; ++p)
            for (int64_t j = 0; j < c; ++j) {
                const float w = P[i * c + j];
                float* row = R + (i * b + p) * (c * D) + j * D;
                for (int64_t q = 0; q < D; ++q) row[q] = w * Q[p * D + q];
            }
    return out.view(m.delta_shape);
}

namespace {

// Checks the factors of a LoHa / LoKr module and fills delta_shape, rank and alpha (the file's .alpha when
// has_alpha). Returns an error text, empty when fine.
std::string lycoris_shapes(LoraModule& m, bool has_alpha, double alpha) {
    auto sh = [](const Tensor& t) { return shape_str(t.shape()); };
    auto rows = [](const Tensor& t) { return t.shape()[0]; };
    auto cols = [](const Tensor& t) { return t.numel() / t.shape()[0]; };  // [d0, rest...] read as [d0, prod(rest)]
    if (m.kind == LoraKind::LOHA) {
        if (m.t1.defined() != m.t2.defined()) return "has one of hada_t1 / hada_t2 but not the other";
        if (m.t1.defined()) {  // Tucker: t [r, r, kh, kw], wa [r, out], wb [r, in]
            for (const Tensor* t : {&m.t1, &m.t2})
                if (t->dim() != 4) return "hada_t1 / hada_t2 must be [r, r, kh, kw], got " + sh(*t);
            for (const Tensor* t : {&m.w1a, &m.w1b, &m.w2a, &m.w2b})
                if (t->dim() != 2) return "with hada_t1 / hada_t2 the hada_w* factors must be 2-D, got " + sh(*t);
            const Shape want{m.w1a.shape()[1], m.w1b.shape()[1], m.t1.shape()[2], m.t1.shape()[3]};
            if (m.t1.shape()[0] != rows(m.w1a) || m.t1.shape()[1] != rows(m.w1b) || m.t2.shape()[0] != rows(m.w2a) ||
                m.t2.shape()[1] != rows(m.w2b) || m.w2a.shape()[1] != want[0] || m.w2b.shape()[1] != want[1] ||
                m.t2.shape()[2] != want[2] || m.t2.shape()[3] != want[3])
                return "Tucker factors hada_t1 " + sh(m.t1) + ", hada_w1_a " + sh(m.w1a) + ", hada_w1_b " + sh(m.w1b) +
                       ", hada_t2 " + sh(m.t2) + ", hada_w2_a " + sh(m.w2a) + ", hada_w2_b " + sh(m.w2b) +
                       " do not fit together (t [r, r, kh, kw], w_a [r, out], w_b [r, in])";
            m.delta_shape = want;
        } else {  // w_a [out, r], w_b [r, K]
            if (cols(m.w1a) != rows(m.w1b) || cols(m.w2a) != rows(m.w2b) || rows(m.w1a) != rows(m.w2a) ||
                cols(m.w1b) != cols(m.w2b))
                return "hada_w1_a " + sh(m.w1a) + ", hada_w1_b " + sh(m.w1b) + ", hada_w2_a " + sh(m.w2a) +
                       ", hada_w2_b " + sh(m.w2b) + " do not fit together (w_a [out, r], w_b [r, in * kh * kw])";
            m.delta_shape = {rows(m.w1a), cols(m.w1b)};
        }
        // LyCORIS / A1111: the rank is hada_w1_b's first dim.
        m.rank = rows(m.w1b);
    } else {
        // LoKr: W1 = lokr_w1 or lokr_w1_a @ lokr_w1_b; W2 = lokr_w2, lokr_w2_a @ lokr_w2_b or Tucker(t2, w2_a, w2_b).
        const bool w1_split = !m.w1.defined(), w2_split = !m.w2.defined();
        if (m.w1.defined() && (m.w1a.defined() || m.w1b.defined())) return "has both lokr_w1 and lokr_w1_a/_b";
        if (m.w2.defined() && (m.w2a.defined() || m.w2b.defined() || m.t2.defined()))
            return "has both lokr_w2 and lokr_w2_a/_b/lokr_t2";
        if (w1_split && (!m.w1a.defined() || !m.w1b.defined())) return "has neither lokr_w1 nor both lokr_w1_a and lokr_w1_b";
        if (w2_split && (!m.w2a.defined() || !m.w2b.defined())) return "has neither lokr_w2 nor both lokr_w2_a and lokr_w2_b";
        int64_t a, c, b, D;
        Shape kernel;
        if (!w1_split) {
            if (m.w1.dim() != 2) return "lokr_w1 must be 2-D, got " + sh(m.w1);
            a = m.w1.shape()[0], c = m.w1.shape()[1];
        } else {
            if (m.w1a.dim() != 2 || m.w1b.dim() != 2 || m.w1a.shape()[1] != m.w1b.shape()[0])
                return "lokr_w1_a " + sh(m.w1a) + " and lokr_w1_b " + sh(m.w1b) + " are not [a, r] and [r, c]";
            a = m.w1a.shape()[0], c = m.w1b.shape()[1];
        }
        if (!w2_split) {
            if (m.w2.dim() != 2 && m.w2.dim() != 4) return "lokr_w2 must be [b, d] or [b, d, kh, kw], got " + sh(m.w2);
            b = m.w2.shape()[0], D = m.w2.shape()[1];
            if (m.w2.dim() == 4) kernel = {m.w2.shape()[2], m.w2.shape()[3]};
        } else if (m.t2.defined()) {
            if (m.t2.dim() != 4 || m.w2a.dim() != 2 || m.w2b.dim() != 2 || m.t2.shape()[0] != m.w2a.shape()[0] ||
                m.t2.shape()[1] != m.w2b.shape()[0])
                return "Tucker factors lokr_t2 " + sh(m.t2) + ", lokr_w2_a " + sh(m.w2a) + ", lokr_w2_b " + sh(m.w2b) +
                       " do not fit together (t [r, r, kh, kw], w2_a [r, b], w2_b [r, d])";
            b = m.w2a.shape()[1], D = m.w2b.shape()[1];
            kernel = {m.t2.shape()[2], m.t2.shape()[3]};
        } else {
            if (m.w2a.dim() != 2 || m.w2b.dim() != 2 || m.w2a.shape()[1] != m.w2b.shape()[0])
                return "lokr_w2_a " + sh(m.w2a) + " and lokr_w2_b " + sh(m.w2b) + " are not [b, r] and [r, d]";
            b = m.w2a.shape()[0], D = m.w2b.shape()[1];
        }
        m.delta_shape = kernel.empty() ? Shape{a * b, c * D} : Shape{a * b, c * D, kernel[0], kernel[1]};
        // A1111 (network_lokr.py): the rank is lokr_w2_b's first dim when W2 is split, else lokr_w1_b's; with neither
        // split there is no rank and the scale is 1 (LyCORIS lokr.py: "use scale = 1" when both are full matrices).
        if (w2_split) m.rank = rows(m.w2b);
        else if (w1_split) m.rank = rows(m.w1b);
        else {
            m.rank = 1;
            m.alpha = 1.0;
            return "";
        }
    }
    for (int64_t d : m.delta_shape)
        if (d <= 0) return "empty factors";
    // LyCORIS (loha.py / lokr.py): alpha absent or 0 means alpha = rank, i.e. scale alpha / rank = 1. (A1111 agrees
    // when it is absent; it would scale by 0 for a stored 0.)
    m.alpha = !has_alpha || alpha == 0.0 ? double(m.rank) : alpha;
    return "";
}

}  // namespace

std::shared_ptr<const LoraFile> LoraFile::open(const std::string& path, bool lenient) {
    auto file = io::SafetensorsFile::open(path);
    auto out = std::make_shared<LoraFile>();
    out->path_ = path;
    out->lenient_ = lenient;

    // module (component + name) -> its tensors, in the file's (sorted) order.
    std::vector<std::pair<std::string, std::string>> order;  // (component, module name as in the file)
    std::map<std::string, Parts> parts;
    std::vector<std::string> unknown, bad_dtype;
    std::set<std::string> unsupported_kinds;
    int kohya = 0, peft = 0;
    for (const auto& t : file->header().tensors) {
        const std::string& k = t.name;
        std::string comp, module, part;
        std::set<LoraKind> kinds;
        bool is_kohya = false;
        for (const auto& [p, c] : kKohyaPrefixes) {
            if (!starts_with(k, p)) continue;
            auto take = [&](const std::string& suf) {
                if (!ends_with(k, suf) || k.size() <= p.size() + suf.size()) return false;
                comp = c;
                module = k.substr(0, k.size() - suf.size());
                part = suf;
                is_kohya = true;
                return true;
            };
            for (const auto& [suf, kind] : kKohyaParts)
                if (take(suf)) kinds.insert(kind);
            take(".alpha");
            break;
        }
        if (comp.empty()) {
            for (const auto& [p, c] : kPeftPrefixes) {
                if (!starts_with(k, p)) continue;
                for (const char* suf : {".lora_A.weight", ".lora_B.weight"}) {
                    if (ends_with(k, suf) && k.size() > p.size() + std::strlen(suf)) {
                        comp = c;
                        module = k.substr(0, k.size() - std::strlen(suf));
                        part = suf;
                        kinds.insert(LoraKind::LORA);
                    }
                }
                break;
            }
        }
        if (comp.empty()) {
            unknown.push_back(k);
            for (const auto& [suf, what] : kUnsupported)
                if (ends_with(k, suf)) unsupported_kinds.insert(what);
            continue;
        }
        if (!t.loads_as_f32()) {  // F32/F16/BF16, and fp8 (widened as checkpoints are)
            bad_dtype.push_back(k + " (" + t.dtype_name + ")");
            continue;
        }
        (is_kohya ? kohya : peft)++;
        auto [it, fresh] = parts.emplace(module, Parts{});
        if (fresh) order.emplace_back(comp, module);
        it->second.keys[part] = k;
        it->second.kinds.insert(kinds.begin(), kinds.end());
    }
    if (!bad_dtype.empty())
        fail(ErrorCode::BAD_MODEL_FILE, path, ": LoRA tensors must be F32, F16 or BF16: ", list_of(bad_dtype));
    if (kohya && peft)
        fail(ErrorCode::BAD_MODEL_FILE, path, ": mixes kohya (lora_unet_/lora_te*_ ... .lora_down/.lora_up) and "
             "diffusers/PEFT (unet./text_encoder* ... .lora_A/.lora_B) keys");
    if (!unknown.empty()) {
        if (!lenient) {
            if (!unsupported_kinds.empty()) {
                std::vector<std::string> kinds(unsupported_kinds.begin(), unsupported_kinds.end());
                std::string named;
                for (size_t i = 0; i < kinds.size(); ++i) named += (i ? ", " : "") + kinds[i];
                fail(ErrorCode::BAD_MODEL_FILE, path, ": has ", named, " tensors, a kind of LoRA that is not "
                     "supported (only LoRA/LoCon, LyCORIS LoHa and LoKr are): ", unknown.size(), " key(s) ",
                     list_of(unknown), " (load leniently to skip them)");
            }
            fail(ErrorCode::BAD_MODEL_FILE, path, ": ", unknown.size(), " key(s) that are not LoRA tensors of a "
                 "known format (kohya lora_unet_/lora_te1_/lora_te2_ .lora_down.weight/.lora_up.weight/.alpha or "
                 "LyCORIS .hada_*/.lokr_*, or diffusers/PEFT unet./text_encoder./text_encoder_2. "
                 ".lora_A.weight/.lora_B.weight): ", list_of(unknown), " (load leniently to skip them)");
        }
        out->ignored_ = unknown;
    }
    if (parts.empty()) fail(ErrorCode::BAD_MODEL_FILE, path, ": no LoRA tensors in the file");
    out->format_ = kohya ? "kohya" : "peft";

    // PEFT in diffusers 0.31 has no alpha: each component's lora_alpha is the rank of its first lora_B key in
    // state-dict (= file) order, so a module's scale is first_rank / own_rank.
    std::map<std::string, int64_t> first_rank;
    std::vector<std::string> errors;
    for (const auto& [comp, module] : order) {
        const Parts& pr = parts[module];
        if (pr.kinds.size() > 1) {
            std::string k;
            for (LoraKind kind : pr.kinds) k += std::string(k.empty() ? "" : " and ") + kind_name(kind);
            errors.push_back(module + " mixes " + k + " tensors");
            continue;
        }
        if (pr.kinds.empty()) {
            errors.push_back(module + " has an alpha but no LoRA tensors");
            continue;
        }
        LoraModule m;
        m.component = comp;
        m.name = module;
        m.kind = *pr.kinds.begin();
        const bool has_alpha = !pr.key(".alpha").empty();
        double alpha = 0;
        if (has_alpha) {
            const Tensor a = file->get_f32(pr.key(".alpha"));
            if (a.numel() != 1) {
                errors.push_back(pr.key(".alpha") + " has shape " + shape_str(a.shape()) + ", an alpha is one number");
                continue;
            }
            alpha = double(a.data<float>()[0]);
            if (!std::isfinite(alpha)) {
                errors.push_back(pr.key(".alpha") + " is not finite");
                continue;
            }
        }
        if (kohya) {
            const std::string prefix = comp == "unet" ? "lora_unet_" : comp == "text_encoder" ? "lora_te1_" : "lora_te2_";
            m.kohya = module.substr(prefix.size());
        } else {
            m.path = module.substr(comp.size() + 1);
        }
        if (m.kind != LoraKind::LORA) {
            std::vector<std::string> missing;
            auto get = [&](const char* part, Tensor* dst) {
                const std::string key = pr.key(part);
                if (!key.empty()) *dst = file->get_f32(key).contiguous();
            };
            get(".hada_w1_a", &m.w1a), get(".hada_w1_b", &m.w1b), get(".hada_w2_a", &m.w2a), get(".hada_w2_b", &m.w2b);
            get(".hada_t1", &m.t1), get(".hada_t2", &m.t2);
            get(".lokr_w1", &m.w1), get(".lokr_w1_a", &m.w1a), get(".lokr_w1_b", &m.w1b);
            get(".lokr_w2", &m.w2), get(".lokr_w2_a", &m.w2a), get(".lokr_w2_b", &m.w2b), get(".lokr_t2", &m.t2);
            if (m.kind == LoraKind::LOHA)
                for (const char* p : {".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b"})
                    if (pr.key(p).empty()) missing.push_back(p + 1);
            if (!missing.empty()) {
                std::string l;
                for (const auto& s : missing) l += (l.empty() ? "" : ", ") + s;
                errors.push_back(module + " (LoHa) has no " + l);
                continue;
            }
            std::string why;
            for (const Tensor* t : {&m.w1a, &m.w1b, &m.w2a, &m.w2b, &m.t1, &m.t2, &m.w1, &m.w2})
                if (t->defined() && (t->dim() < 2 || t->numel() == 0))
                    why = "a factor of shape " + shape_str(t->shape()) + " is not a non-empty matrix";
            if (why.empty()) why = lycoris_shapes(m, has_alpha, alpha);
            if (!why.empty()) {
                errors.push_back(module + " (" + kind_name(m.kind) + "): " + why);
                continue;
            }
            out->modules_.push_back(std::move(m));
            continue;
        }
        const std::string down = pr.key(kohya ? ".lora_down.weight" : ".lora_A.weight");
        const std::string up = pr.key(kohya ? ".lora_up.weight" : ".lora_B.weight");
        const char* dn = kohya ? "lora_down" : "lora_A";
        const char* un = kohya ? "lora_up" : "lora_B";
        if (down.empty() || up.empty()) {
            errors.push_back(module + " has " + (down.empty() ? std::string("no ") + dn : std::string(dn)) +
                             (up.empty() ? std::string(" but no ") + un : std::string(" and ") + un));
            continue;
        }
        const Shape& ds = file->find(down)->shape;
        const Shape& us = file->find(up)->shape;
        bool ok = (ds.size() == 2 || ds.size() == 4) && (us.size() == 2 || us.size() == 4) && ds[0] > 0 &&
                  us[0] > 0 && us[1] == ds[0] && (us.size() == 2 || (us[2] == 1 && us[3] == 1));
        for (int64_t d : ds) ok = ok && d > 0;
        if (!ok) {
            errors.push_back(module + ": " + dn + " " + shape_str(ds) + " and " + un + " " + shape_str(us) +
                             " are not a rank-r pair (down [r, in] or [r, in, kh, kw], up [out, r] or [out, r, 1, 1])");
            continue;
        }
        m.rank = ds[0];
        m.down = file->get_f32(down);
        m.up = file->get_f32(up);
        if (kohya) {
            m.alpha = has_alpha ? alpha : double(m.rank);  // kohya's default: alpha = rank
        } else {
            auto fr = first_rank.emplace(comp, m.rank).first;
            m.alpha = double(fr->second);
        }
        out->modules_.push_back(std::move(m));
    }
    if (!errors.empty())
        fail(ErrorCode::BAD_MODEL_FILE, path, ": ", errors.size(), " bad LoRA module(s): ", list_of(errors));
    return out;
}

namespace {

// kohya's name of every weight of a component ("_"-joined module path) -> the diffusers module path. For the UNet
// also the SGM numbering, derived from the config through the single-file key map (one map for both uses).
std::map<std::string, std::string> kohya_names(const nn::WeightTable& table, const std::string& component,
                                               const api::UNetConfig* unet_config) {
    std::map<std::string, std::string> out;
    std::map<std::string, int> seen;
    auto underscore = [](std::string s) {
        std::replace(s.begin(), s.end(), '.', '_');
        return s;
    };
    auto add = [&](const std::string& kohya, const std::string& module) {
        if (++seen[kohya] > 1 && out[kohya] != module) out[kohya] = "";  // ambiguous: matches nothing
        else out[kohya] = module;
    };
    std::unique_ptr<SgmKeyMap> sgm;
    if (component == "unet" && unet_config) sgm = std::make_unique<SgmKeyMap>(SgmKeyMap::unet(*unet_config, ""));
    for (const auto& key : table.keys()) {
        if (!ends_with(key, ".weight")) continue;
        const std::string module = key.substr(0, key.size() - 7);
        add(underscore(module), module);
        SgmSource src;
        if (sgm && sgm->to_checkpoint(key, &src) && ends_with(src.key, ".weight"))
            add(underscore(src.key.substr(0, src.key.size() - 7)), module);
    }
    return out;
}

struct Target {
    std::string module;  // the diffusers module path
    Tensor weight;       // the model's tensor "<module>.weight" (any device/dtype)
    const LoraModule* lora;
    double scale;        // s * alpha / r
    bool fused;
};

// Does the module's ΔW fit weight [out, in(, kh, kw)]? LoRA: up [out, r(,1,1)] @ down [r, in(,kh,kw)]; LoHa / LoKr:
// delta_shape, or [out, in * kh * kw] for a conv.
bool fits(const LoraModule& m, const Shape& w) {
    if (w.size() != 2 && w.size() != 4) return false;
    if (m.kind != LoraKind::LORA) {
        const Shape& d = m.delta_shape;
        if (d.size() == 4) return d == w;
        return d[0] == w[0] && d[1] == shape_numel(w) / w[0];
    }
    const Shape& d = m.down.shape();
    const Shape& u = m.up.shape();
    if (u[0] != w[0]) return false;
    if (w.size() == 2) return d.size() == 2 ? d[1] == w[1] : (d[1] == w[1] && d[2] == 1 && d[3] == 1);
    if (d.size() == 4) return d[1] == w[1] && d[2] == w[2] && d[3] == w[3];
    return w[2] == 1 && w[3] == 1 && d[1] == w[1];  // a 1x1 conv with a 2-D down
}

// Writes `values` (CPU, contiguous, the weight's shape; any float dtype) into the model's weight in its dtype and device.
void write_weight(const Tensor& weight, const Tensor& values) {
    SDXL_CHECK(weight.is_contiguous(), "LoRA: weight ", weight.describe(), " is not contiguous");
    const Tensor typed = values.to(weight.dtype());
    const size_t nbytes = size_t(weight.numel()) * dtype_size(weight.dtype());
    if (weight.device() == Device::CPU) {
        weight.storage()->prepare_write(size_t(weight.offset()) * dtype_size(weight.dtype()), nbytes);
        std::memcpy(weight.raw_data(), typed.raw_data(), nbytes);
    } else {
        device::copy_host_to_device(weight.raw_data(), typed.raw_data(), nbytes);
    }
}

// The original values of a touched weight: its saved copy, or (saved undefined) the file bytes behind its mapping.
Tensor original_of(const Tensor& weight, const Tensor& saved) {
    if (saved.defined()) return saved;
    Tensor t = Tensor::empty(weight.shape(), weight.dtype());
    const size_t es = dtype_size(weight.dtype());
    weight.storage()->read_original(size_t(weight.offset()) * es, size_t(weight.numel()) * es, t.raw_data());
    return t;
}

// Gives a touched weight its original bytes back (for a file-backed one also the memory of its private pages).
void restore_weight(const Tensor& weight, const Tensor& saved) {
    if (saved.defined()) {
        write_weight(weight, saved);  // same dtype: a plain byte copy
        return;
    }
    const size_t es = dtype_size(weight.dtype());
    weight.storage()->restore_original(size_t(weight.offset()) * es, size_t(weight.numel()) * es);
}

// The run-time adapter of one layer (weight `w`) from its unfused targets: the low-rank ones stacked, each scale
// folded into its columns of up; the LoHa / LoKr deltas scaled and summed. In w's dtype and device.
std::shared_ptr<const nn::Adapter> make_adapter(const std::vector<const Target*>& list, const Tensor& w) {
    const Shape& ws = w.shape();
    const bool conv = ws.size() == 4;
    const int64_t out = ws[0], in = ws[1];
    std::vector<Tensor> downs, ups;
    Tensor dense;
    for (const Target* t : list) {
        const LoraModule& m = *t->lora;
        const float sc = float(t->scale);
        if (m.kind == LoraKind::LORA) {
            const int64_t r = m.rank;
            // down: [r, in] (linear) or [r, in, kh, kw] (conv; a 2-D down of a 1x1 conv gets its 1x1)
            downs.push_back(conv ? m.down.contiguous().view({r, in, ws[2], ws[3]}) : m.down.contiguous().view({r, in}));
            Tensor u = m.up.contiguous().view({out, r}).clone();  // [out, r] * s * alpha / r
            float* p = u.data<float>();
            for (int64_t i = 0; i < u.numel(); ++i) p[i] *= sc;
            ups.push_back(u);
        } else {
            const Tensor d = lycoris_delta(m);
            if (!dense.defined()) dense = Tensor::zeros(ws, DType::F32);
            float* acc = dense.data<float>();
            const float* v = d.data<float>();
            for (int64_t i = 0; i < dense.numel(); ++i) acc[i] += v[i] * sc;
        }
    }
    auto place = [&](const Tensor& t) { return t.to(w.dtype()).to(w.device()); };
    auto a = std::make_shared<nn::Adapter>();
    if (!downs.empty()) {
        a->down = place(downs.size() == 1 ? downs[0] : ops::concat(downs, 0));  // [R, in(, kh, kw)]
        Tensor u = ups.size() == 1 ? ups[0] : ops::concat(ups, 1);            // [out, R]
        if (conv) u = u.view({out, u.shape()[1], 1, 1});
        a->up = place(u);
    }
    if (dense.defined()) a->dense = place(dense);
    return a;
}

}  // namespace

LoraApplied apply_loras(nn::WeightTable& table, const std::string& component, const api::UNetConfig* unet_config,
                        const LoraStack& loras) {
    std::lock_guard<std::mutex> guard(table.overlay_mutex);
    std::map<std::string, std::string> kohya;
    bool kohya_built = false;
    std::vector<Target> targets;
    LoraApplied result;
    std::vector<std::string> unmatched;
    for (const LoraEntry& e : loras) {
        SDXL_CHECK(e.file != nullptr, "LoRA: null file");
        if (!std::isfinite(e.scale)) fail(ErrorCode::INVALID_ARGUMENT, "LoRA scale must be finite, got ", e.scale);
        for (const auto& m : e.file->modules()) {
            if (m.component != component) continue;
            std::string module = m.path;
            if (!m.kohya.empty()) {
                if (!kohya_built) kohya = kohya_names(table, component, unet_config), kohya_built = true;
                auto it = kohya.find(m.kohya);
                module = it == kohya.end() ? "" : it->second;
            }
            Tensor w = module.empty() ? Tensor() : table.find(module + ".weight");
            std::string why;
            if (!w.defined()) {
                why = "no such module in the " + component;
            } else if (!fits(m, w.shape())) {
                why = m.kind == LoraKind::LORA
                          ? "down " + shape_str(m.down.shape()) + " / up " + shape_str(m.up.shape())
                          : std::string(kind_name(m.kind)) + " delta " + shape_str(m.delta_shape);
                why += " do not fit the weight " + shape_str(w.shape());
            } else if (!e.fused && !table.find_slot(module)) {
                why = "no layer to attach a run-time adapter to";
            }
            if (!why.empty()) {
                (e.file->lenient() ? result.skipped : unmatched).push_back(e.file->path() + ": " + m.name + " (" + why + ")");
                continue;
            }
            targets.push_back(Target{module, w, &m, e.scale * m.alpha / double(m.rank), e.fused});
        }
    }
    if (!unmatched.empty())
        fail(ErrorCode::BAD_MODEL_FILE, unmatched.size(), " LoRA module(s) match no weight of the ", component, ": ",
             list_of(unmatched));

    // Run-time adapters first (built aside: an error leaves everything as it was).
    std::map<std::string, std::vector<const Target*>> by_module;
    for (const auto& t : targets)
        if (!t.fused) by_module[t.module].push_back(&t);
    std::map<std::string, std::shared_ptr<const nn::Adapter>> adapters;
    for (const auto& [module, list] : by_module) adapters[module] = make_adapter(list, list.front()->weight);

    // Every key changed now or before: recomputed from its original, or given its original back.
    std::map<std::string, std::vector<const Target*>> by_key;
    for (const auto& t : targets)
        if (t.fused) by_key[t.module + ".weight"].push_back(&t);
    for (const auto& kv : table.originals) by_key[kv.first];
    for (const auto& [key, list] : by_key) {
        Tensor w = list.empty() ? table.find(key) : list.front()->weight;
        auto orig = table.originals.find(key);
        if (!w.defined()) {  // the model dropped it (cannot happen while the model lives); forget the copy
            if (orig != table.originals.end()) table.originals.erase(orig);
            continue;
        }
        if (list.empty()) {  // no fused LoRA touches it any more: the exact original bytes back
            restore_weight(w, orig->second);
            table.originals.erase(orig);
            continue;
        }
        if (orig == table.originals.end()) {
            // A view into a weight file keeps no copy: the file still has the bytes (the mapping is copy-on-write).
            const bool file_backed = w.device() == Device::CPU && w.is_contiguous() && w.storage()->has_original();
            orig = table.originals.emplace(key, file_backed ? Tensor() : w.to(Device::CPU).clone()).first;  // exact
        }
        // [out, K], a tensor of its own: the saved copy cloned, or the file's bytes read into a new one.
        Tensor acc = orig->second.defined() ? orig->second.to(DType::F32).clone() : original_of(w, Tensor()).to(DType::F32);
        float* W = acc.data<float>();
        const int64_t out = w.shape()[0], K = w.numel() / out;
        for (const Target* t : list) {
            const float sc = float(t->scale);
            if (t->lora->kind != LoraKind::LORA) {
                const Tensor d = lycoris_delta(*t->lora);  // [out, K] in memory order
                const float* D = d.data<float>();
                parallel_for(out * K, 1 << 14, [&](int64_t b, int64_t e) {
                    for (int64_t j = b; j < e; ++j) W[j] += D[j] * sc;
                });
                continue;
            }
            const int64_t r = t->lora->rank;
            const Tensor up = t->lora->up.contiguous().view({out, r}), down = t->lora->down.contiguous().view({r, K});
            // W += (up @ down) * scale: the product in fp32 (one sgemm on the CPU), then scaled, as PEFT's
            // get_delta_weight.
            const Tensor product = ops::matmul(up, down);  // [out, K]
            const float* P = product.data<float>();
            parallel_for(out * K, 1 << 14, [&](int64_t b, int64_t e) {
                for (int64_t j = b; j < e; ++j) W[j] += P[j] * sc;
            });
        }
        write_weight(w, acc);
    }

    for (const auto& [module, slot] : table.slots()) {
        auto it = adapters.find(module);
        if (it != adapters.end()) {
            slot->set(it->second);
            result.adapters_changed = true;
        } else if (slot->get()) {
            slot->set(nullptr);
            result.adapters_changed = true;
        }
    }
    table.version.fetch_add(1);
    return result;
}

}  // namespace sdxl::models
