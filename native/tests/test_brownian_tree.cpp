// numpy SeedSequence port, Python's round(x, 6) and the torchsde BrownianTree replay
// (schedulers/numpy_seed_sequence.h, schedulers/brownian_tree.h).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "check.h"
#include "schedulers/brownian_tree.h"
#include "schedulers/numpy_seed_sequence.h"
#include "schedulers/simd_log.h"

using namespace sdxl;
using namespace sdxl::schedulers;

namespace {

NumpySeedSequence seq(uint64_t entropy, std::vector<uint64_t> spawn_key, int pool_size) {
    std::vector<uint32_t> key;
    for (uint64_t k : spawn_key) {
        const std::vector<uint32_t> w = NumpySeedSequence::int_words(k);
        key.insert(key.end(), w.begin(), w.end());
    }
    return NumpySeedSequence(NumpySeedSequence::int_words(entropy), key, pool_size);
}

}  // namespace

// Expected values produced with numpy 2.4.6 (python3):
//   ss = np.random.SeedSequence(entropy, spawn_key=..., pool_size=...)
//   ss.generate_state(4)              # uint32
//   ss.generate_state(2, np.uint64)
SDXL_TEST(test_seed_sequence_matches_numpy) {
    struct Case {
        uint64_t entropy;
        std::vector<uint64_t> spawn_key;
        int pool_size;
        std::vector<uint32_t> u32;
        std::vector<uint64_t> u64;
    };
    const std::vector<Case> cases = {
        {1234, {}, 24, {4280268349u, 3829106894u, 2675148735u, 1502016262u},
         {16445888886898406973ull, 6451110726025316287ull}},
        {1234, {0, 0}, 24, {840100010u, 4216861537u, 2835682605u, 1180521712u},
         {18111282394015393962ull, 5070302148093613357ull}},
        {1234, {5, 3}, 24, {1860635963u, 869273324u, 1971674113u, 2280051663u},
         {3733500499725847867ull, 9792747327747087361ull}},
        {77, {1, 1}, 24, {1578268033u, 651135818u, 378066718u, 2968787396u},
         {2796607045142476161ull, 12750844774975067934ull}},
        {9223372036854775807ull, {123456, 17}, 24, {431392902u, 3512133968u, 156692500u, 181921889u},
         {15084500532162103430ull, 781348563838234644ull}},
        {0, {}, 4, {2968811710u, 3677149159u, 745650761u, 2884920346u},
         {15793235383387715774ull, 12390638538380655177ull}},
        {1099511627781ull, {8589934593ull}, 4, {1878414709u, 1634936114u, 2896735284u, 1221395684u},
         {7021997142557742453ull, 5245854521152285748ull}},
        {12345678901234567890ull, {}, 8, {2680227729u, 4135356676u, 2867028976u, 3726013316u},
         {17761221683395495825ull, 16003105339547542512ull}},
    };
    for (const Case& c : cases) {
        const NumpySeedSequence s = seq(c.entropy, c.spawn_key, c.pool_size);
        CHECK_MSG(s.generate_state_u32(4) == c.u32, "entropy " << c.entropy);
        CHECK_MSG(s.generate_state_u64(2) == c.u64, "entropy " << c.entropy);
    }
    // np.random.SeedSequence(1234, pool_size=24).pool[:4]
    const NumpySeedSequence s1234 = seq(1234, {}, 24);
    const std::vector<uint32_t>& pool = s1234.pool();
    CHECK(pool.size() == 24);
    CHECK(pool[0] == 3128901807u && pool[1] == 3802102920u && pool[2] == 1253488489u && pool[3] == 2400442689u);
    // generate_state cycles through the pool: more words than the pool holds
    CHECK(seq(5, {}, 4).generate_state_u32(9).size() == 9);
    CHECK(NumpySeedSequence::int_words(0) == std::vector<uint32_t>{0u});
    CHECK((NumpySeedSequence::int_words(0x100000002ull) == std::vector<uint32_t>{2u, 1u}));
}

// Expected values from Python 3.11: round(x, 6).
SDXL_TEST(test_python_round_matches_python) {
    CHECK(python_round(0.0078125, 6) == 0.007812);  // exact binary tie: to even
    CHECK(python_round(2.5e-07, 6) == 0.0);
    CHECK(python_round(6.1970377, 6) == 6.197038);
    CHECK(python_round(6.197037220001221, 6) == 6.197037);
    CHECK(python_round(14.614640235900879, 6) == 14.61464);
    CHECK(python_round(0.029167532920837402, 6) == 0.029168);
    CHECK(python_round(1.0000005, 6) == 1.000001);
    CHECK(python_round(123.4567845, 6) == 123.456784);
    CHECK(python_round(-2.0000015, 6) == -2.000002);
    CHECK(python_round(-4e-07, 6) == 0.0 && std::signbit(python_round(-4e-07, 6)));
}

