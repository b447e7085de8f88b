// GGUF q8_0 / q4_0 / q4_k quantization: rows with hand-computed blocks give exactly those bytes,
// error bounds on random and outlier-heavy weights, the per-tensor fallback rule, and models
// quantized in memory, written as GGUF and loaded back by the GGUF loader with identical bytes
// and bit-identical logits (stories260K, and a random 256-wide model whose layers are real q4_K).
#include <gtest/gtest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "gguf_test_model.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/gguf_writer.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/session.h"
#include "qmeter/quant/gguf_quant.h"
#include "qmeter/quant/quantize.h"
#include "qmeter/quant/quantized_model.h"
#include "test_support.h"

using namespace qmeter;
using engine::DType;

namespace {

std::vector<std::uint8_t> quantize_row(DType d, const std::vector<float>& x) {
  std::vector<std::uint8_t> out(engine::gguf_row_bytes(d, static_cast<int>(x.size())));
  if (d == DType::kGgufQ8_0) quant::quantize_row_q8_0(x.data(), static_cast<int>(x.size()), out.data());
  else if (d == DType::kGgufQ4_0) quant::quantize_row_q4_0(x.data(), static_cast<int>(x.size()), out.data());
  else quant::quantize_row_q4_k(x.data(), static_cast<int>(x.size()), out.data());
  return out;
}

TEST(GgufQuantize, Q8_0BlockBytesAsComputedByHand) {
  // amax 254 -> d = 254 / 127 = 2 (f16 0x4000), 1/d = 0.5 exactly; q = round(x / 2), halves away from 0.
  std::vector<float> x(32, 0.0f);
  x[0] = 254, x[1] = -254, x[2] = 3, x[3] = -3, x[4] = 5, x[5] = 1, x[6] = -1, x[7] = 2.9f, x[8] = -100.2f, x[31] = 7;
  const auto b = quantize_row(DType::kGgufQ8_0, x);
  ASSERT_EQ(b.size(), 34u);
  EXPECT_EQ(b[0], 0x00);
  EXPECT_EQ(b[1], 0x40);
  const std::int8_t want[10] = {127, -127, 2, -2, 3, 1, -1, 1, -50, 0};  // 1.5->2, 2.5->3, 0.5->1, 1.45->1, -50.1->-50
  for (int i = 0; i < 10; ++i) EXPECT_EQ(static_cast<std::int8_t>(b[2 + i]), want[i]) << i;
  EXPECT_EQ(static_cast<std::int8_t>(b[2 + 31]), 4);  // 3.5 -> 4
  // An all-zero block: d = 0, codes 0.
  const auto z = quantize_row(DType::kGgufQ8_0, std::vector<float>(32, 0.0f));
  for (std::uint8_t v : z) EXPECT_EQ(v, 0);
}

TEST(GgufQuantize, Q4_0BlockBytesAsComputedByHand) {
  // Largest magnitude -8 -> d = -8 / -8 = 1 (0x3C00); q = min(15, trunc(x + 8.5)).
  std::vector<float> x(32, 0.0f);
  x[0] = -8, x[1] = 7, x[2] = 7.9f, x[3] = -0.6f, x[4] = 0.5f, x[5] = 3.2f, x[16] = -7.6f, x[17] = 2, x[31] = -0.4f;
  auto b = quantize_row(DType::kGgufQ4_0, x);
  ASSERT_EQ(b.size(), 18u);
  EXPECT_EQ(b[0], 0x00);
  EXPECT_EQ(b[1], 0x3C);
  // Low nibbles: elements 0..15; high nibbles: 16..31.
  //   byte 0: 0 | trunc(0.9)=0 -> 0x00; byte 1: 15 | 10 << 4 = 0xAF; byte 2: min(15, 16) = 15 | 8 << 4 = 0x8F
  //   byte 3: 7 | 8 << 4 = 0x87; byte 4: 9 | 0x80 = 0x89; byte 5: 11 | 0x80 = 0x8B; byte 15: 8 | 8 << 4 = 0x88
  EXPECT_EQ(b[2 + 0], 0x00);
  EXPECT_EQ(b[2 + 1], 0xAF);
  EXPECT_EQ(b[2 + 2], 0x8F);
  EXPECT_EQ(b[2 + 3], 0x87);
  EXPECT_EQ(b[2 + 4], 0x89);
  EXPECT_EQ(b[2 + 5], 0x8B);
  EXPECT_EQ(b[2 + 15], 0x88);
  // Largest magnitude +16 -> d = -2 (0xC000): +16 is code 0 (-8 * -2), -14 is code 15.
  std::vector<float> y(32, 0.0f);
  y[0] = 16, y[1] = -14;
  b = quantize_row(DType::kGgufQ4_0, y);
  EXPECT_EQ(b[0], 0x00);
  EXPECT_EQ(b[1], 0xC0);
  EXPECT_EQ(b[2], 0x80);  // 0 | 8 << 4 (element 16 is 0 -> code 8)
  EXPECT_EQ(b[3], 0x8F);
}

TEST(GgufQuantize, Q4KSuperBlockOfExactGridsGivesTheHandComputedBytes) {
  // Sub-block j holds x = sc[j] * D * q - m[j] * M for q = l % 16 (each code twice), with
  // D = 2^-8 and M = 2^-9 and max sc = max m = 63: the fit is exact, the 6-bit scales are sc and m,
  // d = 63 D / 63 = D (f16 0x1C00), dmin = M (0x1800), and the codes are q. Scale bytes as in
  // GgufBlocks.Q4KScalesPackAsWorkedOutByHand (tests/engine/gguf_blocks_test.cpp).
  const int sc[8] = {63, 1, 32, 17, 5, 40, 63, 9};
  const int mn[8] = {3, 63, 0, 12, 33, 7, 50, 1};
  const float D = 0x1p-8f, M = 0x1p-9f;
  std::vector<float> x(256);
  for (int j = 0; j < 8; ++j)
    for (int l = 0; l < 32; ++l) x[32 * j + l] = static_cast<float>(sc[j] * (l % 16)) * D - static_cast<float>(mn[j]) * M;
  const auto b = quantize_row(DType::kGgufQ4K, x);
  ASSERT_EQ(b.size(), 144u);
  const std::uint8_t head[16] = {0x00, 0x1C, 0x00, 0x18, 0x3F, 0x81, 0xE0, 0x11, 0x83, 0x3F, 0xC0, 0x0C, 0x15, 0x78, 0x2F, 0x19};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(b[i], head[i]) << "byte " << i;
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l) {
      const int q = l % 16;
      ASSERT_EQ(b[16 + 32 * k + l], q | (q << 4)) << "chunk " << k << " byte " << l;
    }
  std::vector<float> back(256);
  engine::gguf_row_to_f32(DType::kGgufQ4K, b.data(), 256, back.data());
  for (int i = 0; i < 256; ++i) EXPECT_EQ(back[i], x[i]) << i;
}

