// The integer-activation matmul path (src/engine/kernels_gguf_int8.h) of every type that has it:
// hand-computed rows where the int8 rounding is exact, the activation conversion and the row
// decoders SIMD == scalar byte for byte, the VNNI kernels (batched, and batch-1 decoding in
// registers) == the scalar reference bit for bit, the table's dispatch (batch >= 1, any thread
// split) == the reference, and the error against the exact f32-activation product within a bound
// derived from the int8 rounding, for batch sizes 1..33, odd row counts and widths of several
// blocks (with partial 64-column chunks and, for 32-weight blocks, partial 256-column steps).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <tuple>
#include <vector>

#include "../../src/engine/kernels_dispatch.h"
#include "../../src/engine/kernels_gguf_int8.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/engine/thread_pool.h"

namespace qmeter::engine {
namespace {

namespace k = kernels;

// A random matrix of `dtype`: codes uniform, scales random normal f16 values (and, for the
// packed formats, random zero points), so every term of w = A * u + M is exercised.
struct TestMatrix {
  std::vector<std::byte> blob;
  Matrix m;
};

void put_f16(std::byte* p, float v) {
  const std::uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

TestMatrix random_matrix(DType dtype, int rows, int cols, std::mt19937& rng, int q4_group = 64) {
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  TestMatrix t;
  if (dtype == DType::kQ8Row || dtype == DType::kQ4Group) {
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(rows) * cols);
    if (dtype == DType::kQ8Row) {
      for (auto& c : codes) c = static_cast<std::uint8_t>(static_cast<std::int8_t>(static_cast<int>(rng() % 255u) - 127));
      std::vector<float> s(static_cast<std::size_t>(rows));
      for (auto& v : s) v = scale(rng);
      t.blob = pack_q8_row(rows, cols, reinterpret_cast<const std::int8_t*>(codes.data()), s.data());
    } else {
      for (auto& c : codes) c = static_cast<std::uint8_t>(rng() & 15u);
      const std::size_t g = static_cast<std::size_t>(rows) * q4_group_count(cols, q4_group);
      std::vector<float> s(g);
      std::vector<std::uint8_t> z(g);
      for (auto& v : s) v = f16_to_f32(f32_to_f16(scale(rng)));
      for (auto& v : z) v = static_cast<std::uint8_t>(rng() & 15u);
      t.blob = pack_q4_group(rows, cols, 4, q4_group, codes.data(), s.data(), z.data());
    }
    t.m = packed_matrix(dtype, rows, cols, t.blob.data());
    return t;
  }
  // GGUF blocks: random bytes, then each block's f16 fields (the traits' offsets) set to scales.
  std::vector<int> f16_fields = {gguf_block_traits(dtype).scale_at};
  if (gguf_block_traits(dtype).min_at >= 0) f16_fields.push_back(gguf_block_traits(dtype).min_at);
  t.blob.resize(static_cast<std::size_t>(rows) * gguf_row_bytes(dtype, cols));
  for (auto& b : t.blob) b = static_cast<std::byte>(rng());
  for (std::size_t off = 0; off < t.blob.size(); off += static_cast<std::size_t>(gguf_block_bytes(dtype)))
    for (int f : f16_fields) put_f16(t.blob.data() + off + f, scale(rng));
  t.m = packed_matrix(dtype, rows, cols, t.blob.data());
  return t;
}

// Widths of several blocks, not all multiples of 64 (a zero-padded last chunk) nor of 16.
int test_cols(DType d) {
  if (d == DType::kQ8Row || d == DType::kQ4Group) return 203;
  return is_gguf_block(d) && gguf_block_elems(d) == 256 ? 768 : 224;
}

std::vector<unsigned char> prepare(bool simd, const std::vector<float>& x, int batch, int cols, int block) {
  std::vector<unsigned char> p(k::int8_act_prepared_bytes(batch, cols) + 64, 0xCD);  // poison: every byte must be written
  void* at = p.data() + (64 - reinterpret_cast<std::uintptr_t>(p.data()) % 64) % 64;
  std::vector<unsigned char> out(k::int8_act_prepared_bytes(batch, cols));
  if (simd) k::avx512::int8_act_prepare_avx512(x.data(), batch, cols, block, at);
  else k::int8_act_prepare_scalar(x.data(), batch, cols, block, at);
  std::memcpy(out.data(), at, out.size());
  return out;
}

// Activations with a wide dynamic range between blocks (as real hidden states have).
std::vector<float> random_x(int batch, int cols, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(batch) * cols);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = n(rng) * (i % 97 == 0 ? 20.0f : 1.0f);
  return x;
}

bool have_avx512_vnni() { return isa_supported(Isa::kAvx512) && k::avx512::has_vnni(); }

TEST(GgufInt8Path, HandComputedRowsWhereTheInt8RoundingIsExact) {
  // Integer activations whose block maximum is 127 quantize exactly (d = 1, q = x), so the path
  // must return the exact dot product. q8_0: d = 0.5, codes i - 16; q4_0: d = 0.25, codes i % 16.
  const int cols = 64, batch = 2;
  std::vector<float> x(static_cast<std::size_t>(batch) * cols);
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < cols; ++i) x[static_cast<std::size_t>(b) * cols + i] = i % 32 == 5 ? 127.0f : static_cast<float>((i * (b + 3)) % 41 - 20);
  std::vector<std::byte> q8(2 * kQ8_0Bytes), q4(2 * kQ4_0Bytes);
  std::vector<double> w8(cols), w4(cols);
  for (int blk = 0; blk < 2; ++blk) {
    put_f16(q8.data() + blk * kQ8_0Bytes, 0.5f);
    put_f16(q4.data() + blk * kQ4_0Bytes, 0.25f);
    for (int i = 0; i < 32; ++i) {
      q8[static_cast<std::size_t>(blk * kQ8_0Bytes + 2 + i)] = static_cast<std::byte>(static_cast<std::int8_t>(i - 16));
      w8[static_cast<std::size_t>(32 * blk + i)] = 0.5 * (i - 16);
      const int code = (i + blk) % 16;  // element i of the block: low nibble of byte i (i < 16), high of byte i - 16
      auto& byte = q4[static_cast<std::size_t>(blk * kQ4_0Bytes + 2 + i % 16)];
      byte = static_cast<std::byte>(i < 16 ? (static_cast<int>(byte) & 0xF0) | code : (static_cast<int>(byte) & 0x0F) | code << 4);
      w4[static_cast<std::size_t>(32 * blk + i)] = 0.25 * (code - 8);
    }
  }
  const auto prepared = prepare(false, x, batch, cols, 32);
  for (auto [dtype, blob, w] : {std::tuple{DType::kGgufQ8_0, &q8, &w8}, std::tuple{DType::kGgufQ4_0, &q4, &w4}}) {
    const Matrix m{dtype, 1, cols, blob->data()};
    std::vector<float> y(batch);
    k::scalar::matmul_int8_act(m, x.data(), prepared.data(), batch, y.data(), 0, 1);
    for (int b = 0; b < batch; ++b) {
      double want = 0;
      for (int i = 0; i < cols; ++i) want += (*w)[static_cast<std::size_t>(i)] * x[static_cast<std::size_t>(b) * cols + i];
      EXPECT_EQ(y[static_cast<std::size_t>(b)], static_cast<float>(want)) << dtype_name(dtype) << " token " << b;
    }
  }
}

