// torchsde.BrownianTree (torchsde 0.2.6: derived.BrownianTree -> brownian_interval.BrownianInterval with
// halfway_tree=True, tol=1e-6, pool_size=24, no Levy area), reproduced value for value for float32 samples on
// the CPU, so that diffusers' DPMSolverSDEScheduler(noise_sampler_seed=s) noise can be drawn natively.
//
// What torchsde does, and what this class replays:
//  * Times are Python floats, quantised with round(x, 6) (tol 1e-6; Python's correctly rounded decimal
//    rounding, ties to even) at every interval edge and query.
//  * The root [round(t0), round(t1)] holds W = randn(seed_W) * sqrt(t1 - t0) (unrounded times), where
//    (seed_W, seed_H, seed_A) = SeedSequence(entropy, pool_size=24).generate_state(3) and randn(seed) is
//    torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed)) in float32.
//  * A query [ta, tb] (clamped to the root) is located in a binary tree of intervals: an interval that must be
//    split is split at round(0.5 * (end + start)), repeatedly (the "halfway tree"), until the query edge is a
//    split point; a query spanning existing split points returns several intervals whose W are summed
//    left to right in float32. Each split interval draws its seeds from
//    SeedSequence(entropy, spawn_key=(key, depth), pool_size=24).generate_state(4)[0] (root key 0, depth 0;
//    children 2 key + 0/1, depth + 1).
//  * A child's W comes from its parent's W (Brownian bridge), in float32 torch operations with Python-float
//    coefficients cast to float32: left = (W * float(m - s)) * float(1 / (e - s)) + randn(parent seed) *
//    float(sqrt((m - s) * (e - m) / (e - s))); right = W - left.
// torchsde's LRU cache (45 entries) only saves recomputation; values do not depend on it (this one holds up to
// 64 MiB of W, at least 45 entries, and keeps both children of each bridge draw). Neither do query
// order or the interval the search starts from: the tree a query creates depends only on the queries.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace sdxl::schedulers {

// Python's round(x, ndigits) for a float (correctly rounded to ndigits decimals, ties to even).
double python_round(double x, int ndigits);

class TorchsdeBrownianTree {
public:
    // torchsde.BrownianTree(t0, w0=zeros(shape, float32), t1, entropy=entropy) (t0 <= t1).
    TorchsdeBrownianTree(double t0, double t1, const Shape& shape, uint64_t entropy, double tol = 1e-6,
                         int pool_size = 24);
    ~TorchsdeBrownianTree();

    // tree(ta, tb): the increment W(tb) - W(ta) in float32, row-major over shape (ta <= tb after clamping).
    std::vector<float> increment(double ta, double tb);

    int64_t numel() const { return numel_; }
    size_t node_count() const { return node_count_; }

private:
    struct Node;
    Node* make_node(double start, double end, Node* parent, bool is_left);
    double round_t(double x) const { return python_round(x, ndigits_); }
    void split(Node* n, double midway);
    void split_exact(Node* n, double midway);
    void locate(Node* n, double ta, double tb, std::vector<Node*>& out);
    std::vector<float> w_of(Node* n);
    std::vector<float> randn(uint32_t seed) const;
    void cache_put(Node* n, std::vector<float> w);

    int64_t numel_ = 0;
    Shape shape_;
    uint64_t entropy_ = 0;
    int ndigits_ = 6;
    int pool_size_ = 24;
    std::unique_ptr<Node> root_;
    std::vector<float> root_w_;
    size_t node_count_ = 0;
    // Recently computed W of non-root intervals (an LRU like torchsde's, sized by bytes): speed only.
    std::list<Node*> lru_;
    size_t cache_entries_ = 45;
    static constexpr size_t kMinCacheEntries = 45;
    static constexpr size_t kCacheBytes = size_t(64) << 20;
};

}  // namespace sdxl::schedulers
