// torchsde.BrownianTree replay (see the header for the algorithm).
#include "schedulers/brownian_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "core/random.h"
#include "schedulers/numpy_seed_sequence.h"

namespace sdxl::schedulers {

double python_round(double x, int ndigits) {
    if (!std::isfinite(x) || x == 0.0) return x;
    // Python: ndigits beyond what a double can hold returns x unchanged; far below, 0 with x's sign.
    if (ndigits > 323) return x;
    if (ndigits < -308) return 0.0 * x;
    if (ndigits < 0) fail(ErrorCode::INTERNAL, "python_round: negative ndigits not supported");
    // glibc printf converts exactly and rounds to nearest, ties to even, like Python's _Py_dg_dtoa mode 3;
    // strtod converts back correctly rounded like _Py_dg_strtod.
    char buf[512];
    const int len = std::snprintf(buf, sizeof buf, "%.*f", ndigits, x);
    if (len <= 0 || len >= int(sizeof buf)) return x;  // |x| >= 1e300-ish: already an integer at 6 digits
    return std::strtod(buf, nullptr);
}

struct TorchsdeBrownianTree::Node {
    double start = 0, end = 0;
    Node* parent = nullptr;
    bool is_left = false;
    bool has_midway = false;
    double midway = 0;
    uint64_t spawn_key = 0;
    int depth = 0;
    uint32_t w_seed = 0;
    std::unique_ptr<Node> left, right;
    // cached W (empty when not cached) and its place in the LRU list
    std::vector<float> w;
    std::list<Node*>::iterator lru_pos;
    bool cached = false;
};

TorchsdeBrownianTree::TorchsdeBrownianTree(double t0, double t1, const Shape& shape, uint64_t entropy, double tol,
                                           int pool_size)
    : shape_(shape), entropy_(entropy), pool_size_(pool_size) {
    if (!(t0 <= t1)) fail(ErrorCode::INVALID_ARGUMENT, "BrownianTree: t0 ", t0, " > t1 ", t1);
    if (!(tol > 0)) fail(ErrorCode::INVALID_ARGUMENT, "BrownianTree: tol must be positive");
    numel_ = shape_numel(shape);
    // torchsde keeps 45 entries; a bigger cache saves recomputation without changing any value.
    cache_entries_ = std::max<size_t>(kMinCacheEntries, kCacheBytes / (sizeof(float) * size_t(std::max<int64_t>(numel_, 1))));
    ndigits_ = -int(std::log10(tol));  // Python: -int(math.log10(tol))
    root_.reset(make_node(t0, t1, nullptr, false));
    // SeedSequence(entropy, pool_size).generate_state(3): W, H, A seeds of the whole interval.
    const NumpySeedSequence ss(NumpySeedSequence::int_words(entropy_), {}, pool_size_);
    const uint32_t w_seed = ss.generate_state_u32(3)[0];
    root_w_ = randn(w_seed);
    const float scale = float(std::sqrt(t1 - t0));
    for (float& v : root_w_) v = v * scale;
}

TorchsdeBrownianTree::~TorchsdeBrownianTree() = default;

TorchsdeBrownianTree::Node* TorchsdeBrownianTree::make_node(double start, double end, Node* parent, bool is_left) {
    Node* n = new Node;
    n->start = round_t(start);
    n->end = round_t(end);
    n->parent = parent;
    n->is_left = is_left;
    ++node_count_;
    return n;
}

std::vector<float> TorchsdeBrownianTree::randn(uint32_t seed) const {
    Generator g(seed);
    std::vector<float> v(static_cast<size_t>(numel_));
    g.randn(v.data(), numel_);
    return v;
}

void TorchsdeBrownianTree::split(Node* n, double midway) {
    // halfway tree: split at the (rounded) centre, then keep splitting the side that holds `midway`.
    for (int guard = 0;; ++guard) {
        if (guard > 2000) fail(ErrorCode::INTERNAL, "BrownianTree: split does not terminate");
        split_exact(n, 0.5 * (n->end + n->start));
        if (midway > n->midway)
            n = n->right.get();
        else if (midway < n->midway)
            n = n->left.get();
        else
            return;
    }
}

void TorchsdeBrownianTree::split_exact(Node* n, double midway) {
    n->midway = round_t(midway);
    n->has_midway = true;
    if (n->parent) {
        if (n->parent->depth >= 63) fail(ErrorCode::INTERNAL, "BrownianTree: tree deeper than 64 levels");
        n->spawn_key = 2 * n->parent->spawn_key + (n->is_left ? 0 : 1);
        n->depth = n->parent->depth + 1;
    } else {
        n->spawn_key = 0;
        n->depth = 0;
    }
    std::vector<uint32_t> key = NumpySeedSequence::int_words(n->spawn_key);
    const std::vector<uint32_t> depth = NumpySeedSequence::int_words(uint64_t(n->depth));
    key.insert(key.end(), depth.begin(), depth.end());
    const NumpySeedSequence ss(NumpySeedSequence::int_words(entropy_), key, pool_size_);
    n->w_seed = ss.generate_state_u32(4)[0];  // W, H, left A, right A seeds; only W is used without Levy area
    // Children get the unrounded midway; their constructor rounds it (to n->midway).
    n->left.reset(make_node(n->start, midway, n, true));
    n->right.reset(make_node(midway, n->end, n, false));
}

void TorchsdeBrownianTree::locate(Node* n, double ta, double tb, std::vector<Node*>& out) {
    for (int guard = 0;; ++guard) {
        if (guard > 100000) fail(ErrorCode::INTERNAL, "BrownianTree: search does not terminate");
        if (ta < n->start || tb > n->end) {
            if (!n->parent) fail(ErrorCode::INTERNAL, "BrownianTree: query outside the root interval");
            n = n->parent;
            continue;
        }
        if (ta == n->start && tb == n->end) {
            out.push_back(n);
            return;
        }
        if (!n->has_midway) {
            if (ta == n->start) {
                split(n, tb);
                n = n->left.get();
            } else {
                split(n, ta);
                n = n->right.get();
            }
            continue;
        }
        if (tb <= n->midway) {
            n = n->left.get();
            continue;
        }
        if (ta >= n->midway) {
            n = n->right.get();
            continue;
        }
        // spans the midpoint: left part first, then the right part
        const double mid = n->midway;
        locate(n->left.get(), ta, mid, out);
        n = n->right.get();
        ta = mid;
    }
}

void TorchsdeBrownianTree::cache_put(Node* n, std::vector<float> w) {
    if (n->cached) {
        lru_.erase(n->lru_pos);
    } else if (lru_.size() >= cache_entries_) {
        Node* old = lru_.back();
        lru_.pop_back();
        old->cached = false;
        std::vector<float>().swap(old->w);
    }
    n->w = std::move(w);
    lru_.push_front(n);
    n->lru_pos = lru_.begin();
    n->cached = true;
}

std::vector<float> TorchsdeBrownianTree::w_of(Node* n) {
    // Walk up to the root or a cached interval, then come down applying the bridge.
    std::vector<Node*> path;
    Node* a = n;
    while (a != root_.get() && !a->cached) {
        path.push_back(a);
        a = a->parent;
    }
    std::vector<float> w = a == root_.get() ? root_w_ : a->w;
    if (a != root_.get()) lru_.splice(lru_.begin(), lru_, a->lru_pos);  // most recently used
    for (auto it = path.rbegin(); it != path.rend(); ++it) {
        Node* c = *it;
        const Node* p = c->parent;
        const double h_reciprocal = 1 / (p->end - p->start);
        const double left_diff = p->midway - p->start;
        const double right_diff = p->end - p->midway;
        const double var = left_diff * right_diff * h_reciprocal;
        const float f_left = float(left_diff), f_h = float(h_reciprocal), f_sd = float(std::sqrt(var));
        const std::vector<float> noise = randn(p->w_seed);
        // Both children come from the same draw: keep the sibling too (queries usually need it next).
        std::vector<float> sibling(w.size());
        for (size_t k = 0; k < w.size(); ++k) {
            const float mean = (w[k] * f_left) * f_h;
            const float left_w = mean + noise[k] * f_sd;
            const float right_w = w[k] - left_w;
            w[k] = c->is_left ? left_w : right_w;
            sibling[k] = c->is_left ? right_w : left_w;
        }
        Node* other = c->is_left ? p->right.get() : p->left.get();
        if (!other->cached) cache_put(other, std::move(sibling));
        cache_put(c, w);
    }
    return w;
}

std::vector<float> TorchsdeBrownianTree::increment(double ta, double tb) {
    const double t0 = root_->start, t1 = root_->end;
    if (ta < t0) ta = t0;
    if (tb < t0) tb = t0;
    if (ta > t1) ta = t1;
    if (tb > t1) tb = t1;
    if (ta > tb) fail(ErrorCode::INVALID_ARGUMENT, "BrownianTree: query ta ", ta, " > tb ", tb);
    if (ta == tb) return std::vector<float>(size_t(numel_), 0.0f);
    std::vector<Node*> intervals;
    locate(root_.get(), round_t(ta), round_t(tb), intervals);
    std::vector<float> w = w_of(intervals[0]);
    for (size_t i = 1; i < intervals.size(); ++i) {
        const std::vector<float> wi = w_of(intervals[i]);
        for (size_t k = 0; k < w.size(); ++k) w[k] = w[k] + wi[k];
    }
    return w;
}

}  // namespace sdxl::schedulers
