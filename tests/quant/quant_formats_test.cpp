// Packed formats: quantize-dequantize error bounds (from the step size) on random and
// outlier-heavy weights, packing round trips, and every SIMD kernel against the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "qmeter/core/error.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/engine/thread_pool.h"
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
  if (outliers) {  // ~0.5% of weights 30-100x larger, one-sided too (asymmetric groups)
    std::uniform_int_distribution<std::size_t> pick(0, w.size() - 1);
    for (std::size_t i = 0; i < w.size() / 200 + 1; ++i) w[pick(rng)] = 0.02f * (30.0f + 70.0f * (i % 7) / 7.0f);
  }
  return w;
}

std::vector<float> unpack(const engine::Matrix& m) {
  std::vector<float> out(static_cast<std::size_t>(m.rows) * m.cols);
  for (int r = 0; r < m.rows; ++r) engine::matrix_row_to_f32(m, r, out.data() + static_cast<std::size_t>(r) * m.cols);
  return out;
}

}  // namespace

TEST(QuantFormats, Int8PerChannelErrorWithinHalfStep) {
  for (bool outliers : {false, true}) {
    const int rows = 37, cols = 172;
    const std::vector<float> w = weights(rows, cols, outliers, 1);
    const RowQuantized8 q = quantize_rtn_rows8(w.data(), rows, cols);
    const std::vector<std::byte> blob = q.pack();
    const std::vector<float> dq = unpack(engine::packed_matrix(DType::kQ8Row, rows, cols, blob.data()));
    EXPECT_EQ(dq, q.dequantized());
    for (int r = 0; r < rows; ++r) {
      float amax = 0.0f;
      for (int c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      EXPECT_FLOAT_EQ(q.scales[r], amax / 127.0f);
      for (int c = 0; c < cols; ++c)
        ASSERT_LE(std::fabs(dq[r * cols + c] - w[r * cols + c]), 0.5f * q.scales[r] * (1 + 1e-5f)) << r << "," << c;
    }
    EXPECT_EQ(engine::matrix_bytes(engine::packed_matrix(DType::kQ8Row, rows, cols, blob.data())), blob.size());
  }
}

TEST(QuantFormats, GroupWiseErrorWithinHalfStepIncludingShortLastGroup) {
  for (int bits : {4, 3})
    for (bool sym : {false, true})
      for (int gs : {32, 128})
        for (bool outliers : {false, true}) {
          const int rows = 19, cols = 172;  // 172 = 128 + 44: a short last group
          const std::vector<float> w = weights(rows, cols, outliers, 2 + bits);
          const GroupQuantized q = quantize_rtn_groups(w.data(), rows, cols, bits, gs, sym);
          ASSERT_EQ(q.n_groups, (cols + gs - 1) / gs);
          const std::vector<std::byte> blob = q.pack();
          const engine::Matrix m = engine::packed_matrix(DType::kQ4Group, rows, cols, blob.data());
          const std::vector<float> dq = unpack(m);
          ASSERT_EQ(dq, q.dequantized());
          for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c) {
              const std::size_t g = static_cast<std::size_t>(r) * q.n_groups + c / gs;
              const float s = q.scales[g];
              EXPECT_EQ(s, engine::f16_to_f32(engine::f32_to_f16(s)));  // stored exactly
              ASSERT_LE(std::fabs(dq[r * cols + c] - w[r * cols + c]), 0.5f * s * (1 + 1e-3f))
                  << "bits " << bits << " sym " << sym << " gs " << gs << " at " << r << "," << c;
              ASSERT_LT(q.codes[r * cols + c], 1 << bits);
            }
          // A group's step is its range over 2^bits - 1 (asym) or max|w| over 2^(bits-1) - 1 (sym).
          float lo = 0, hi = 0;
          for (int c = 128; c < cols && gs == 128; ++c) lo = std::min(lo, w[c]), hi = std::max(hi, w[c]);
          if (gs == 128) {
            const float expect = sym ? std::max(-lo, hi) / ((1 << (bits - 1)) - 1) : (hi - lo) / ((1 << bits) - 1);
            EXPECT_NEAR(q.scales[1], expect, expect * 1e-3f);
          }
        }
}

TEST(QuantFormats, GroupSizeMustBeMultipleOf32) {
  std::vector<std::uint8_t> codes(64, 0), zeros(2, 0);
  std::vector<float> scales(2, 1.0f);
  EXPECT_THROW(engine::pack_q4_group(1, 64, 4, 48, codes.data(), scales.data(), zeros.data()), Error);
}

