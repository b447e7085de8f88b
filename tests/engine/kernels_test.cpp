// Dense kernels: conversions against exact known values and exhaustive round trips; every SIMD
// variant the CPU supports against the scalar reference (double accumulation) with error bounds
// derived from the arithmetic; exactness on integer data; independence of the thread count and
// of the batch composition.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "qmeter/core/error.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/thread_pool.h"

namespace qmeter::engine {
namespace {

constexpr double kU = 0x1p-24;  // unit roundoff of f32

// ---------------------------------------------------------------- conversions

TEST(Bf16Conversion, KnownValuesRoundToNearestEven) {
  auto bits = [](std::uint32_t u) { return f32_to_bf16(std::bit_cast<float>(u)); };
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(bits(0x3f808000), 0x3f80);  // 1 + 2^-8: a tie, the even neighbour is 0x3f80
  EXPECT_EQ(bits(0x3f818000), 0x3f82);  // 1 + 3*2^-8: a tie, the even neighbour is 0x3f82
  EXPECT_EQ(bits(0x3f808001), 0x3f81);  // just above the tie
  EXPECT_EQ(bits(0x3f807fff), 0x3f80);  // just below the tie
  EXPECT_EQ(bits(0x00018000), 0x0002);  // subnormal tie rounds to even
  EXPECT_EQ(bits(0x7f7fffff), 0x7f80);  // FLT_MAX is nearer 2^128 than bf16's largest: inf
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  // A NaN whose payload lies only in the dropped bits must not round to infinity.
  for (std::uint32_t nan : {0x7f800001u, 0x7fc00000u, 0xff800001u, 0x7fffffffu}) {
    const std::uint16_t h = bits(nan);
    EXPECT_EQ(h & 0x7f80, 0x7f80) << std::hex << nan;
    EXPECT_NE(h & 0x007f, 0) << std::hex << nan;
    EXPECT_EQ(h & 0x8000, (nan >> 16) & 0x8000) << std::hex << nan;
  }
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
  EXPECT_EQ(bf16_to_f32(0xbf80), -1.0f);
  EXPECT_TRUE(std::isinf(bf16_to_f32(0x7f80)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc1)));
}

TEST(Bf16Conversion, EveryValueRoundTripsAndRandomFloatsGoToTheNearest) {
  for (std::uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = bf16_to_f32(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
    } else {
      ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
    }
  }
  // Independent check: the result is the nearer of the two bf16 neighbours (ties: even).
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> any(0, 0x7f7effffu);  // finite, away from overflow
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t u = any(rng) | (i & 1 ? 0x80000000u : 0);
    const float f = std::bit_cast<float>(u);
    const std::uint16_t lo = static_cast<std::uint16_t>(u >> 16), hi = static_cast<std::uint16_t>(lo + 1);
    const double dlo = std::fabs(static_cast<double>(bf16_to_f32(lo)) - f);
    const double dhi = std::fabs(static_cast<double>(bf16_to_f32(hi)) - f);
    const std::uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
    ASSERT_EQ(f32_to_bf16(f), want) << std::hex << u;
  }
}

TEST(F16Conversion, KnownValuesRoundToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(0.5f), 0x3800);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);       // largest finite f16
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);      // below the tie with 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);       // the tie rounds to even: infinity
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);       // smallest subnormal
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);       // half of it: a tie, rounds to even 0
  EXPECT_EQ(f32_to_f16(0x1.8p-25f), 0x0001);     // above the tie
  EXPECT_EQ(f32_to_f16(0x1.8p-24f), 0x0002);     // 1.5 subnormal ulps: tie to even 2
  EXPECT_EQ(f32_to_f16(0x1p-14f), 0x0400);       // smallest normal
  EXPECT_EQ(f32_to_f16(0x1.ffcp-15f), 0x0400);   // largest subnormal + half ulp: tie, even = 0x400
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        // tie, even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);    // tie, even
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
  const std::uint16_t nan = f32_to_f16(std::nanf(""));
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_EQ(f16_to_f32(0x3555), 0x1.554p-2f);
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x83ff), -0x1.ff8p-15f);
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7c01)));
}