// The halfway tree: the increment over [ta, tb] depends only on (entropy, t0, t1, ta, tb), not on which
// queries came before; increments over adjacent intervals add up (to float32 rounding); values are
// N(0, tb - ta)-sized.
SDXL_TEST(test_brownian_tree_is_query_order_independent) {
    const double t0 = 0.04131447896361351, t1 = 4.236413478851318;  // float32 sigma_min / sigma_max of a schedule
    const Shape shape{1, 4, 8, 8};
    TorchsdeBrownianTree a(t0, t1, shape, 1234), b(t0, t1, shape, 1234), c(t0, t1, shape, 99);
    const std::vector<std::pair<double, double>> q = {
        {2.585392475128174, 4.116698265075684}, {1.6236929893493652, 4.116698265075684}, {0.3, 0.7}, {0.5, 3.0}};
    std::vector<std::vector<float>> fa, fb(q.size());
    for (const auto& p : q) fa.push_back(a.increment(p.first, p.second));
    for (size_t i = q.size(); i-- > 0;) fb[i] = b.increment(q[i].first, q[i].second);
    for (size_t i = 0; i < q.size(); ++i) CHECK_MSG(fa[i] == fb[i], "query " << i);
    CHECK(c.increment(0.3, 0.7) != fa[2]);
    // additivity: W(0.3, 0.5) + W(0.5, 0.7) = W(0.3, 0.7) up to float32 rounding
    const std::vector<float> l = a.increment(0.3, 0.5), r = a.increment(0.5, 0.7);
    double worst = 0, ss = 0;
    for (size_t k = 0; k < l.size(); ++k) {
        worst = std::max(worst, std::fabs(double(l[k]) + double(r[k]) - double(fa[2][k])));
        ss += double(fa[2][k]) * fa[2][k];
    }
    CHECK_MSG(worst < 1e-5, "additivity " << worst);
    const double var = ss / double(l.size());
    CHECK_MSG(var > 0.4 * 0.4 * 0.5 && var < 0.4 * 2.0, "variance " << var << " for dt 0.4");
    // a query outside [t0, t1] is clamped; an empty one is zero
    CHECK(a.increment(2.0, 2.0) == std::vector<float>(256, 0.0f));
    CHECK(a.increment(0.0, t1) == a.increment(t0, 10.0));
}

// Regression values of this implementation for the dpmpp_sde_n4 reference case (noise_sampler_seed 1234,
// sample 1x4x8x8): tree(sigma_to, sigma_from) of its first two stochastic steps and of its last one. The noise
// (W / sqrt(dt), negated) reproduces diffusers 0.31 + torchsde 0.2.6 there: SchedulerReferenceTest runs
// dpmpp_sde_n4 / _n25 free against the reference trajectories.
SDXL_TEST(test_brownian_tree_known_values) {
    const Shape shape{1, 4, 8, 8};
    TorchsdeBrownianTree t(0.04131447896361351, 4.236413478851318, shape, 1234);
    const std::vector<float> w0 = t.increment(2.585392475128174, 4.116698265075684);
    const std::vector<float> w1 = t.increment(1.6236929893493652, 4.116698265075684);
    const std::vector<float> w5 = t.increment(0.04131447896361351, 0.6983985900878906);
    CHECK(w0[0] == 0.0491288193f && w0[1] == 0.676364601f && w0[2] == 0.48272568f && w0[255] == -0.707361281f);
    CHECK(w1[0] == 1.7581073f && w1[1] == 0.67348057f && w1[2] == 0.0708564147f && w1[255] == -1.08173704f);
    CHECK(w5[0] == -0.71406436f && w5[1] == -0.157413125f && w5[2] == 1.38809705f && w5[255] == 0.228218839f);
}

// SLEEF's expf (torch.exp on float32 CPU tensors): within one ulp of the correctly rounded value, exact at 0,
// 0 / inf outside its range. (Its exactness against torch is covered by the dpmpp_sde reference trajectories.)
SDXL_TEST(test_sleef_expf_is_within_one_ulp) {
    using schedulers::simdlog::sleef_expf;
    CHECK(sleef_expf(0.0f) == 1.0f);
    CHECK(sleef_expf(-200.0f) == 0.0f);
    CHECK(std::isinf(sleef_expf(200.0f)));
    int worst = 0, differ = 0;
    for (int k = -200000; k <= 200000; ++k) {
        const float x = float(k) * 4.5e-4f;  // [-90, 90]
        const float a = sleef_expf(x), b = float(std::exp(double(x)));
        const int ulps = std::abs(int(schedulers::simdlog::f2u(a)) - int(schedulers::simdlog::f2u(b)));
        worst = std::max(worst, ulps);
        differ += ulps != 0;
    }
    CHECK_MSG(worst <= 1, "max ulp " << worst);
    CHECK_MSG(differ > 0, "expected some one-ulp differences from the correctly rounded exp");
}
