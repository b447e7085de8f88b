// Backward passes of every layer against central finite differences in double precision, the
// packed GEMM against the plain triple loop, and RoPE against hand-computed rotations.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "qmeter/train/gemm.h"
#include "qmeter/train/layers.h"
#include "qmeter/train/model.h"

namespace qmeter::train {
namespace {

std::vector<double> random_vector(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  SplitMix64 rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = (rng.uniform() * 2 - 1) * scale;
  return v;
}

// Checks analytic gradient `grad` of scalar function `loss` w.r.t. `param` (which loss reads).
void expect_gradient_matches(const char* what, std::vector<double>& param, const std::vector<double>& grad,
                             const std::function<double()>& loss, double tol = 1e-6) {
  ASSERT_EQ(param.size(), grad.size()) << what;
  const double h = 1e-5;
  for (std::size_t i = 0; i < param.size(); ++i) {
    const double saved = param[i];
    param[i] = saved + h;
    const double up = loss();
    param[i] = saved - h;
    const double down = loss();
    param[i] = saved;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(grad[i], numeric, tol * std::max(1.0, std::fabs(numeric))) << what << " element " << i;
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

TEST(Gemm, PackedMatchesTripleLoopForAllTransposesAndEdges) {
  const int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {9, 31, 300}, {130, 65, 257}, {40, 2100, 17}};
  for (auto [m, n, k] : shapes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int acc = 0; acc < 2; ++acc) {
          SplitMix64 rng(static_cast<std::uint64_t>(m * 1000 + n + k + ta * 7 + tb * 3));
          std::vector<float> a(static_cast<std::size_t>(m) * k), b(static_cast<std::size_t>(k) * n),
              c(static_cast<std::size_t>(m) * n), ref;
          for (auto& x : a) x = static_cast<float>(rng.uniform() - 0.5);
          for (auto& x : b) x = static_cast<float>(rng.uniform() - 0.5);
          for (auto& x : c) x = static_cast<float>(rng.uniform());
          ref = c;
          const GemmShape s{m, n, k, ta == 1, tb == 1, acc == 1};
          const int lda = ta ? m : k, ldb = tb ? k : n;
          gemm(s, a.data(), lda, b.data(), ldb, c.data(), n);
          gemm_reference(s, a.data(), lda, b.data(), ldb, ref.data(), n);
          for (std::size_t i = 0; i < c.size(); ++i)
            ASSERT_NEAR(c[i], ref[i], 2e-6 * k + 1e-6) << m << "x" << n << "x" << k << " ta" << ta << " tb" << tb;
        }
}

TEST(Layers, EmbeddingBackwardIsScatterAdd) {
  const int vocab = 5, dim = 3, rows = 4;
  const std::int32_t ids[rows] = {2, 0, 2, 4};
  auto table = random_vector(vocab * dim, 1);
  const auto r = random_vector(rows * dim, 2);
  std::vector<double> grad(table.size(), 0.0);
  embedding_backward(ids, rows, r.data(), dim, grad.data());
  expect_gradient_matches("embedding", table, grad, [&] {
    std::vector<double> out(rows * dim);
    embedding_forward(ids, rows, table.data(), dim, out.data());
    return dot(out, r);
  });
}

TEST(Layers, RmsNormBackward) {
  const int rows = 3, dim = 6;
  auto x = random_vector(rows * dim, 3, 2.0);
  auto w = random_vector(dim, 4);
  const auto r = random_vector(rows * dim, 5);
  auto loss = [&] {
    std::vector<double> y(rows * dim), inv(rows);
    rmsnorm_forward(x.data(), w.data(), rows, dim, 1e-5, y.data(), inv.data());
    return dot(y, r);
  };
  std::vector<double> y(rows * dim), inv(rows), dx(rows * dim), dw(dim, 0.0);
  rmsnorm_forward(x.data(), w.data(), rows, dim, 1e-5, y.data(), inv.data());
  // Forward against the definition: y = x / sqrt(mean(x^2) + eps) * w.
  double ss = 0;
  for (int i = 0; i < dim; ++i) ss += x[i] * x[i];
  EXPECT_NEAR(y[1], x[1] / std::sqrt(ss / dim + 1e-5) * w[1], 1e-12);
  rmsnorm_backward(x.data(), w.data(), inv.data(), r.data(), rows, dim, dx.data(), dw.data(), false);
  expect_gradient_matches("rmsnorm dx", x, dx, loss);
  expect_gradient_matches("rmsnorm dw", w, dw, loss);
}

TEST(Layers, RopeIsHuggingFaceRotateHalf) {
  // head_dim 4: element i pairs with i + 2 and turns by pos * 10000^(-2i/4) = pos * {1, 0.01}.
  const int seq = 4;
  std::vector<double> x(seq * 4, 0.0);
  for (int i = 0; i < 4; ++i) x[3 * 4 + i] = i + 1;  // position 3: [1, 2, 3, 4]
  rope_apply(x.data(), seq, seq, 1, 4, 10000.0, false);
  EXPECT_NEAR(x[12], 1 * std::cos(3.0) - 3 * std::sin(3.0), 1e-12);
  EXPECT_NEAR(x[14], 1 * std::sin(3.0) + 3 * std::cos(3.0), 1e-12);
  EXPECT_NEAR(x[13], 2 * std::cos(0.03) - 4 * std::sin(0.03), 1e-12);
  EXPECT_NEAR(x[15], 2 * std::sin(0.03) + 4 * std::cos(0.03), 1e-12);
  rope_apply(x.data(), seq, seq, 1, 4, 10000.0, true);  // the inverse undoes it
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(x[12 + i], i + 1, 1e-12);
}

TEST(Layers, RopeBackwardIsTransposedRotation) {
  const int rows = 6, seq = 3, heads = 2, hd = 8;
  auto x = random_vector(rows * heads * hd, 6);
  const auto r = random_vector(x.size(), 7);
  std::vector<double> grad = r;
  rope_apply(grad.data(), rows, seq, heads, hd, 500.0, true);
  expect_gradient_matches("rope", x, grad, [&] {
    auto y = x;
    rope_apply(y.data(), rows, seq, heads, hd, 500.0, false);
    return dot(y, r);
  });
}

TEST(Layers, CausalAttentionForwardByHand) {
  // One sequence of two tokens, head_dim 2: token 0 sees only itself, token 1 averages with
  // softmax weights of q1.k0/sqrt(2) and q1.k1/sqrt(2).
  const AttentionShape s{1, 2, 1, 1, 2};
  const std::vector<double> q = {1, 0, 0.5, 2}, k = {1, 1, -1, 3}, v = {10, 20, 30, 40};
  std::vector<double> probs(4), out(4);
  attention_forward(s, q.data(), k.data(), v.data(), probs.data(), out.data());
  EXPECT_DOUBLE_EQ(out[0], 10);
  EXPECT_DOUBLE_EQ(out[1], 20);
  const double s0 = (0.5 * 1 + 2 * 1) / std::sqrt(2.0), s1 = (0.5 * -1 + 2 * 3) / std::sqrt(2.0);
  const double p0 = std::exp(s0) / (std::exp(s0) + std::exp(s1));
  EXPECT_NEAR(out[2], p0 * 10 + (1 - p0) * 30, 1e-12);
  EXPECT_NEAR(out[3], p0 * 20 + (1 - p0) * 40, 1e-12);
  EXPECT_DOUBLE_EQ(probs[1], 0.0);  // no attention to the future
}

TEST(Layers, GroupedQueryAttentionBackward) {
  const AttentionShape s{2, 5, 4, 2, 4};  // 2 sequences, 4 query heads sharing 2 kv heads
  auto q = random_vector(s.rows() * s.heads * s.head_dim, 8);
  auto k = random_vector(s.rows() * s.kv_heads * s.head_dim, 9);
  auto v = random_vector(k.size(), 10);
  const auto r = random_vector(q.size(), 11);
  auto loss = [&] {
    std::vector<double> probs(s.batch * s.heads * s.seq_len * s.seq_len), out(q.size());
    attention_forward(s, q.data(), k.data(), v.data(), probs.data(), out.data());
    return dot(out, r);
  };
  std::vector<double> probs(s.batch * s.heads * s.seq_len * s.seq_len), out(q.size());
  attention_forward(s, q.data(), k.data(), v.data(), probs.data(), out.data());
  std::vector<double> dq(q.size()), dk(k.size()), dv(v.size());
  attention_backward(s, q.data(), k.data(), v.data(), probs.data(), r.data(), dq.data(), dk.data(), dv.data());
  expect_gradient_matches("attention dq", q, dq, loss);
  expect_gradient_matches("attention dk", k, dk, loss);
  expect_gradient_matches("attention dv", v, dv, loss);
}

TEST(Layers, SwiGluBackward) {
  const int n = 12;
  auto gate = random_vector(n, 12, 3.0);
  auto up = random_vector(n, 13);
  const auto r = random_vector(n, 14);
  std::vector<double> out(n), dg(n), du(n);
  swiglu_forward(gate.data(), up.data(), n, out.data());
  EXPECT_NEAR(out[0], gate[0] / (1 + std::exp(-gate[0])) * up[0], 1e-14);
  swiglu_backward(gate.data(), up.data(), r.data(), n, dg.data(), du.data());
  auto loss = [&] {
    std::vector<double> o(n);
    swiglu_forward(gate.data(), up.data(), n, o.data());
    return dot(o, r);
  };
  expect_gradient_matches("swiglu gate", gate, dg, loss);
  expect_gradient_matches("swiglu up", up, du, loss);
}

TEST(Layers, CrossEntropyValueAndGradient) {
  const int rows = 3, vocab = 4;
  const std::int32_t targets[rows] = {2, -1, 0};
  auto logits = random_vector(rows * vocab, 15, 3.0);
  // Value against the definition for row 0.
  double z = 0;
  for (int i = 0; i < vocab; ++i) z += std::exp(logits[i]);
  const double row0 = std::log(z) - logits[2];
  auto loss = [&] {
    auto copy = logits;
    std::int64_t n = 0;
    return cross_entropy(copy.data(), targets, rows, vocab, false, &n) / static_cast<double>(n);
  };
  auto g = logits;
  std::int64_t counted = 0;
  const double total = cross_entropy(g.data(), targets, rows, vocab, true, &counted);
  EXPECT_EQ(counted, 2);
  double z2 = 0;
  for (int i = 0; i < vocab; ++i) z2 += std::exp(logits[2 * vocab + i]);
  EXPECT_NEAR(total, row0 + std::log(z2) - logits[2 * vocab], 1e-12);
  for (int i = 0; i < vocab; ++i) EXPECT_EQ(g[vocab + i], 0.0);  // ignored row
  expect_gradient_matches("cross entropy", logits, g, loss);
}

// The whole model (embedding, every layer, tied output projection, loss) at once: every
// parameter's analytic gradient against a central difference.
TEST(Model, FullGradientMatchesFiniteDifferences) {
  ModelConfig c{11, 8, 2, 4, 2, 12, 6, 100.0, 1e-5};
  Transformer<double> model(c);
  model.init_random(3);
  // Larger weights than the 0.02 initialisation so every path contributes visibly.
  SplitMix64 rng(4);
  for (auto& p : model.params()) p += (rng.uniform() - 0.5) * 0.6;
  const int batch = 2, seq = 6;
  std::vector<std::int32_t> inputs(batch * seq), targets(batch * seq);
  for (int i = 0; i < batch * seq; ++i) {
    inputs[i] = static_cast<std::int32_t>(rng.below(c.vocab_size));
    targets[i] = static_cast<std::int32_t>(rng.below(c.vocab_size));
  }
  targets[3] = -1;
  std::int64_t counted = 0;
  model.forward_backward(inputs.data(), targets.data(), batch, seq, &counted);
  const std::vector<double> grad = model.grads();
  auto loss = [&] {
    std::int64_t n = 0;
    return model.forward(inputs.data(), targets.data(), batch, seq, &n) / static_cast<double>(n);
  };
  for (const auto& t : model.layout().tensors()) {
    std::vector<double> param(model.params().begin() + static_cast<std::ptrdiff_t>(t.offset),
                              model.params().begin() + static_cast<std::ptrdiff_t>(t.offset + t.size));
    std::vector<double> g(grad.begin() + static_cast<std::ptrdiff_t>(t.offset),
                          grad.begin() + static_cast<std::ptrdiff_t>(t.offset + t.size));
    double gmax = 0;
    for (double x : g) gmax = std::max(gmax, std::fabs(x));
    EXPECT_GT(gmax, 1e-6) << t.name << " gets no gradient";
    expect_gradient_matches(t.name.c_str(), param, g, [&] {
      std::copy(param.begin(), param.end(), model.params().begin() + static_cast<std::ptrdiff_t>(t.offset));
      return loss();
    });
    std::copy(param.begin(), param.end(), model.params().begin() + static_cast<std::ptrdiff_t>(t.offset));
  }
}

// Float training path against the double one: same weights give the same loss and gradients.
TEST(Model, FloatPathAgreesWithDouble) {
  ModelConfig c{40, 32, 2, 4, 2, 48, 16, 10000.0, 1e-5};
  Transformer<double> md(c);
  Transformer<float> mf(c);
  md.init_random(9);
  mf.init_random(9);
  SplitMix64 rng(10);
  std::vector<std::int32_t> in(3 * 16), tg(3 * 16);
  for (std::size_t i = 0; i < in.size(); ++i) {
    in[i] = static_cast<std::int32_t>(rng.below(40));
    tg[i] = static_cast<std::int32_t>(rng.below(40));
  }
  std::int64_t n1 = 0, n2 = 0;
  const double ld = md.forward_backward(in.data(), tg.data(), 3, 16, &n1);
  const double lf = mf.forward_backward(in.data(), tg.data(), 3, 16, &n2);
  EXPECT_NEAR(lf, ld, 1e-4 * std::fabs(ld));
  double gnorm = 0;
  for (double g : md.grads()) gnorm = std::max(gnorm, std::fabs(g));
  for (std::size_t i = 0; i < md.grads().size(); ++i) ASSERT_NEAR(mf.grads()[i], md.grads()[i], 1e-4 * gnorm) << i;
}

}  // namespace
}  // namespace qmeter::train