TEST(F16Conversion, EveryValueRoundTripsAndRandomFloatsGoToTheNearest) {
  for (std::uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = f16_to_f32(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
    } else {
      ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
    }
  }
  // Independent check over the f16 range: the nearer of the two f16 neighbours (ties: even).
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> mag(-26.0f, 16.0f);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::exp2(mag(rng)) * (i & 1 ? -1.0f : 1.0f);
    if (std::fabs(f) >= 65504.0f) continue;
    const std::uint16_t h = f32_to_f16(f);
    const std::uint16_t sign = f < 0 ? 0x8000 : 0;
    const std::uint16_t mag_bits = h & 0x7fff;
    const double d = std::fabs(static_cast<double>(f16_to_f32(h)) - f);
    const double d_up = std::fabs(static_cast<double>(f16_to_f32(sign | (mag_bits + 1))) - f);
    ASSERT_LE(d, d_up) << f;
    if (mag_bits > 0) {
      const double d_down = std::fabs(static_cast<double>(f16_to_f32(sign | (mag_bits - 1))) - f);
      ASSERT_LE(d, d_down) << f;
      if (d == d_down || d == d_up) ASSERT_EQ(mag_bits & 1, 0) << "tie not to even: " << f;
    }
  }
}

TEST(Conversion, ConvertRowToF32) {
  const std::uint16_t bf[] = {0x3f80, 0xc000, 0x4049};
  const std::uint16_t hf[] = {0x3c00, 0xc000, 0x0001};
  const float f[] = {1.5f, -3.0f, 7.0f};
  float out[3];
  convert_to_f32(DType::kBF16, bf, 3, out);
  EXPECT_EQ(std::vector<float>(out, out + 3), (std::vector<float>{1.0f, -2.0f, 3.140625f}));
  convert_to_f32(DType::kF16, hf, 3, out);
  EXPECT_EQ(std::vector<float>(out, out + 3), (std::vector<float>{1.0f, -2.0f, 0x1p-24f}));
  convert_to_f32(DType::kF32, f, 3, out);
  EXPECT_EQ(std::vector<float>(out, out + 3), (std::vector<float>{1.5f, -3.0f, 7.0f}));
}

// ---------------------------------------------------------------- ISA choice

TEST(IsaChoice, NamesParseAndTheScalarPathIsAlwaysThere) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmxBf16}) {
    EXPECT_EQ(isa_from_name(isa_name(isa)), isa);
  }
  EXPECT_FALSE(isa_from_name("sse9").has_value());
  EXPECT_TRUE(isa_supported(Isa::kScalar));
  EXPECT_TRUE(isa_supported(detected_isa()));
  // Each level includes the one below.
  if (isa_supported(Isa::kAvx512Bf16)) {
    EXPECT_TRUE(isa_supported(Isa::kAvx512));
  }
  if (isa_supported(Isa::kAvx512)) {
    EXPECT_TRUE(isa_supported(Isa::kAvx2));
  }
}

// detected_isa() reads $QMETER_ISA once per process, so these run in a fresh child process.
TEST(IsaChoiceDeathTest, EnvironmentCapsTheIsa) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("QMETER_ISA", "scalar", 1);
        std::exit(detected_isa() == Isa::kScalar ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        setenv("QMETER_ISA", "avx2", 1);
        std::exit(detected_isa() == (isa_supported(Isa::kAvx2) ? Isa::kAvx2 : Isa::kScalar) ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(IsaChoiceDeathTest, UnknownEnvironmentValueIsAUsageErrorNamingTheVariable) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("QMETER_ISA", "avx9000", 1);
        try {
          detected_isa();
        } catch (const UsageError& e) {
          std::exit(std::string(e.what()).find("QMETER_ISA='avx9000'") != std::string::npos ? 3 : 4);
        }
        std::exit(5);
      },
      ::testing::ExitedWithCode(3), "");
}