struct ErrorStats {
  double rmse = 0;
  bool bound_ok = true;
  std::string first_violation;
};

// Per-element bounds that follow from each format's rounding rule:
//   q8_0: |x - x'| <= d/2 + 127 |d - f16(d)| (codes from the unrounded d, stored f16(d));
//   q4_0: |x - x'| <= |d| (+ the same f16 slack) (code 15 is clamped: the far side reaches 7 |d|);
//   q4_K: |x - x'| <= d1 / 2 unless the code is clamped at 0 or 15 (x below / above the grid).
ErrorStats check(DType d, const std::vector<float>& x) {
  const int n = static_cast<int>(x.size());
  const auto b = quantize_row(d, x);
  std::vector<float> back(x.size());
  engine::gguf_row_to_f32(d, b.data(), n, back.data());
  ErrorStats s;
  const int block = engine::gguf_block_elems(d), bytes = engine::gguf_block_bytes(d);
  for (int k = 0; k < n / block; ++k) {
    const float* xb = x.data() + static_cast<std::size_t>(k) * block;
    const float* yb = back.data() + static_cast<std::size_t>(k) * block;
    const std::uint8_t* blk = b.data() + static_cast<std::size_t>(k) * bytes;
    float amax = 0, m = 0;
    for (int i = 0; i < block; ++i)
      if (std::fabs(xb[i]) > amax) amax = std::fabs(xb[i]), m = xb[i];
    for (int i = 0; i < block; ++i) {
      const double err = std::fabs(static_cast<double>(xb[i]) - yb[i]);
      s.rmse += err * err;
      double bound;
      if (d == DType::kGgufQ8_0) {
        const double dd = amax / 127.0, d16 = engine::f16_to_f32(engine::f32_to_f16(amax / 127.0f));
        bound = dd / 2 + 127 * std::fabs(dd - d16) + 1e-6 * amax;
      } else if (d == DType::kGgufQ4_0) {
        const double dd = std::fabs(m / 8.0), d16 = std::fabs(engine::f16_to_f32(engine::f32_to_f16(m / -8.0f)));
        bound = dd + 8 * std::fabs(dd - d16) + 1e-6 * amax;
      } else {
        std::uint16_t h;
        std::memcpy(&h, blk, 2);
        std::uint8_t sc, mn;
        engine::q4k_scale_min(i / 32, blk + 4, sc, mn);
        const double d1 = engine::f16_to_f32(h) * sc;
        const int q = (blk[16 + 32 * (i / 64) + i % 32] >> (4 * ((i / 32) % 2))) & 15;
        const double half = d1 / 2 * (1 + 1e-5) + 1e-7 * amax;
        if (q == 0 && xb[i] <= yb[i] + half) bound = INFINITY;        // below the grid: clamped to its bottom
        else if (q == 15 && xb[i] >= yb[i] - half) bound = INFINITY;  // above it: clamped to its top
        else bound = half;
      }
      if (err > bound && s.bound_ok) {
        s.bound_ok = false;
        s.first_violation = fmt::format("{} element {}: x {} decoded {} bound {}", engine::dtype_name(d), k * block + i, xb[i], yb[i], bound);
      }
    }
  }
  s.rmse = std::sqrt(s.rmse / n);
  return s;
}

