// NF4, FP8 (E4M3) and W8A8 formats: code books against their independent definitions,
// quantize-dequantize error bounds on random and outlier-heavy weights, and every SIMD kernel
// against the scalar reference and an exact double-precision dot product.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../../src/engine/kernels_quant.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/engine/thread_pool.h"
#include "qmeter/quant/float_quant.h"
#include "qmeter/quant/linear_quant.h"

using namespace qmeter;
using namespace qmeter::quant;
using engine::DType;
using engine::Isa;

namespace {

std::vector<float> weights(int rows, int cols, bool outliers, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.02f);
  std::vector<float> w(static_cast<std::size_t>(rows) * cols);
  for (float& v : w) v = n(rng);
  if (outliers) {  // ~0.5% of weights 30-100x larger, both signs
    std::uniform_int_distribution<std::size_t> pick(0, w.size() - 1);
    for (std::size_t i = 0; i < w.size() / 200 + 1; ++i) w[pick(rng)] = (i % 2 ? -0.02f : 0.02f) * (30.0f + 70.0f * (i % 7) / 7.0f);
  }
  return w;
}

std::vector<float> unpack(const engine::Matrix& m) {
  std::vector<float> out(static_cast<std::size_t>(m.rows) * m.cols);
  for (int r = 0; r < m.rows; ++r) engine::matrix_row_to_f32(m, r, out.data() + static_cast<std::size_t>(r) * m.cols);
  return out;
}

// Standard normal quantile by bisection on the CDF (independent of the table under test).
double normal_ppf(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

}  // namespace

TEST(Nf4Format, CodeBookIsTheNormalQuantileConstruction) {
  // bitsandbytes create_normal_map(offset = 0.9677083): 8 positive quantiles of linspace(offset,
  // 0.5, 9)[:-1], 7 negative of linspace(offset, 0.5, 8)[:-1], and 0; normalized by the largest.
  const double offset = 0.9677083;
  std::vector<double> v;
  for (int i = 0; i < 8; ++i) v.push_back(normal_ppf(offset + (0.5 - offset) * i / 8));
  for (int i = 0; i < 7; ++i) v.push_back(-normal_ppf(offset + (0.5 - offset) * i / 7));
  v.push_back(0.0);
  std::sort(v.begin(), v.end());
  const double mx = v.back();
  for (int k = 0; k < 16; ++k) EXPECT_NEAR(engine::kNf4Values[k], v[k] / mx, 2e-7) << k;
  EXPECT_EQ(engine::kNf4Values[7], 0.0f);
  EXPECT_EQ(nf4_code(0.0f), 7);
  EXPECT_EQ(nf4_code(1.0f), 15);
  EXPECT_EQ(nf4_code(-1.0f), 0);
  EXPECT_EQ(nf4_code(0.04f), 8);  // nearer 0.0796 than 0
  EXPECT_EQ(nf4_code(0.039f), 7);
}

TEST(Nf4Format, DynamicMapMatchesBitsandbytesLayout) {
  const float* m = engine::dynamic_map8();
  for (int k = 1; k < 256; ++k) ASSERT_LT(m[k - 1], m[k]) << k;
  EXPECT_EQ(m[127], 0.0f);
  EXPECT_EQ(m[255], 1.0f);
  EXPECT_FLOAT_EQ(m[128], 0.55e-6f);        // 1e-6 * mean(0.1, 1)
  EXPECT_FLOAT_EQ(m[254], 0.99296875f);     // 1 - 0.9 / 64 / 2
  EXPECT_FLOAT_EQ(m[0], -0.99296875f);
  for (int k = 0; k < 127; ++k) EXPECT_EQ(m[k], -m[254 - k]) << k;
  EXPECT_EQ(engine::dynamic_map8_code(1.0f), 255);
  EXPECT_EQ(engine::dynamic_map8_code(0.0f), 127);
  for (float v : {-0.8f, -0.01f, 3e-4f, 0.5f, 0.77f}) {
    const int c = engine::dynamic_map8_code(v);
    for (int k = 0; k < 256; ++k) ASSERT_LE(std::fabs(m[c] - v), std::fabs(m[k] - v)) << v;
  }
}