// ---------------------------------------------------------------- matmul

// Weights stored in `dtype`, with their exact values as f32 for the test's own arithmetic.
struct TestMatrix {
  DType dtype;
  int rows, cols;
  std::vector<std::uint16_t> half;
  std::vector<float> f32;    // F32 storage
  std::vector<float> value;  // the exact value of every element
  Matrix view() const {
    return {dtype, rows, cols, dtype == DType::kF32 ? static_cast<const void*>(f32.data()) : half.data()};
  }
};

TestMatrix make_matrix(DType dtype, int rows, int cols, std::mt19937& rng, bool integers) {
  TestMatrix m{dtype, rows, cols, {}, {}, {}};
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::uniform_int_distribution<int> small(-8, 8);
  for (long i = 0; i < static_cast<long>(rows) * cols; ++i) {
    const float v = integers ? static_cast<float>(small(rng)) : uni(rng);
    if (dtype == DType::kF32) {
      m.f32.push_back(v);
      m.value.push_back(v);
    } else if (dtype == DType::kBF16) {
      m.half.push_back(f32_to_bf16(v));
      m.value.push_back(bf16_to_f32(m.half.back()));
    } else {  // the dense 16-bit float types only (packed formats have their own tests)
      m.half.push_back(f32_to_f16(v));
      m.value.push_back(f16_to_f32(m.half.back()));
    }
  }
  return m;
}

std::vector<float> make_activations(int batch, int cols, std::mt19937& rng, bool integers) {
  std::vector<float> x(static_cast<size_t>(batch) * cols);
  std::uniform_real_distribution<float> uni(-2.0f, 2.0f);
  std::uniform_int_distribution<int> small(-8, 8);
  for (float& v : x) v = integers ? static_cast<float>(small(rng)) : uni(rng);
  return x;
}

// Worst-case rounding error of an f32 SIMD dot product of n terms: each of L >= 8 lanes sums at
// most ceil(n/8) exact products (FMA: one rounding per step), a tree of log2 L <= 4 levels adds
// the lanes, and the reference itself is rounded once to f32: gamma_k * sum|w*x| with
// k = ceil(n/8) + 4 + 1 (+1 for the reference's double sum); gamma_k = k u / (1 - k u).
double f32_dot_bound(int n, double abs_sum) {
  const double k = (n + 7) / 8 + 6;
  return k * kU / (1 - k * kU) * abs_sum;
}

struct Shape {
  int rows, cols, batch;
};

// Awkward shapes: columns that are not multiples of 8/16/32, a single row, every batch 1..17,
// stories260K's FFN (hidden 172, dim 64), and a few larger ones.
std::vector<Shape> awkward_shapes() {
  std::vector<Shape> s = {{1, 1, 1},   {1, 7, 1},    {3, 5, 2},     {2, 31, 3},   {5, 33, 1},
                          {64, 172, 1}, {172, 64, 1}, {64, 172, 5},  {172, 64, 7}, {7, 100, 17},
                          {1, 4097, 2}, {33, 257, 9}, {96, 1000, 1}, {40, 512, 16}, {13, 2053, 3}};
  for (int b = 1; b <= 17; ++b) s.push_back({6, 47, b});
  // AMX tiles: 16 rows x 16 tokens x 32 columns, two of each per block: odd and partial blocks.
  for (const Shape& t : {Shape{50, 70, 40}, Shape{33, 64, 33}, Shape{16, 32, 16}, Shape{47, 96, 49}}) s.push_back(t);
  return s;
}

class MatmulIsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) {
      GTEST_SKIP() << "this CPU lacks " << isa_name(GetParam()) << "; its kernels are not tested here";
    }
  }
};