TEST(GgufQuantize, ErrorBoundsOnRandomAndOutlierHeavyWeights) {
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.0f, 0.02f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const int n = 256 * 64;
  std::vector<float> gauss(n), outliers(n);
  for (int i = 0; i < n; ++i) {
    gauss[i] = g(rng);
    outliers[i] = u(rng) < 0.01f ? g(rng) * 50.0f : g(rng);  // 1% of weights 50x larger
  }
  const double sigma = 0.02;
  for (DType d : {DType::kGgufQ8_0, DType::kGgufQ4_0, DType::kGgufQ4K}) {
    const ErrorStats a = check(d, gauss), b = check(d, outliers);
    EXPECT_TRUE(a.bound_ok) << a.first_violation;
    EXPECT_TRUE(b.bound_ok) << b.first_violation;
    // Gaussian weights: 32-weight blocks span ~4.3 sigma; 8-bit steps of ~0.035 sigma, 4-bit ~0.6 sigma.
    const double limit = d == DType::kGgufQ8_0 ? 0.012 : d == DType::kGgufQ4_0 ? 0.2 : 0.12;
    EXPECT_LT(a.rmse / sigma, limit) << engine::dtype_name(d);
    EXPECT_GT(b.rmse, a.rmse) << engine::dtype_name(d) << ": outliers widen the blocks they land in";
  }
  // q4_K's fitted scales and mins beat q4_0's symmetric absmax on the same weights.
  EXPECT_LT(check(DType::kGgufQ4K, gauss).rmse, check(DType::kGgufQ4_0, gauss).rmse);
}