TEST(GgufInt8Path, ActivationConversionSimdEqualsScalar) {
  if (!have_avx512_vnni()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(3);
  for (int block : {32, 128}) {
    for (int cols : {32, 200, 224, 768, 1000}) {
      for (int batch : {1, 2, 5}) {
        std::vector<float> x = random_x(batch, cols, rng);
        std::fill(x.begin(), x.begin() + std::min(cols, block), 0.0f);  // an all-zero block: d = 0
        EXPECT_EQ(prepare(true, x, batch, cols, block), prepare(false, x, batch, cols, block))
            << cols << " columns, batch " << batch << ", blocks of " << block;
      }
    }
  }
}

TEST(GgufInt8Path, EveryTypeSimdEqualsScalarAndStaysWithinTheInt8RoundingBound) {
  std::mt19937 rng(11);
  ThreadPool pool(3);
  std::vector<std::pair<const k::Int8WeightType*, int>> cases;  // w4a16 with groups of 64 (A per chunk) and 128 (span 2)
  for (const k::Int8WeightType& type : k::int8_weight_types()) {
    cases.push_back({&type, 64});
    if (type.dtype == DType::kQ4Group) cases.push_back({&type, 128});
  }
  for (const auto& [tp, group] : cases) {
    const k::Int8WeightType& type = *tp;
    const DType dtype = type.dtype;
    SCOPED_TRACE(std::string(dtype_name(dtype)) + (dtype == DType::kQ4Group ? " group " + std::to_string(group) : ""));
    const int rows = 37, cols = test_cols(dtype);
    const TestMatrix t = random_matrix(dtype, rows, cols, rng, group);
    const int kpad = k::int8_act_kpad(cols), groups = k::int8_act_groups(cols);

    // Decoded rows: the SIMD decoder writes exactly the reference's values.
    std::vector<std::vector<std::uint8_t>> us;
    std::vector<std::vector<float>> as, ms;
    for (int r = 0; r < rows; ++r) {
      std::vector<std::uint8_t> u(static_cast<std::size_t>(kpad)), u2 = u;
      std::vector<float> a(static_cast<std::size_t>(kpad / 4)), a2 = a, m(static_cast<std::size_t>(groups)), m2 = m;
      type.decode_scalar(t.m, r, u.data(), a.data(), m.data());
      // The decomposition is the reference weights: A * u + M (exact, in double) rounds to the
      // dequantized row (which rounds it once, where a min is subtracted).
      std::vector<float> w(static_cast<std::size_t>(cols));
      matrix_row_to_f32(t.m, r, w.data());
      for (int c = 0; c < cols; ++c)
        ASSERT_EQ(static_cast<float>(static_cast<double>(a[c / 4]) * u[c] + m[c / 16]), w[c]) << "row " << r << " col " << c;
      if (type.decode_avx512 && have_avx512_vnni()) {
        type.decode_avx512(t.m, r, u2.data(), a2.data(), m2.data());
        ASSERT_EQ(u, u2) << "row " << r;
        ASSERT_EQ(a, a2) << "row " << r;
        ASSERT_EQ(m, m2) << "row " << r;
      }
      us.push_back(u), as.push_back(a), ms.push_back(m);
    }

    for (int batch = 1; batch <= 33; ++batch) {
      const std::vector<float> x = random_x(batch, cols, rng);
      const auto prepared = prepare(false, x, batch, cols, type.act_block);
      const k::Int8Activations v = k::int8_act_view(prepared.data(), batch, cols);
      std::vector<float> ref(static_cast<std::size_t>(batch) * rows);
      k::scalar::matmul_int8_act(t.m, x.data(), prepared.data(), batch, ref.data(), 0, rows);
      // The GGUF lanes kernel's reference (another f32 order over the same integer sums).
      std::vector<float> lanes_ref;
      if (is_gguf_block(dtype)) {
        lanes_ref.resize(ref.size());
        k::scalar::matmul_int8_lanes_gguf(t.m, x.data(), prepared.data(), batch, lanes_ref.data(), 0, rows);
      }
      if (have_avx512_vnni()) {
        // The VNNI kernel over two uneven row ranges, and the kernel table through matmul() on
        // 3 threads: bit-identical to the reference.
        std::vector<float> y(ref.size()), y2(ref.size());
        k::avx512::matmul_int8_act_vnni(t.m, x.data(), prepared.data(), batch, y.data(), 0, 13);
        k::avx512::matmul_int8_act_vnni(t.m, x.data(), prepared.data(), batch, y.data(), 13, rows);
        EXPECT_EQ(y, ref) << "batch " << batch;
        if (type.dot_vnni) {  // the batch-1 kernel (any batch is one token at a time), also bit-identical
          std::fill(y.begin(), y.end(), 0.0f);
          type.dot_vnni(t.m, x.data(), prepared.data(), batch, y.data(), 0, 8);  // 3-row tiles + 2
          type.dot_vnni(t.m, x.data(), prepared.data(), batch, y.data(), 8, rows);
          EXPECT_EQ(y, ref) << "batch-1 kernel, batch " << batch;
        }
        // w8a16 / w4a16 keep their f32 kernels at batch 1; where the lanes kernel serves them
        // (another summation order) its own test below bounds the difference.
        const bool gguf_lanes = is_gguf_block(dtype) && batch >= k::kGgufLanesMinBatch;
        if ((batch >= 2 || type.dot_vnni) && !(batch >= 2 && is_packed(dtype) && k::avx512::int8_lanes_supported(t.m)) && !gguf_lanes) {
          matmul_isa(Isa::kAvx512, t.m, x.data(), batch, y2.data(), &pool);
          EXPECT_EQ(y2, ref) << "batch " << batch;
        }
        if (is_gguf_block(dtype)) {
          // The GGUF lanes kernel (16-row tiles: 37 rows split at 13, token tiles of 16 and
          // partial ones) and, from kGgufLanesMinBatch, the table: bit-identical to its reference.
          std::vector<unsigned char> lp(k::avx512::int8_lanes_prepared_bytes(batch, cols));
          k::avx512::int8_lanes_prepare_b32(x.data(), batch, cols, lp.data());
          std::fill(y.begin(), y.end(), 0.0f);
          k::avx512::matmul_int8_lanes_gguf_vnni(t.m, x.data(), lp.data(), batch, y.data(), 0, 13);
          k::avx512::matmul_int8_lanes_gguf_vnni(t.m, x.data(), lp.data(), batch, y.data(), 13, rows);
          EXPECT_EQ(y, lanes_ref) << "GGUF lanes kernel, batch " << batch;
          if (gguf_lanes) {
            matmul_isa(Isa::kAvx512, t.m, x.data(), batch, y2.data(), &pool);
            EXPECT_EQ(y2, lanes_ref) << "batch " << batch;
          }
        }
      }
      // Error bound. With d = amax / 127 per block (32 or 128 values) and q = round(x * (1 / d)),
      // |x - d q| <= d (1/2 + 2^-22): the half step of rounding, plus 1 / d and x * (1 / d) each
      // rounded to f32 (relative 2^-24 each, times |x / d| <= 127: under 2^-17 d; 2^-22 is not
      // enough, so the bound uses 0.5001 d). So the int8 rounding moves a dot product by at most
      //   Q = sum over blocks of 0.5001 d_blk * sum_{i in blk} |w_i|.
      // The f32 arithmetic (the lane sums are exact integers, converted exactly): every lane
      // accumulates at most chunks + chunks / 4 fmas, each rounding relative 2^-24, plus 4 reduction adds,
      // over terms of total size at most T = sum_i (|A_i u_i| + |M_i|) |d_i q_i| (the two parts of
      // w_i kept apart, since the offset part cancels against the product part), so it adds at
      // most F = n 2^-24 T (1 + n 2^-24), n = chunks + chunks / 4 + 6; F uses 1.01 n 2^-24 T.
      // The reference is the dequantized weights times the f32 activations, summed in double; the
      // dequantized weights are A * u + M rounded once to f32 (relative 2^-24): W = 2^-24 sum |w x|.
      // The lanes reference rounds per 16- or 32-column scale unit A * dx, one fma and one or
      // two offset fmas: at most n_lanes = 3 kpad / 16 + 2 roundings on the same terms.
      const int chunks = kpad / 64, n = chunks + chunks / 4 + 6, n_lanes = 3 * kpad / 16 + 2;
      for (int b = 0; b < batch; ++b) {
        const float* xb = x.data() + static_cast<std::size_t>(b) * cols;
        for (int r = 0; r < rows; ++r) {
          std::vector<float> w(static_cast<std::size_t>(cols));
          matrix_row_to_f32(t.m, r, w.data());
          double exact = 0, q_bound = 0, terms = 0, wx = 0;
          for (int c = 0; c < cols; ++c) {
            const double d = v.dx[static_cast<std::size_t>(b) * (kpad / 4) + c / 4];
            const double xq = d * v.xq[static_cast<std::size_t>(b) * kpad + c];
            exact += static_cast<double>(w[c]) * xb[c];
            wx += std::fabs(static_cast<double>(w[c]) * xb[c]);
            q_bound += 0.5001 * d * std::fabs(w[c]);
            terms += (std::fabs(static_cast<double>(as[r][c / 4]) * us[r][c]) + std::fabs(ms[r][c / 16])) * std::fabs(xq);
          }
          const double bound = q_bound + 1.01 * n * 0x1p-24 * terms + 0x1p-24 * wx;
          const double got = ref[static_cast<std::size_t>(b) * rows + r];
          ASSERT_LE(std::fabs(got - exact), bound) << "batch " << batch << " token " << b << " row " << r;
          if (!lanes_ref.empty()) {
            const double lanes_bound = q_bound + 1.01 * n_lanes * 0x1p-24 * terms + 0x1p-24 * wx;
            ASSERT_LE(std::fabs(lanes_ref[static_cast<std::size_t>(b) * rows + r] - exact), lanes_bound)
                << "lanes reference, batch " << batch << " token " << b << " row " << r;
          }
        }
      }
    }
  }
}

TEST(GgufInt8Path, LanesKernelOfW8a16AndW4a16StaysWithinTheF32RoundingOfTheReference) {
  // The one-row-per-lane kernel (kernels_quant_int8_lanes_avx512.cpp) computes the same integer
  // sums as scalar::matmul_int8_act in another f32 order. Both round each of their f32 operations
  // once (relative 2^-24) on terms of total size at most T = sum_i (|A_i u_i| + |M_i|) |d_i q_i|:
  // the reference n_ref = chunks + chunks / 4 + 6 times per lane, the lanes kernel 3 per
  // 128-column block plus the 8-term sum of a block's d * sum(q); so they differ by at most
  // 1.01 (n_ref + n_lanes) 2^-24 T. 16-row tiles with ragged tails (37 rows split at 13), batch
  // 2..33 (token tiles of 16 and partial ones), widths with a partial last block and chunk.
  if (!have_avx512_vnni()) GTEST_SKIP() << "no AVX-512 VNNI";
  std::mt19937 rng(23);
  ThreadPool pool(3);
  for (auto [dtype, group, cols] : {std::tuple{DType::kQ8Row, 0, 203}, std::tuple{DType::kQ8Row, 0, 1000},
                                    std::tuple{DType::kQ4Group, 128, 203}, std::tuple{DType::kQ4Group, 256, 1000}}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)) + " group " + std::to_string(group) + " cols " + std::to_string(cols));
    const int rows = 37;
    const TestMatrix t = random_matrix(dtype, rows, cols, rng, group == 0 ? 64 : group);
    ASSERT_TRUE(k::avx512::int8_lanes_supported(t.m));
    const k::Int8WeightType& type = *k::int8_weight_type(dtype);
    const int kpad = k::int8_act_kpad(cols), groups = k::int8_act_groups(cols);
    const int chunks = kpad / 64, n_ref = chunks + chunks / 4 + 6, n_lanes = 3 * ((kpad + 127) / 128) + 8;
    for (int batch = 2; batch <= 33; ++batch) {
      const std::vector<float> x = random_x(batch, cols, rng);
      std::vector<unsigned char> prepared(k::avx512::int8_lanes_prepared_bytes(batch, cols));
      k::avx512::int8_lanes_prepare(x.data(), batch, cols, prepared.data());
      const k::Int8Activations v = k::int8_act_view(prepared.data(), batch, cols);
      std::vector<float> ref(static_cast<std::size_t>(batch) * rows), y(ref.size(), NAN), y2(ref.size(), NAN);
      k::scalar::matmul_int8_act(t.m, x.data(), prepared.data(), batch, ref.data(), 0, rows);
      k::avx512::matmul_int8_lanes_vnni(t.m, x.data(), prepared.data(), batch, y.data(), 0, 13);
      k::avx512::matmul_int8_lanes_vnni(t.m, x.data(), prepared.data(), batch, y.data(), 13, rows);
      matmul_isa(Isa::kAvx512, t.m, x.data(), batch, y2.data(), &pool);  // the table's row, 3 threads
      for (int r = 0; r < rows; ++r) {
        std::vector<std::uint8_t> u(static_cast<std::size_t>(kpad));
        std::vector<float> a(static_cast<std::size_t>(kpad / 4)), m(static_cast<std::size_t>(groups));
        type.decode_scalar(t.m, r, u.data(), a.data(), m.data());
        for (int b = 0; b < batch; ++b) {
          double terms = 0;
          for (int c = 0; c < cols; ++c)
            terms += (std::fabs(static_cast<double>(a[c / 4]) * u[c]) + std::fabs(m[c / 16])) *
                     std::fabs(v.dx[static_cast<std::size_t>(b) * (kpad / 4) + c / 4] * v.xq[static_cast<std::size_t>(b) * kpad + c]);
          const double bound = 1.01 * (n_ref + n_lanes) * 0x1p-24 * terms;
          const std::size_t i = static_cast<std::size_t>(b) * rows + r;
          ASSERT_LE(std::fabs(static_cast<double>(y[i]) - ref[i]), bound) << "batch " << batch << " token " << b << " row " << r;
          ASSERT_EQ(y2[i], y[i]) << "batch " << batch << " token " << b << " row " << r << " (thread split)";
        }
      }
    }
  }
}