// Is this (isa, dtype, batch) the bf16-activation path (see kernels.h)?
bool rounds_activations(Isa isa, DType dtype, int batch) {
  return (isa == Isa::kAvx512Bf16 || isa == Isa::kAmxBf16) && dtype == DType::kBF16 && batch > 1;
}

TEST(Matmul, ScalarReferenceMatchesHandComputedValues) {
  // W = [[1, 2, 3], [4, 5, 6]], x0 = [1, 0, -1], x1 = [0.5, 2, 1]
  const float w[] = {1, 2, 3, 4, 5, 6};
  const float x[] = {1, 0, -1, 0.5f, 2, 1};
  std::uint16_t wb[6], wh[6];
  for (int i = 0; i < 6; ++i) wb[i] = f32_to_bf16(w[i]), wh[i] = f32_to_f16(w[i]);
  for (const Matrix& m : {Matrix{DType::kF32, 2, 3, w}, Matrix{DType::kBF16, 2, 3, wb}, Matrix{DType::kF16, 2, 3, wh}}) {
    float y[4];
    matmul_isa(Isa::kScalar, m, x, 2, y, nullptr);
    EXPECT_EQ(y[0], -2.0f);   // 1 - 3
    EXPECT_EQ(y[1], -2.0f);   // 4 - 6
    EXPECT_EQ(y[2], 7.5f);    // 0.5 + 4 + 3
    EXPECT_EQ(y[3], 18.0f);   // 2 + 10 + 6
  }
}

TEST_P(MatmulIsaTest, RandomAndAwkwardShapesWithinTheRoundingBound) {
  // Ground truth: the test's own double sum of the exact products (every variant, the scalar
  // reference included, is checked against it).
  const Isa isa = GetParam();
  std::mt19937 rng(1234);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (const Shape& s : awkward_shapes()) {
      const TestMatrix w = make_matrix(dtype, s.rows, s.cols, rng, false);
      const std::vector<float> x = make_activations(s.batch, s.cols, rng, false);
      std::vector<float> y(static_cast<size_t>(s.batch) * s.rows, NAN);
      matmul_isa(isa, w.view(), x.data(), s.batch, y.data(), nullptr);
      const bool bf16_x = rounds_activations(isa, dtype, s.batch);
      for (int b = 0; b < s.batch; ++b) {
        for (int r = 0; r < s.rows; ++r) {
          double exact = 0, abs_sum = 0, exact_rounded_x = 0, abs_sum_rounded = 0;
          for (int c = 0; c < s.cols; ++c) {
            const double wv = w.value[static_cast<size_t>(r) * s.cols + c];
            const float xv = x[static_cast<size_t>(b) * s.cols + c];
            const double xr = bf16_to_f32(f32_to_bf16(xv));
            exact += wv * xv;
            abs_sum += std::fabs(wv * xv);
            exact_rounded_x += wv * xr;
            abs_sum_rounded += std::fabs(wv * xr);
          }
          const double got = y[static_cast<size_t>(b) * s.rows + r];
          const std::string where = std::string(dtype_name(dtype)) + " " + std::to_string(s.rows) + "x" +
                                    std::to_string(s.cols) + " batch " + std::to_string(s.batch) +
                                    " at b=" + std::to_string(b) + " r=" + std::to_string(r);
          if (!bf16_x) {
            ASSERT_LE(std::fabs(got - exact), f32_dot_bound(s.cols, abs_sum)) << where;
          } else {
            // Each activation rounded to bf16 moves the sum by at most 2^-9 * |w*x|; the rest is
            // f32 accumulation of exact bf16 products. Against the rounded activations only the
            // accumulation error remains (this pins down "rounded once, to nearest").
            const double bound = 0x1p-9 * abs_sum + f32_dot_bound(s.cols, abs_sum_rounded);
            ASSERT_LE(std::fabs(got - exact), bound) << where;
            ASSERT_LE(std::fabs(got - exact_rounded_x), f32_dot_bound(s.cols, abs_sum_rounded)) << where;
          }
        }
      }
    }
  }
}