TEST(Nf4Format, ErrorWithinHalfGapOnRandomAndOutlierWeights) {
  float half_gap = 0.0f;
  for (int k = 1; k < 16; ++k) half_gap = std::max(half_gap, (engine::kNf4Values[k] - engine::kNf4Values[k - 1]) / 2);
  EXPECT_NEAR(half_gap, (1.0f - 0.6961928f) / 2, 1e-6f);
  for (bool dq : {false, true})
    for (bool outliers : {false, true})
      for (int cols : {172, 256}) {
        const int rows = 23;
        const std::vector<float> w = weights(rows, cols, outliers, 3 + cols);
        const Nf4Quantized q = quantize_nf4(w.data(), rows, cols, dq);
        ASSERT_EQ(q.n_blocks, (cols + 63) / 64);
        const std::vector<std::byte> blob = q.pack();
        const engine::Matrix m = engine::packed_matrix(DType::kNf4, rows, cols, blob.data());
        EXPECT_EQ(engine::matrix_bytes(m), blob.size());
        const std::vector<float> dqw = unpack(m);
        ASSERT_EQ(dqw, q.dequantized());
        const std::vector<float> stored = q.stored_absmax();
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) {
            const std::size_t i = static_cast<std::size_t>(r) * cols + c, b = static_cast<std::size_t>(r) * q.n_blocks + c / 64;
            const float a = q.absmax[b];
            // The code is the nearest NF4 value of w / absmax.
            for (int k = 0; k < 16; ++k)
              ASSERT_LE(std::fabs(w[i] / a - engine::kNf4Values[q.codes[i]]), std::fabs(w[i] / a - engine::kNf4Values[k]) + 1e-7f);
            ASSERT_LE(std::fabs(dqw[i] - w[i]), a * half_gap * (1 + 1e-5f) + std::fabs(stored[b] - a) + 1e-9f) << r << "," << c;
          }
        if (dq) {
          // The 8-bit absmax is within half the largest step of the dynamic map (0.9/64/2) of its block.
          for (std::size_t b = 0; b < q.absmax.size(); ++b)
            ASSERT_LE(std::fabs(stored[b] - q.absmax[b]), q.absmax2[b / 256] * 0.00703125f * (1 + 1e-4f) + 1e-9f) << b;
          EXPECT_EQ(q.absmax2.size(), (q.absmax.size() + 255) / 256);
        }
      }
  // Size: 4 bits + 32 / 64 (f32 absmax) per weight; double quantization: 4 + 8 / 64 + a tail.
  const std::vector<float> w = weights(256, 4096, false, 1);
  const auto plain = quantize_nf4(w.data(), 256, 4096, false).pack(), dq = quantize_nf4(w.data(), 256, 4096, true).pack();
  EXPECT_NEAR(8.0 * plain.size() / (256 * 4096), 4.5, 0.01);
  EXPECT_NEAR(8.0 * dq.size() / (256 * 4096), 4.127, 0.01);
}

TEST(Nf4Format, BeatsInt4AbsmaxOnNormalWeights) {
  // NF4 is built for normally distributed weights: at the same block size (64) it must have a
  // lower mean squared error than symmetric int4 absmax quantization (QLoRA, section 3).
  const int rows = 64, cols = 1024;
  const std::vector<float> w = weights(rows, cols, false, 9);
  auto mse = [&](const std::vector<float>& d) {
    double e = 0;
    for (std::size_t i = 0; i < w.size(); ++i) e += (d[i] - w[i]) * (d[i] - w[i]);
    return e / w.size();
  };
  const double nf4 = mse(quantize_nf4(w.data(), rows, cols, false).dequantized());
  const double int4 = mse(quantize_rtn_groups(w.data(), rows, cols, 4, 64, true).dequantized());
  EXPECT_LT(nf4, 0.9 * int4) << nf4 << " vs " << int4;
}