TEST(GgufInt8Path, EveryGgufTypeHasTheIntegerPathAtBatchOne) {
  // Decode (batch 1) of every GGUF block type takes the int8 path where the CPU has VNNI (the
  // f32-activation kernel was compute-bound there), so the table's batch-1 row is the int8 one.
  for (const GgufBlockTraits& t : gguf_block_types()) {
    const k::Int8WeightType* i8 = k::int8_weight_type(t.dtype);
    ASSERT_NE(i8, nullptr) << dtype_name(t.dtype);
    EXPECT_NE(i8->dot_vnni, nullptr) << dtype_name(t.dtype);
    const k::MatmulKernel* row = k::find_matmul_kernel(Isa::kAvx512, t.dtype, 1);
    ASSERT_NE(row, nullptr) << dtype_name(t.dtype);
    EXPECT_EQ(row->rows, &k::avx512::matmul_int8_act) << dtype_name(t.dtype);
    EXPECT_NE(row->prepare, nullptr) << dtype_name(t.dtype);
    // Below AVX-512 batch 1 keeps the exact f32 kernels.
    EXPECT_EQ(k::find_matmul_kernel(Isa::kAvx2, t.dtype, 1)->prepare, nullptr) << dtype_name(t.dtype);
  }
}

}  // namespace
}  // namespace qmeter::engine