TEST_P(MatmulIsaTest, SmallIntegerDataIsExact) {
  // Products and partial sums of small integers are exact in f32 (|sum| <= 8*8*4097 < 2^24), so
  // every variant must give the exact sum: catches any wrong index or lost tail element.
  const Isa isa = GetParam();
  std::mt19937 rng(99);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (const Shape& s : awkward_shapes()) {
      const TestMatrix w = make_matrix(dtype, s.rows, s.cols, rng, true);
      const std::vector<float> x = make_activations(s.batch, s.cols, rng, true);
      std::vector<float> y(static_cast<size_t>(s.batch) * s.rows, NAN), exact(y.size());
      matmul_isa(isa, w.view(), x.data(), s.batch, y.data(), nullptr);
      for (int b = 0; b < s.batch; ++b) {
        for (int r = 0; r < s.rows; ++r) {
          long sum = 0;
          for (int c = 0; c < s.cols; ++c) {
            sum += static_cast<long>(w.value[static_cast<size_t>(r) * s.cols + c]) *
                   static_cast<long>(x[static_cast<size_t>(b) * s.cols + c]);
          }
          exact[static_cast<size_t>(b) * s.rows + r] = static_cast<float>(sum);
        }
      }
      ASSERT_EQ(y, exact) << dtype_name(dtype) << " " << s.rows << "x" << s.cols << " batch " << s.batch;
    }
  }
}

TEST_P(MatmulIsaTest, ResultsAreIdenticalForAnyThreadCount) {
  const Isa isa = GetParam();
  std::mt19937 rng(5);
  ThreadPool pools[] = {ThreadPool(1), ThreadPool(2), ThreadPool(3), ThreadPool(4)};
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (const Shape& s : {Shape{100, 700, 1}, Shape{37, 1029, 3}, Shape{250, 300, 16}, Shape{1000, 64, 1}}) {
      const TestMatrix w = make_matrix(dtype, s.rows, s.cols, rng, false);
      const std::vector<float> x = make_activations(s.batch, s.cols, rng, false);
      std::vector<float> serial(static_cast<size_t>(s.batch) * s.rows);
      matmul_isa(isa, w.view(), x.data(), s.batch, serial.data(), nullptr);
      for (ThreadPool& pool : pools) {
        std::vector<float> y(serial.size(), NAN);
        matmul_isa(isa, w.view(), x.data(), s.batch, y.data(), &pool);
        ASSERT_EQ(y, serial) << dtype_name(dtype) << " " << s.rows << "x" << s.cols << " threads " << pool.size();
      }
    }
  }
}

TEST_P(MatmulIsaTest, AnActivationsResultDoesNotDependOnTheRestOfTheBatch) {
  // Batched decode must give each sequence the same numbers as decoding it alone. On the
  // bf16-activation path this holds among batches >= 2 (batch 1 keeps exact activations).
  const Isa isa = GetParam();
  std::mt19937 rng(77);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int rows = 45, cols = 333, batch = 13;
    const TestMatrix w = make_matrix(dtype, rows, cols, rng, false);
    const std::vector<float> x = make_activations(batch, cols, rng, false);
    std::vector<float> y(static_cast<size_t>(batch) * rows);
    matmul_isa(isa, w.view(), x.data(), batch, y.data(), nullptr);
    for (int b = 0; b < batch; ++b) {
      const int alone_batch = rounds_activations(isa, dtype, batch) ? 2 : 1;
      std::vector<float> xb(x.begin() + b * cols, x.begin() + (b + 1) * cols);
      if (alone_batch == 2) xb.insert(xb.end(), x.begin(), x.begin() + cols);
      std::vector<float> alone(static_cast<size_t>(alone_batch) * rows);
      matmul_isa(isa, w.view(), xb.data(), alone_batch, alone.data(), nullptr);
      for (int r = 0; r < rows; ++r) {
        ASSERT_EQ(alone[r], y[static_cast<size_t>(b) * rows + r]) << dtype_name(dtype) << " b=" << b << " r=" << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, MatmulIsaTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmxBf16),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

TEST(Matmul, InvalidArgumentsAreErrorsNotCrashes) {
  const float w[4] = {1, 2, 3, 4};
  const float x[2] = {1, 1};
  float y[2];
  EXPECT_THROW(matmul(Matrix{DType::kF32, 2, 2, w}, x, 0, y, nullptr), Error);
  EXPECT_THROW(matmul(Matrix{DType::kF32, 2, 0, w}, x, 1, y, nullptr), Error);
  EXPECT_THROW(matmul(Matrix{DType::kF32, 2, 2, nullptr}, x, 1, y, nullptr), Error);
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmxBf16}) {
    if (!isa_supported(isa)) {
      EXPECT_THROW(matmul_isa(isa, Matrix{DType::kF32, 2, 2, w}, x, 1, y, nullptr), Error);
      EXPECT_THROW(vector_ops(isa), Error);
    }
  }
}