TEST(QuantKernels, SimdMatchesScalarReferenceAndExactDot) {
  if (!engine::isa_supported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  engine::ThreadPool pool(2);
  for (int cols : {64, 172, 200, 2048})
    for (int kind = 0; kind < 3; ++kind) {
      const int rows = 48;
      const std::vector<float> w = weights(rows, cols, kind == 2, 10 + cols);
      std::vector<std::byte> blob;
      DType dt;
      GroupQuantized gq;
      if (kind == 0) {
        blob = quantize_rtn_rows8(w.data(), rows, cols).pack();
        dt = DType::kQ8Row;
      } else {
        gq = quantize_rtn_groups(w.data(), rows, cols, kind == 1 ? 4 : 3, cols >= 128 ? 128 : 32, kind == 2);
        blob = gq.pack();
        dt = DType::kQ4Group;
      }
      const engine::Matrix m = engine::packed_matrix(dt, rows, cols, blob.data());
      const std::vector<float> dq = unpack(m);
      for (int batch : {1, 3, 8, 11, 16}) {
        std::mt19937 rng(batch);
        std::normal_distribution<float> n(0.0f, 1.0f);
        std::vector<float> x(static_cast<std::size_t>(batch) * cols);
        for (float& v : x) v = n(rng);
        std::vector<float> ys(static_cast<std::size_t>(batch) * rows), yv(ys.size());
        engine::matmul_isa(Isa::kScalar, m, x.data(), batch, ys.data(), nullptr);
        engine::matmul_isa(Isa::kAvx512, m, x.data(), batch, yv.data(), &pool);
        for (int b = 0; b < batch; ++b)
          for (int r = 0; r < rows; ++r) {
            double exact = 0.0, mag = 0.0, int8_rounding = 0.0;
            for (int c = 0; c < cols; ++c) {
              exact += static_cast<double>(dq[r * cols + c]) * x[b * cols + c];
              // Batches of both packed formats take the integer path (kernels_gguf_int8.h) on a
              // VNNI CPU: activations rounded to int8 per 128 values, d = amax / 127, so each moves
              // by at most d / 2 (0.5001 d with the f32 reciprocal).
              if (batch >= 2) {
                const int blk = c / 128 * 128;
                double amax = 0;
                for (int k = blk; k < std::min(cols, blk + 128); ++k) amax = std::max(amax, std::fabs(static_cast<double>(x[b * cols + k])));
                int8_rounding += 0.5001 * amax / 127 * std::fabs(static_cast<double>(dq[r * cols + c]));
              }
              mag += std::fabs(static_cast<double>(dq[r * cols + c]) * x[b * cols + c]);
              if (kind != 0) {  // the SIMD kernel sums s*q*x and s*zero*x separately: their sizes bound its rounding
                const std::size_t g = static_cast<std::size_t>(r) * gq.n_groups + c / gq.group_size;
                mag += static_cast<double>(gq.scales[g]) * (gq.codes[r * cols + c] + gq.zeros[g]) * std::fabs(x[b * cols + c]);
              }
            }
            const double tol = mag * cols * 1.2e-7 + 1e-12;
            ASSERT_NEAR(ys[b * rows + r], exact, tol) << "scalar, cols " << cols << " kind " << kind;
            ASSERT_NEAR(yv[b * rows + r], exact, tol + int8_rounding)
                << "avx512, cols " << cols << " kind " << kind << " batch " << batch;
          }
      }
    }
}

TEST(QuantKernels, Q4Bf16DotProductMatchesExactDotOfBf16Activations) {
  // Isa::kAvx512Bf16 runs kQ4Group through VDPBF16PS on bf16-rounded activations: against the
  // exact product of the same rounded activations it may only differ by f32 accumulation error
  // (of the terms s * (128 + q) * x and s * (128 + zero) * x it sums).
  if (!engine::isa_supported(Isa::kAvx512Bf16)) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  engine::ThreadPool pool(2);
  for (int cols : {64, 172, 200, 2048})
    for (int gs : {32, 64, 96, 128})
      for (int bits : {4, 3}) {
        if (gs > cols + 31) continue;
        const int rows = bits == 3 ? 43 : 40;  // batch 1 runs 4-row tiles: 43 also takes the 1-row tail
        const std::vector<float> w = weights(rows, cols, bits == 3, 100 + cols + gs);
        const GroupQuantized gq = quantize_rtn_groups(w.data(), rows, cols, bits, gs, false);
        const std::vector<std::byte> blob = gq.pack();
        const engine::Matrix m = engine::packed_matrix(DType::kQ4Group, rows, cols, blob.data());
        const std::vector<float> dq = unpack(m);
        for (int batch : {1, 3, 8, 9, 11}) {  // 9: an 8-row tile plus a 1-row tail
          // Groups of a multiple of 128 at batch >= 2 take the int8 lanes kernel where the CPU has
          // VNNI (tests/engine/gguf_int8_path_test.cpp bounds it); the rest stay VDPBF16PS.
          if (batch >= 2 && gs % 128 == 0 && engine::isa_supported(Isa::kAvx512)) continue;
          std::mt19937 rng(batch + cols);
          std::normal_distribution<float> n(0.0f, 1.0f);
          std::vector<float> x(static_cast<std::size_t>(batch) * cols);
          for (float& v : x) v = n(rng);
          std::vector<float> y(static_cast<std::size_t>(batch) * rows);
          engine::matmul_isa(Isa::kAvx512Bf16, m, x.data(), batch, y.data(), &pool);
          for (int b = 0; b < batch; ++b)
            for (int r = 0; r < rows; ++r) {
              double exact = 0.0, mag = 0.0;
              for (int c = 0; c < cols; ++c) {
                const double xr = engine::bf16_to_f32(engine::f32_to_bf16(x[b * cols + c]));
                const std::size_t g = static_cast<std::size_t>(r) * gq.n_groups + c / gs;
                exact += static_cast<double>(dq[r * cols + c]) * xr;
                mag += static_cast<double>(gq.scales[g]) * (256 + gq.codes[r * cols + c] + gq.zeros[g]) * std::fabs(xr);
              }
              ASSERT_NEAR(y[b * rows + r], exact, mag * cols * 1.2e-7 + 1e-12)
                  << "cols " << cols << " gs " << gs << " bits " << bits << " batch " << batch << " row " << r;
            }
        }
      }
}