TEST(Fp8Format, E4m3CodesAndRounding) {
  EXPECT_EQ(engine::e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(engine::e4m3_to_f32(0xFE), -448.0f);
  EXPECT_EQ(engine::e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(engine::e4m3_to_f32(0x01), 0x1p-9f);   // smallest subnormal
  EXPECT_EQ(engine::e4m3_to_f32(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(engine::e4m3_to_f32(0x08), 0x1p-6f);   // smallest normal
  EXPECT_EQ(engine::e4m3_to_f32(0x3B), 1.375f);
  EXPECT_TRUE(std::isnan(engine::e4m3_to_f32(0x7F)));
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    ASSERT_EQ(engine::f32_to_e4m3(engine::e4m3_to_f32(static_cast<std::uint8_t>(c))), c) << c;
  }
  // Rounding against a brute-force nearest search (ties to the even code), incl. ties and subnormals.
  std::vector<float> values = {0.0f, 1.0625f, 1.1875f, 0x1p-10f, 3 * 0x1p-10f, 500.0f, 464.0f, 447.0f, 1e-7f, 0.0146484375f};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> e(-12.0f, 9.0f);
  for (int i = 0; i < 20000; ++i) values.push_back(std::exp2(e(rng)) * (i % 2 ? -1.0f : 1.0f));
  for (float v : values) {
    const float a = std::fabs(v);
    int best = 0;
    for (int c = 1; c <= 0x7E; ++c) {
      const float d = std::fabs(engine::e4m3_to_f32(static_cast<std::uint8_t>(c)) - a), bd = std::fabs(engine::e4m3_to_f32(static_cast<std::uint8_t>(best)) - a);
      if (d < bd || (d == bd && c % 2 == 0)) best = c;
    }
    const float expect = std::copysign(engine::e4m3_to_f32(static_cast<std::uint8_t>(best)), v);
    ASSERT_EQ(engine::round_to_e4m3(v), expect) << v;
    ASSERT_EQ(engine::e4m3_to_f32(engine::f32_to_e4m3(v)), expect) << v;
  }
}

TEST(Fp8Format, PerChannelErrorWithinHalfUlp) {
  for (bool outliers : {false, true}) {
    const int rows = 31, cols = 200;
    const std::vector<float> w = weights(rows, cols, outliers, 17);
    const Fp8Quantized q = quantize_fp8_rows(w.data(), rows, cols);
    for (DType dt : {DType::kFp8Row, DType::kFp8RowA8}) {
      const std::vector<std::byte> blob = q.pack(dt);
      const engine::Matrix m = engine::packed_matrix(dt, rows, cols, blob.data());
      EXPECT_EQ(engine::matrix_bytes(m), blob.size());
      ASSERT_EQ(unpack(m), q.dequantized());
    }
    const std::vector<float> dq = q.dequantized();
    for (int r = 0; r < rows; ++r) {
      float amax = 0.0f;
      for (int c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      EXPECT_EQ(q.scales[r], amax / 448.0f);
      for (int c = 0; c < cols; ++c) {
        const float s = q.scales[r], v = w[r * cols + c] / s;
        // 3 mantissa bits: half a step is <= |v| / 16 for normals, 2^-10 for subnormals.
        ASSERT_LE(std::fabs(dq[r * cols + c] - w[r * cols + c]), s * std::max(0x1p-10f, std::fabs(v) / 16) * (1 + 1e-5f)) << r << "," << c;
        if (std::fabs(w[r * cols + c]) == amax) {  // the channel's largest weight is E4M3's largest value
          ASSERT_EQ(q.codes[r * cols + c] & 0x7F, 0x7E);
          ASSERT_FLOAT_EQ(std::fabs(dq[r * cols + c]), amax);
        }
      }
    }
  }
}

TEST(W8A8Format, Int8ActivationPreparation) {
  const float x[] = {2.54f, -1.0f, 0.0f, 0.3f, 0.0f, 0.0f, 0.0f, 0.0f};  // two tokens of 4; the second all zero
  std::vector<unsigned char> buf(engine::kernels::prepared_bytes_int8(2, 4));
  engine::kernels::prepare_int8(x, 2, 4, buf.data());
  EXPECT_FLOAT_EQ(engine::kernels::prepared_scales(buf.data())[0], 0.02f);
  EXPECT_EQ(engine::kernels::prepared_scales(buf.data())[1], 1.0f);
  const unsigned char* v = buf.data() + engine::kernels::prepared_scales_bytes(2);
  const int expect[] = {127 + 128, -50 + 128, 128, 15 + 128};
  for (int c = 0; c < 4; ++c) EXPECT_EQ(v[c], expect[c]) << c;
  for (int c = 4; c < 64; ++c) EXPECT_EQ(v[c], 128) << "padding is the value 0";
  for (int c = 0; c < 64; ++c) EXPECT_EQ(v[64 + c], 128);
}

namespace {

struct Case {
  const char* name;
  DType dtype;
  std::vector<std::byte> blob;
};

std::vector<Case> cases(int rows, int cols) {
  std::vector<Case> out;
  for (bool outliers : {false, true}) {
    const std::vector<float> w = weights(rows, cols, outliers, 40 + cols);
    out.push_back({"nf4", DType::kNf4, quantize_nf4(w.data(), rows, cols, false).pack()});
    out.push_back({"nf4-dq", DType::kNf4, quantize_nf4(w.data(), rows, cols, true).pack()});
    out.push_back({"fp8", DType::kFp8Row, quantize_fp8_rows(w.data(), rows, cols).pack(DType::kFp8Row)});
    out.push_back({"fp8-a8", DType::kFp8RowA8, quantize_fp8_rows(w.data(), rows, cols).pack(DType::kFp8RowA8)});
    out.push_back({"int8-a8", DType::kQ8RowA8, quantize_rtn_rows8(w.data(), rows, cols).pack_a8()});
  }
  return out;
}

// The activations a w8a8 format multiplies (computed here from the public rounding functions),
// times their scale, so the exact product is sum(dq(w) * xq).
std::vector<float> effective_x(DType dt, const std::vector<float>& x, int batch, int cols) {
  if (dt != DType::kFp8RowA8 && dt != DType::kQ8RowA8) return x;
  std::vector<float> out(x.size());
  for (int b = 0; b < batch; ++b) {
    float amax = 0;
    for (int c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[b * cols + c]));
    const float s = dt == DType::kFp8RowA8 ? amax / 448.0f : amax / 127.0f;
    for (int c = 0; c < cols; ++c) {
      const float v = x[b * cols + c] / s;
      out[b * cols + c] = s * (dt == DType::kFp8RowA8 ? engine::round_to_e4m3(v) : static_cast<float>(std::lround(v)));
    }
  }
  return out;
}

}  // namespace

TEST(FloatQuantKernels, SimdMatchesScalarReferenceAndExactDot) {
  if (!engine::isa_supported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  engine::ThreadPool pool(2);
  for (int cols : {64, 172, 200, 2048})
    for (const Case& k : cases(48, cols)) {
      const int rows = 48;
      const engine::Matrix m = engine::packed_matrix(k.dtype, rows, cols, k.blob.data());
      const std::vector<float> dq = unpack(m);
      for (int batch : {1, 3, 8, 11, 16}) {
        std::mt19937 rng(batch);
        std::normal_distribution<float> n(0.0f, 1.0f);
        std::vector<float> x(static_cast<std::size_t>(batch) * cols);
        for (float& v : x) v = n(rng);
        const std::vector<float> xe = effective_x(k.dtype, x, batch, cols);
        std::vector<float> ys(static_cast<std::size_t>(batch) * rows), yv(ys.size());
        engine::matmul_isa(Isa::kScalar, m, x.data(), batch, ys.data(), nullptr);
        engine::matmul_isa(Isa::kAvx512, m, x.data(), batch, yv.data(), &pool);
        if (k.dtype == DType::kQ8RowA8) {
          ASSERT_EQ(ys, yv) << "int32 accumulation is exact: bit-identical, cols " << cols << " batch " << batch;
        }
        for (int b = 0; b < batch; ++b)
          for (int r = 0; r < rows; ++r) {
            double exact = 0.0, mag = 0.0;
            for (int c = 0; c < cols; ++c) {
              exact += static_cast<double>(dq[r * cols + c]) * xe[b * cols + c];
              mag += std::fabs(static_cast<double>(dq[r * cols + c]) * xe[b * cols + c]);
            }
            const double tol = mag * cols * 1.2e-7 + 1e-12;
            ASSERT_NEAR(ys[b * rows + r], exact, tol) << "scalar " << k.name << " cols " << cols << " batch " << batch;
            ASSERT_NEAR(yv[b * rows + r], exact, tol) << "avx512 " << k.name << " cols " << cols << " batch " << batch;
          }
      }
    }
}

TEST(FloatQuantKernels, Int8VnniAndBwVariantsAreBitIdentical) {
  if (!engine::isa_supported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  if (!engine::kernels::avx512::has_vnni()) GTEST_SKIP() << "no AVX512_VNNI on this CPU";
  const int rows = 40, cols = 300, batch = 13;
  const std::vector<float> w = weights(rows, cols, true, 77);
  const auto blob = quantize_rtn_rows8(w.data(), rows, cols).pack_a8();
  const engine::Matrix m = engine::packed_matrix(DType::kQ8RowA8, rows, cols, blob.data());
  std::vector<float> x(static_cast<std::size_t>(batch) * cols);
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (float& v : x) v = n(rng);
  std::vector<unsigned char> prep(engine::kernels::prepared_bytes_int8(batch, cols) + 64);
  engine::kernels::prepare_int8(x.data(), batch, cols, prep.data());
  std::vector<float> a(static_cast<std::size_t>(batch) * rows), b(a.size()), s(a.size());
  engine::kernels::avx512::matmul_q8_row_a8_vnni(m, x.data(), prep.data(), batch, a.data(), 0, rows);
  engine::kernels::avx512::matmul_q8_row_a8_bw(m, x.data(), prep.data(), batch, b.data(), 0, rows);
  engine::kernels::scalar::matmul_q8_row_a8(m, x.data(), prep.data(), batch, s.data(), 0, rows);
  EXPECT_EQ(a, s);
  EXPECT_EQ(b, s);
}