// ---------------------------------------------------------------- vector helpers

TEST(VectorOps, ScalarReferenceMatchesHandComputedValues) {
  const VectorOps& ops = vector_ops(Isa::kScalar);
  const float a[] = {1, 2, 3}, b[] = {4, -5, 6};
  EXPECT_EQ(ops.dot(a, b, 3), 12.0f);
  float y[] = {1, 1, 1};
  ops.axpy(2.0f, a, y, 3);
  EXPECT_EQ(std::vector<float>(y, y + 3), (std::vector<float>{3, 5, 7}));
  const float x[] = {2, -2, 2, -2}, w[] = {1, 2, 3, 4};
  float out[4];
  ops.rmsnorm(x, w, 4, 0.0f, out);  // rms = 2
  EXPECT_EQ(std::vector<float>(out, out + 4), (std::vector<float>{1, -2, 3, -4}));
  float p[] = {0.0f, std::log(3.0f)};
  ops.softmax(p, 2);
  EXPECT_NEAR(p[0], 0.25f, 1e-7);
  EXPECT_NEAR(p[1], 0.75f, 1e-7);
  const float g[] = {0.0f, 1.0f}, u[] = {5.0f, 2.0f};
  ops.silu_mul(g, u, 2, out);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_NEAR(out[1], 2.0 / (1.0 + std::exp(-1.0)), 1e-7);
}

class VectorOpsIsaTest : public MatmulIsaTest {};