TEST(GgufQuantize, WidthsThatAreNotWholeBlocksFallBackPerTensor) {
  EXPECT_EQ(quant::gguf_storage_dtype(DType::kGgufQ4K, 512), DType::kGgufQ4K);
  EXPECT_EQ(quant::gguf_storage_dtype(DType::kGgufQ4K, 64), DType::kGgufQ5_0);  // llama.cpp's fallback
  EXPECT_EQ(quant::gguf_storage_dtype(DType::kGgufQ4K, 172), DType::kF16);
  EXPECT_EQ(quant::gguf_storage_dtype(DType::kGgufQ8_0, 96), DType::kGgufQ8_0);
  EXPECT_EQ(quant::gguf_storage_dtype(DType::kGgufQ4_0, 172), DType::kF16);
  const std::vector<float> w(3 * 172, 0.25f);
  const auto q = quant::quantize_gguf_matrix(DType::kGgufQ8_0, w.data(), 3, 172);
  EXPECT_EQ(q.dtype, DType::kF16);
  EXPECT_EQ(q.data.size(), 3u * 172 * 2);
}

const std::vector<int> kTokens = {1, 403, 407, 261, 378, 429, 271, 270, 1, 282, 45, 300, 511, 259, 3, 330};

std::vector<float> logits(const engine::Model& m, const std::vector<int>& tokens) {
  engine::Session s(m, nullptr);
  auto l = s.feed_all(tokens);
  return {l.begin(), l.end()};
}

std::vector<const engine::Matrix*> matrices(const engine::Model& m) {
  std::vector<const engine::Matrix*> out = {&m.weights.token_embedding, &m.weights.classifier};
  for (const auto& l : m.weights.layers)
    for (const engine::Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) out.push_back(w);
  return out;
}

// Same dtypes and identical bytes for every matrix.
void expect_same_weights(const engine::Model& a, const engine::Model& b) {
  const auto ma = matrices(a), mb = matrices(b);
  ASSERT_EQ(ma.size(), mb.size());
  for (std::size_t i = 0; i < ma.size(); ++i) {
    ASSERT_EQ(ma[i]->dtype, mb[i]->dtype) << "matrix " << i;
    const std::size_t n = engine::matrix_bytes(*ma[i]);
    ASSERT_EQ(n, engine::matrix_bytes(*mb[i]));
    EXPECT_EQ(std::memcmp(ma[i]->data, mb[i]->data, n), 0) << "matrix " << i << " bytes differ";
  }
}

TEST(GgufQuantizedModel, Stories260KWrittenAsGgufReloadsBitIdentical) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  const std::string dir = qmeter::testing::test_output_dir("gguf_quantized_stories");
  for (const std::string method : {"q4_0", "q8_0", "q4_k"}) {
    SCOPED_TRACE(method);
    auto mem = quant::load_quantized(model_path, method, {}, "");
    const quant::WrittenModel w = quant::write_quantized_model(*mem, model_path, dir + "/" + method, method, {});
    ASSERT_EQ(w.files, std::vector<std::string>{"model.gguf"});
    EXPECT_TRUE(w.tokenizer);
    auto back = engine::load_model(dir + "/" + method + "/model.gguf");
    EXPECT_EQ(back->format, "gguf");
    // 64-wide layers: q4_0 / q8_0 blocks (q4_k falls back to q5_0); the 172-wide down projection: f16.
    const DType want = method == "q8_0" ? DType::kGgufQ8_0 : method == "q4_0" ? DType::kGgufQ4_0 : DType::kGgufQ5_0;
    EXPECT_EQ(mem->weights.layers[0].wq.dtype, want);
    EXPECT_EQ(mem->weights.layers[0].w_down.dtype, DType::kF16);
    expect_same_weights(*mem, *back);
    EXPECT_EQ(logits(*mem, kTokens), logits(*back, kTokens));  // bit-identical
    ASSERT_TRUE(back->tokenizer);
    const std::string text = "Once upon a time, there was a little girl named Lily.";
    EXPECT_EQ(back->tokenizer->encode(text, true), mem->tokenizer->encode(text, true));
    // Quantizing the q4_0 GGUF again with q4_0 reproduces the same blocks (q4_0 is idempotent on
    // its own grid: the dequantized weights are exactly representable again).
    if (method == "q4_0") {
      auto again = quant::load_quantized(dir + "/q4_0/model.gguf", "q4_0", {}, "");
      expect_same_weights(*mem, *again);
    }
  }
}

