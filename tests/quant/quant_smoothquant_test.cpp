// SmoothQuant W8A8: the smoothing factors by hand, the migration's effect on a layer whose
// activations have outlier channels (the paper's motivating case), the W8A8 kernel path through
// matmul, and the option checks of the new methods.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../../src/quant/smoothquant.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/quant/linear_quant.h"
#include "qmeter/quant/quantize.h"

using namespace qmeter;
using namespace qmeter::quant;
using engine::DType;

TEST(SmoothQuant, FactorsByHand) {
  // s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)
  const auto s = smoothing_factors({4.0f, 1.0f, 0.0f}, {1.0f, 4.0f, 1.0f}, 0.5);
  EXPECT_FLOAT_EQ(s[0], 2.0f);
  EXPECT_FLOAT_EQ(s[1], 0.5f);
  EXPECT_FLOAT_EQ(s[2], std::sqrt(1e-5f));  // an all-zero channel is clamped, never divides by 0
  const auto t = smoothing_factors({8.0f}, {2.0f}, 0.8);
  EXPECT_NEAR(t[0], std::pow(8.0, 0.8) / std::pow(2.0, 0.2), 1e-5);
  const auto one = smoothing_factors({8.0f}, {2.0f}, 1.0);
  EXPECT_FLOAT_EQ(one[0], 8.0f);
}

TEST(SmoothQuant, MigrationLowersW8A8ErrorOnOutlierChannels) {
  // X has a few channels 50x larger than the rest (LLM activation outliers); per-token int8
  // then wastes its range on them. Smoothing (X / s, W * s) must cut the output error.
  const int rows = 64, cols = 256, n = 32;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(rows * cols), x(n * cols);
  for (float& v : w) v = 0.05f * nd(rng);
  for (int t = 0; t < n; ++t)
    for (int c = 0; c < cols; ++c) x[t * cols + c] = nd(rng) * (c % 37 == 0 ? 50.0f : 1.0f);
  std::vector<double> exact(n * rows);
  for (int t = 0; t < n; ++t)
    for (int r = 0; r < rows; ++r) {
      double acc = 0;
      for (int c = 0; c < cols; ++c) acc += static_cast<double>(w[r * cols + c]) * x[t * cols + c];
      exact[t * rows + r] = acc;
    }
  auto w8a8_error = [&](const std::vector<float>& s) {
    std::vector<float> ws(w), xs(x);
    for (int i = 0; i < rows * cols; ++i) ws[i] *= s[i % cols];
    for (int i = 0; i < n * cols; ++i) xs[i] /= s[i % cols];
    const auto blob = quantize_rtn_rows8(ws.data(), rows, cols).pack_a8();
    std::vector<float> y(n * rows);
    engine::matmul(engine::packed_matrix(DType::kQ8RowA8, rows, cols, blob.data()), xs.data(), n, y.data(), nullptr);
    double e = 0;
    for (int i = 0; i < n * rows; ++i) e += (y[i] - exact[i]) * (y[i] - exact[i]);
    return e;
  };
  std::vector<float> xmax(cols, 0.0f), wmax(cols, 0.0f);
  for (int i = 0; i < n * cols; ++i) xmax[i % cols] = std::max(xmax[i % cols], std::fabs(x[i]));
  for (int i = 0; i < rows * cols; ++i) wmax[i % cols] = std::max(wmax[i % cols], std::fabs(w[i]));
  const double plain = w8a8_error(std::vector<float>(cols, 1.0f));
  const double smooth = w8a8_error(smoothing_factors(xmax, wmax, 0.8));
  EXPECT_LT(smooth, 0.5 * plain) << "plain " << plain << " smoothed " << smooth;
}

TEST(SmoothQuant, OptionsOfTheNewMethodsAreChecked) {
  EXPECT_EQ(parse_options("smoothquant-w8a8", {}).alpha, 0.8);
  EXPECT_EQ(parse_options("smoothquant-w8a8", {{"alpha", "0.5"}}).alpha, 0.5);
  EXPECT_THROW(parse_options("smoothquant-w8a8", {{"alpha", "1.5"}}), UsageError);
  EXPECT_THROW(parse_options("smoothquant-w8a8", {{"alpha", "x"}}), UsageError);
  EXPECT_THROW(parse_options("smoothquant-w8a8", {{"bits", "4"}}), UsageError);
  EXPECT_THROW(parse_options("w8a16", {{"alpha", "0.5"}}), UsageError);
  EXPECT_TRUE(parse_options("nf4", {{"double-quant", "true"}}).double_quant);
  EXPECT_THROW(parse_options("fp8-w8a8", {{"double-quant", "true"}}), UsageError);
  try {
    parse_options("nf4", {{"group-size", "128"}});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("blocks are 64"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_options("fp8-w8a16", {{"sym", "true"}}), UsageError);
  EXPECT_EQ(method_info("smoothquant-w8a8").packed_dtype, DType::kQ8RowA8);
  EXPECT_TRUE(method_info("smoothquant-w8a8").needs_calibration);
  EXPECT_EQ(method_info("fp8-w8a8").packed_dtype, DType::kFp8RowA8);
  EXPECT_EQ(method_info("nf4").packed_dtype, DType::kNf4);
}