TEST_P(VectorOpsIsaTest, WithinTheRoundingBoundOfTheReference) {
  const VectorOps& ops = vector_ops(GetParam());
  const VectorOps& ref = vector_ops(Isa::kScalar);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uni(-4.0f, 4.0f);
  for (int n : {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 128, 172, 1000, 4099}) {
    std::vector<float> a(n), b(n), w(n);
    for (int i = 0; i < n; ++i) a[i] = uni(rng), b[i] = uni(rng), w[i] = uni(rng);
    double abs_sum = 0, sq_sum = 0;
    for (int i = 0; i < n; ++i) abs_sum += std::fabs(static_cast<double>(a[i]) * b[i]), sq_sum += a[i] * a[i];
    const std::string at = "n=" + std::to_string(n);

    EXPECT_LE(std::fabs(ops.dot(a.data(), b.data(), n) - static_cast<double>(ref.dot(a.data(), b.data(), n))),
              f32_dot_bound(n, abs_sum)) << at;

    // axpy: one FMA is correctly rounded; the reference rounds (double) y + a*x once more.
    std::vector<float> y1 = b, y2 = b;
    ops.axpy(0.37f, a.data(), y1.data(), n);
    ref.axpy(0.37f, a.data(), y2.data(), n);
    for (int i = 0; i < n; ++i) {
      ASSERT_LE(std::fabs(y1[i] - y2[i]), 2 * kU * (std::fabs(b[i]) + std::fabs(0.37 * a[i]))) << at << " i=" << i;
    }

    // rmsnorm: sum of squares within f32_dot_bound (relative, halved through the square root),
    // then sqrt, divide and two products: a few more roundings.
    std::vector<float> o1(n), o2(n);
    ops.rmsnorm(a.data(), w.data(), n, 1e-5f, o1.data());
    ref.rmsnorm(a.data(), w.data(), n, 1e-5f, o2.data());
    const double rms_rel = f32_dot_bound(n, 1.0) / 2 + 8 * kU;
    for (int i = 0; i < n; ++i) ASSERT_LE(std::fabs(o1[i] - o2[i]), rms_rel * std::fabs(o2[i])) << at << " i=" << i;
    // In place (out == x) is allowed.
    std::vector<float> inplace = a;
    ops.rmsnorm(inplace.data(), w.data(), n, 1e-5f, inplace.data());
    ASSERT_EQ(inplace, o1) << at;

    // softmax: x - max rounded in f32 (absolute error <= u |x - max|, i.e. that much relative
    // error after exp), e^x within 4 ulps (Taylor truncation < 6e-9 plus Horner roundings), the
    // sum of n such terms within f32_dot_bound, then one reciprocal and one product.
    std::vector<float> s1(a), s2(a);
    for (int i = 0; i < n; i += 5) s1[i] = s2[i] = a[i] * 20;  // a wide range of exponents
    const float max = *std::max_element(s1.begin(), s1.end());
    ops.softmax(s1.data(), n);
    ref.softmax(s2.data(), n);
    double total = 0;
    for (int i = 0; i < n; ++i) {
      const double shift = std::fabs(static_cast<double>(i % 5 == 0 ? a[i] * 20 : a[i]) - max);
      const double rel = shift * kU + 4 * kU + f32_dot_bound(n, 1.0) + 4 * kU + 2 * kU;
      ASSERT_LE(std::fabs(s1[i] - s2[i]), rel * s2[i] + 1e-37) << at << " i=" << i;
      total += s1[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-5) << at;

    // silu_mul: e^-g within 4 ulps, then a sum, a product and a division.
    ops.silu_mul(a.data(), b.data(), n, o1.data());
    ref.silu_mul(a.data(), b.data(), n, o2.data());
    for (int i = 0; i < n; ++i) ASSERT_LE(std::fabs(o1[i] - o2[i]), 10 * kU * std::fabs(o2[i]) + 1e-37) << at << " i=" << i;
  }
}

TEST_P(VectorOpsIsaTest, ExtremeInputsStayFinite) {
  const VectorOps& ops = vector_ops(GetParam());
  // Masked attention scores (-inf) get weight 0; huge logits do not overflow.
  std::vector<float> s = {-INFINITY, 0.0f, -INFINITY, 1000.0f, -1000.0f, 999.0f, -INFINITY, 3.0f, 1.0f};
  ops.softmax(s.data(), static_cast<int>(s.size()));
  EXPECT_EQ(s[0], 0.0f);
  EXPECT_EQ(s[2], 0.0f);
  EXPECT_NEAR(s[3], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(s[5], 1.0 - 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  const float g[] = {-200.0f, -90.0f, 90.0f, 200.0f, 0.0f};
  const float u[] = {1, 1, 1, 1, 1};
  float out[5];
  ops.silu_mul(g, u, 5, out);
  EXPECT_NEAR(out[0], 0.0f, 1e-30);
  EXPECT_NEAR(out[1], 0.0f, 1e-30);
  EXPECT_EQ(out[2], 90.0f);
  EXPECT_EQ(out[3], 200.0f);
  EXPECT_EQ(out[4], 0.0f);
}

// The scalar table is the reference (checked by hand above); kAvx512Bf16 shares kAvx512's.
INSTANTIATE_TEST_SUITE_P(SimdIsas, VectorOpsIsaTest, ::testing::Values(Isa::kAvx2, Isa::kAvx512),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

}  // namespace
}  // namespace qmeter::engine