TEST(GgufQuantizedModel, Q4KLayersRoundTripThroughGgufAndTheCli) {
  const std::string dir = qmeter::testing::test_output_dir("gguf_quantized_q4k");
  const std::string src = qmeter::testing::random_f32_gguf(dir, /*n_layers=*/2, /*n_kv_heads=*/2, /*seed=*/5);
  auto mem = quant::load_quantized(src, "q4_k", {}, "");
  for (const auto& l : mem->weights.layers)
    for (const engine::Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) EXPECT_EQ(w->dtype, DType::kGgufQ4K);
  const std::string out = dir + "/q4k.gguf";  // --out naming a .gguf file writes exactly that file
  const quant::WrittenModel w = quant::write_quantized_model(*mem, src, out, "q4_k", {});
  EXPECT_EQ(w.files, std::vector<std::string>{"q4k.gguf"});
  EXPECT_FALSE(w.tokenizer);
  auto back = engine::load_model(out);
  expect_same_weights(*mem, *back);
  const std::vector<int> toks = {1, 5, 17, 90, 3, 3, 64, 2};
  EXPECT_EQ(logits(*mem, toks), logits(*back, toks));
  // The q4_K kernels against the same weights dequantized at load (LoadOptions::weight_dtype), one
  // token per step. With AVX-512 VNNI the q4_K matmuls quantize activations to int8 per 32 values
  // (relative error <= 2^-8 per value, engine/kernels_gguf_int8.h), even at batch 1: the logits
  // stay within 2e-2 of their scale (measured 2e-3 here); without VNNI only f32 summation order
  // differs (about 1e-6). A wrong decode of any block moves them by the order of the scale.
  auto f32 = engine::load_model(out, [] {
    engine::LoadOptions o;
    o.weight_dtype = DType::kF32;
    return o;
  }());
  EXPECT_EQ(f32->weights.layers[0].wq.dtype, DType::kF32);
  engine::Session sa(*back, nullptr), sb(*f32, nullptr);
  for (int t : toks) {
    const int one[1] = {t};
    const auto la = sa.feed(one);
    const std::vector<float> a(la.begin(), la.end());
    const auto lb = sb.feed(one);
    ASSERT_EQ(a.size(), lb.size());
    float scale = 0;
    for (float v : lb) scale = std::max(scale, std::fabs(v));
    ASSERT_GT(scale, 0.0f);
    for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], lb[i], 2e-2f * scale) << "token " << t << " logit " << i;
  }
}

TEST(GgufQuantizedModel, RegistryListsTheGgufMethods) {
  for (const std::string name : {"q8_0", "q4_0", "q4_k"}) {
    const quant::MethodInfo& m = quant::method_info(name);
    EXPECT_TRUE(engine::is_gguf_block(m.packed_dtype)) << name;
    EXPECT_FALSE(m.needs_calibration);
  }
  EXPECT_THROW(quant::parse_options("q4_0", {{"group-size", "64"}}), UsageError);
  EXPECT_THROW(quant::parse_options("q4_k", {{"bits", "3"}}), UsageError);
}

}  // namespace
