// The GGUF block types beyond q8_0 / q4_0 / q4_K (gguf_blocks.h): hand-written blocks of every
// type decode to hand-computed floats (scales, mins, signs, the packed 6-bit scales, q6_K's split
// bits, the iq4 table), every AVX2 / AVX-512 kernel matches the scalar reference on random shapes
// (batch 1..33, ragged row counts, row splits), and a GGUF file mixing every type loads and gives
// the logits of its dequantized-f32 copy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "model_test_util.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/packed_formats.h"
#include "test_support.h"

namespace qmeter::engine {
namespace {
using testing::all_logits;
using testing::GgufWriter;
using testing::max_abs_diff;
using testing::stepwise_logits;

std::vector<float> decode(DType d, const std::vector<std::uint8_t>& blk) {
  const int n = gguf_block_elems(d);
  EXPECT_EQ(blk.size(), static_cast<std::size_t>(gguf_block_bytes(d))) << dtype_name(d);
  std::vector<float> out(static_cast<std::size_t>(n));
  gguf_row_to_f32(d, blk.data(), n, out.data());
  return out;
}

void put_f16(std::vector<std::uint8_t>& b, std::size_t at, std::uint16_t h) { std::memcpy(&b[at], &h, 2); }

TEST(GgufTypes, TraitsTableSizesIdsAndNames) {
  struct Want {
    DType d;
    std::uint32_t id;
    int elems, bytes;
    const char* name;
  };
  // Sizes from the layouts: e.g. q5_1 = 2 + 2 + 4 + 16, q3_K = 32 + 64 + 12 + 2, q6_K = 128 + 64 + 16 + 2.
  for (const Want& w : {Want{DType::kGgufQ4_1, 3, 32, 20, "Q4_1"}, Want{DType::kGgufQ5_0, 6, 32, 22, "Q5_0"},
                        Want{DType::kGgufQ5_1, 7, 32, 24, "Q5_1"}, Want{DType::kGgufQ2K, 10, 256, 84, "Q2_K"},
                        Want{DType::kGgufQ3K, 11, 256, 110, "Q3_K"}, Want{DType::kGgufQ5K, 13, 256, 176, "Q5_K"},
                        Want{DType::kGgufQ6K, 14, 256, 210, "Q6_K"}, Want{DType::kGgufIQ4NL, 20, 32, 18, "IQ4_NL"},
                        Want{DType::kGgufIQ4XS, 23, 256, 136, "IQ4_XS"}}) {
    EXPECT_TRUE(is_gguf_block(w.d)) << w.name;
    EXPECT_TRUE(is_packed(w.d)) << w.name;
    EXPECT_EQ(gguf_ggml_type(w.d), w.id) << w.name;
    EXPECT_EQ(gguf_dtype_of_ggml(w.id), w.d) << w.name;
    EXPECT_EQ(gguf_block_elems(w.d), w.elems) << w.name;
    EXPECT_EQ(gguf_block_bytes(w.d), w.bytes) << w.name;
    EXPECT_EQ(gguf_block_traits(w.d).ggml_name, w.name);
    EXPECT_EQ(gguf_row_bytes(w.d, 2 * w.elems), static_cast<std::size_t>(2 * w.bytes)) << w.name;
    EXPECT_THROW(gguf_row_bytes(w.d, w.elems + 16), Error) << w.name;
  }
  EXPECT_EQ(dtype_name(DType::kGgufIQ4XS), "gguf_iq4_xs");
  EXPECT_EQ(gguf_block_types().size(), 12u);
  for (const GgufBlockTraits& t : gguf_block_types()) {
    EXPECT_NE(t.matmul_scalar, nullptr) << t.ggml_name;
    EXPECT_NE(t.matmul_avx2, nullptr) << t.ggml_name;
    EXPECT_NE(t.matmul_avx512, nullptr) << t.ggml_name;
  }
  // The f16 fields where the layouts put them (d last in q2_K / q3_K / q6_K).
  EXPECT_EQ(gguf_block_traits(DType::kGgufQ2K).scale_at, 80);
  EXPECT_EQ(gguf_block_traits(DType::kGgufQ2K).min_at, 82);
  EXPECT_EQ(gguf_block_traits(DType::kGgufQ3K).scale_at, 108);
  EXPECT_EQ(gguf_block_traits(DType::kGgufQ6K).scale_at, 208);
  EXPECT_EQ(gguf_block_traits(DType::kGgufQ6K).min_at, -1);
  EXPECT_EQ(gguf_block_traits(DType::kGgufQ5_1).min_at, 2);
  EXPECT_FALSE(gguf_dtype_of_ggml(9).has_value());   // Q8_1: not a storage type
  EXPECT_FALSE(gguf_dtype_of_ggml(16).has_value());  // IQ2_XXS
}

TEST(GgufTypes, Q4_1BlockAddsItsMin) {
  // d = 0.5 (0x3800), m = -1 (0xBC00); byte i: low nibble i (weight i), high 15 - i (weight 16 + i).
  std::vector<std::uint8_t> b(20);
  put_f16(b, 0, 0x3800);
  put_f16(b, 2, 0xBC00);
  for (int i = 0; i < 16; ++i) b[4 + i] = static_cast<std::uint8_t>(i | (15 - i) << 4);
  const auto x = decode(DType::kGgufQ4_1, b);
  EXPECT_EQ(x[0], -1.0f);   // 0.5 * 0 - 1
  EXPECT_EQ(x[3], 0.5f);    // 0.5 * 3 - 1
  EXPECT_EQ(x[16], 6.5f);   // 0.5 * 15 - 1
  EXPECT_EQ(x[31], -1.0f);  // 0.5 * 0 - 1
}

TEST(GgufTypes, Q5_0BlockTakesItsFifthBitsFromQh) {
  // d = 2; qh = 0x80020001: 5th bits of weights 0, 17 and 31; codes minus 16.
  std::vector<std::uint8_t> b(22);
  put_f16(b, 0, 0x4000);
  const std::uint32_t h = 0x80020001u;
  std::memcpy(&b[2], &h, 4);
  for (int i = 0; i < 16; ++i) b[6 + i] = static_cast<std::uint8_t>(i | (15 - i) << 4);
  const auto x = decode(DType::kGgufQ5_0, b);
  EXPECT_EQ(x[0], 0.0f);     // (0 | 16) - 16
  EXPECT_EQ(x[1], -30.0f);   // 2 * (1 - 16)
  EXPECT_EQ(x[15], -2.0f);   // 2 * (15 - 16)
  EXPECT_EQ(x[16], -2.0f);   // high nibble 15, bit 16 clear
  EXPECT_EQ(x[17], 28.0f);   // high nibble 14 | 16 = 30: 2 * 14
  EXPECT_EQ(x[31], 0.0f);    // high nibble 0 | 16
}

TEST(GgufTypes, Q5_1BlockIsUnsignedPlusMin) {
  // d = 0.25 (0x3400), m = 3 (0x4200); qh bits 1 and 16.
  std::vector<std::uint8_t> b(24);
  put_f16(b, 0, 0x3400);
  put_f16(b, 2, 0x4200);
  const std::uint32_t h = 0x00010002u;
  std::memcpy(&b[4], &h, 4);
  for (int i = 0; i < 16; ++i) b[8 + i] = static_cast<std::uint8_t>(i | (15 - i) << 4);
  const auto x = decode(DType::kGgufQ5_1, b);
  EXPECT_EQ(x[0], 3.0f);     // 0.25 * 0 + 3
  EXPECT_EQ(x[1], 7.25f);    // 0.25 * 17 + 3
  EXPECT_EQ(x[2], 3.5f);     // 0.25 * 2 + 3
  EXPECT_EQ(x[16], 10.75f);  // 0.25 * (15 + 16) + 3
  EXPECT_EQ(x[17], 6.5f);    // 0.25 * 14 + 3
}

TEST(GgufTypes, IQ4_NLBlockLooksUpTheTable) {
  // d = -0.5 (0xB800): the table's levels -127 .. 113 negated and halved.
  std::vector<std::uint8_t> b(18);
  put_f16(b, 0, 0xB800);
  for (int i = 0; i < 16; ++i) b[2 + i] = static_cast<std::uint8_t>(i | (15 - i) << 4);
  const auto x = decode(DType::kGgufIQ4NL, b);
  EXPECT_EQ(x[0], 63.5f);    // code 0 -> -127
  EXPECT_EQ(x[7], 5.0f);     // code 7 -> -10
  EXPECT_EQ(x[8], -0.5f);    // code 8 -> 1
  EXPECT_EQ(x[15], -56.5f);  // code 15 -> 113
  EXPECT_EQ(x[16], -56.5f);  // high nibble 15
  EXPECT_EQ(x[20], -19.0f);  // high nibble 11 -> 38
  EXPECT_EQ(x[31], 63.5f);   // high nibble 0
}

TEST(GgufTypes, Q5_KBlockHasQ4_KScalesAndAFifthBit) {
  // sc = {1, 2, 3, 4, 40, 50, 60, 63}, m = {0, 1, 2, 3, 33, 17, 48, 5}, packed by hand:
  // bytes 0-3: sc[j] | (sc[j+4] >> 4) << 6; 4-7: m[j] | (m[j+4] >> 4) << 6; 8-11: low nibbles of sc[j+4], m[j+4].
  const std::uint8_t scales[12] = {0x81, 0xC2, 0xC3, 0xC4, 0x80, 0x41, 0xC2, 0x03, 0x18, 0x12, 0x0C, 0x5F};
  const std::uint8_t sc[8] = {1, 2, 3, 4, 40, 50, 60, 63}, m[8] = {0, 1, 2, 3, 33, 17, 48, 5};
  std::uint8_t packed[12];
  q4k_pack_scales(sc, m, packed);
  EXPECT_EQ(std::vector<std::uint8_t>(packed, packed + 12), std::vector<std::uint8_t>(scales, scales + 12));
  std::vector<std::uint8_t> b(176);
  put_f16(b, 0, 0x3C00);  // d = 1
  put_f16(b, 2, 0x3800);  // dmin = 0.5
  std::memcpy(&b[4], scales, 12);
  b[16 + 3] = 0xFF;   // qh[3]: the 5th bit of weight 32j + 3 for every j
  b[16 + 20] = 0x10;  // qh[20]: only sub-block 4
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l) b[48 + 32 * k + l] = static_cast<std::uint8_t>(l % 16 | (15 - l % 16) << 4);
  const auto x = decode(DType::kGgufQ5K, b);
  EXPECT_EQ(x[3], 19.0f);           // j 0: 1 * (3 | 16) - 0
  EXPECT_EQ(x[32 + 3], 55.5f);      // j 1: 2 * (12 | 16) - 0.5
  EXPECT_EQ(x[128 + 20], 783.5f);   // j 4: 40 * (4 | 16) - 16.5
  EXPECT_EQ(x[160 + 20], 541.5f);   // j 5: 50 * 11 - 8.5 (bit 5 of qh[20] clear)
  EXPECT_EQ(x[224 + 5], 627.5f);    // j 7: 63 * 10 - 2.5
  EXPECT_EQ(x[224 + 3], 63.0f * 28 - 2.5f);  // j 7, l 3: (12 | 16)
}

TEST(GgufTypes, Q6_KBlockJoinsSplitLowAndHighBits) {
  // d = 0.5 at byte 208; int8 scales k - 8 (negative and positive).
  std::vector<std::uint8_t> b(210);
  put_f16(b, 208, 0x3800);
  for (int k = 0; k < 16; ++k) b[192 + k] = static_cast<std::uint8_t>(static_cast<std::int8_t>(k - 8));
  b[5] = 0xA3;        // ql[5]: weight 5 low 3, weight 69 low 10
  b[37] = 0x7E;       // ql[37]: weight 37 low 14, weight 101 low 7
  b[128 + 5] = 0xD8;  // qh[5] = 11 01 10 00: weights 5, 37, 69, 101 get high bits 0, 2, 1, 3
  b[64 + 16] = 0x01;  // second half: ql[64 + 16] low 1 (weight 144)
  b[160 + 16] = 0x03; // qh[32 + 16]: weight 144 high bits 3
  const auto x = decode(DType::kGgufQ6K, b);
  EXPECT_EQ(x[5], 116.0f);    // 0.5 * -8 * (3 - 32)
  EXPECT_EQ(x[37], -42.0f);   // 0.5 * -6 * ((14 | 32) - 32)
  EXPECT_EQ(x[69], 12.0f);    // 0.5 * -4 * ((10 | 16) - 32)
  EXPECT_EQ(x[101], -23.0f);  // 0.5 * -2 * ((7 | 48) - 32)
  EXPECT_EQ(x[144], 8.5f);    // 0.5 * 1 * ((1 | 48) - 32), scale 9
  EXPECT_EQ(x[0], 128.0f);    // 0.5 * -8 * -32
  EXPECT_EQ(x[255], -112.0f); // 0.5 * 7 * -32, scale 15
}

TEST(GgufTypes, Q3_KBlockUnpacksSixBitScalesAndTheHighBitMask) {
  // sc[j] = 4j + 2; bytes 0-7: low nibbles of sc[i] | sc[i + 8] << 4; bytes 8-11: the high 2 bits
  // of sc[i], sc[i+4], sc[i+8], sc[i+12] = 0, 1, 2, 3 -> 0b11100100.
  const std::uint8_t scales[12] = {0x22, 0x66, 0xAA, 0xEE, 0x22, 0x66, 0xAA, 0xEE, 0xE4, 0xE4, 0xE4, 0xE4};
  std::uint8_t sc[16], packed[12];
  for (int j = 0; j < 16; ++j) sc[j] = static_cast<std::uint8_t>(4 * j + 2);
  q3k_pack_scales(sc, packed);
  EXPECT_EQ(std::vector<std::uint8_t>(packed, packed + 12), std::vector<std::uint8_t>(scales, scales + 12));
  for (int j = 0; j < 16; ++j) EXPECT_EQ(q3k_scale(j, scales), 4 * j + 2) << j;
  std::vector<std::uint8_t> b(110);
  put_f16(b, 108, 0x3400);  // d = 0.25
  std::memcpy(&b[96], scales, 12);
  b[32 + 3] = 0x39;       // qs[3] = 00 11 10 01: low bits 1, 2, 3, 0 for k = 0..3 (first half)
  b[3] = 0x05;            // hmask[3]: high bits set for (half 0, k 0) and (half 0, k 2)
  b[32 + 32 + 20] = 0xC0; // qs[32 + 20]: second half, k 3 low bits 3
  b[20] = 0x80;           // hmask[20]: bit 7 = (half 1, k 3)
  const auto x = decode(DType::kGgufQ3K, b);
  EXPECT_EQ(x[3], -7.5f);    // scale 0: 0.25 * (2 - 32) * 1
  EXPECT_EQ(x[35], 11.0f);   // scale 2: 0.25 * -22 * (2 - 4)
  EXPECT_EQ(x[67], -10.5f);  // scale 4: 0.25 * -14 * 3
  EXPECT_EQ(x[99], 6.0f);    // scale 6: 0.25 * -6 * (0 - 4)
  EXPECT_EQ(x[244], 22.5f);  // scale 15: 0.25 * 30 * 3
  EXPECT_EQ(x[148], -6.0f);  // scale 9: 0.25 * 6 * (0 - 4)
  EXPECT_EQ(x[0], 30.0f);    // scale 0: 0.25 * -30 * -4
}

TEST(GgufTypes, Q2_KBlockHasFourBitScalesAndMins) {
  // d = 0.5, dmin = 0.25; scales[s] = s | (15 - s) << 4.
  std::vector<std::uint8_t> b(84);
  for (int s = 0; s < 16; ++s) b[s] = static_cast<std::uint8_t>(s | (15 - s) << 4);
  b[16 + 5] = 0xE4;       // qs[5] = 11 10 01 00: q 0, 1, 2, 3 for k = 0..3
  b[16 + 32 + 17] = 0x03; // second half, l 17, k 0: q 3
  put_f16(b, 80, 0x3800);
  put_f16(b, 82, 0x3400);
  const auto x = decode(DType::kGgufQ2K, b);
  EXPECT_EQ(x[5], -3.75f);   // s 0: 0.5 * 0 * 0 - 0.25 * 15
  EXPECT_EQ(x[37], -2.25f);  // s 2: 0.5 * 2 * 1 - 0.25 * 13
  EXPECT_EQ(x[69], 1.25f);   // s 4: 0.5 * 4 * 2 - 0.25 * 11
  EXPECT_EQ(x[101], 6.75f);  // s 6: 0.5 * 6 * 3 - 0.25 * 9
  EXPECT_EQ(x[145], 12.0f);  // s 9: 0.5 * 9 * 3 - 0.25 * 6
}

TEST(GgufTypes, IQ4_XSBlockCombinesScalesHighAndLow) {
  // ls = {0, 63, 32, 33, 31, 16, 48, 40}: low nibbles in scales_l (even j low, odd j high),
  // high 2 bits at bit 2j of scales_h = 0b10'11'01'01'10'10'11'00.
  const std::uint8_t scales_l[4] = {0xF0, 0x10, 0x0F, 0x80};
  const std::uint16_t scales_h = 0xB5AC;
  const int ls[8] = {0, 63, 32, 33, 31, 16, 48, 40};
  for (int j = 0; j < 8; ++j) EXPECT_EQ(iq4xs_scale(j, scales_h, scales_l), ls[j]) << j;
  std::vector<std::uint8_t> b(136);
  put_f16(b, 0, 0x3800);  // d = 0.5
  std::memcpy(&b[2], &scales_h, 2);
  std::memcpy(&b[4], scales_l, 4);
  b[8 + 16 + 2] = 0x8F;  // sub-block 1, byte 2: weight 34 code 15 (113), weight 50 code 8 (1)
  b[8 + 64] = 0x07;      // sub-block 4, byte 0: weight 128 code 7 (-10), weight 144 code 0
  const auto x = decode(DType::kGgufIQ4XS, b);
  EXPECT_EQ(x[0], 2032.0f);    // 0.5 * (0 - 32) * -127
  EXPECT_EQ(x[34], 1751.5f);   // 0.5 * 31 * 113
  EXPECT_EQ(x[50], 15.5f);     // 0.5 * 31 * 1
  EXPECT_EQ(x[128], 5.0f);     // 0.5 * -1 * -10
  EXPECT_EQ(x[144], 63.5f);    // 0.5 * -1 * -127
  EXPECT_EQ(x[255], -508.0f);  // 0.5 * 8 * -127
}

// The f16 fields of each type's block (random bytes elsewhere are all valid codes and scales).
std::vector<int> f16_offsets(DType d) {
  const GgufBlockTraits& t = gguf_block_traits(d);
  return t.min_at < 0 ? std::vector<int>{t.scale_at} : std::vector<int>{t.scale_at, t.min_at};
}

std::vector<std::uint8_t> random_rows(DType d, int rows, int cols, std::mt19937& rng) {
  std::vector<std::uint8_t> out(gguf_row_bytes(d, cols) * static_cast<std::size_t>(rows));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : out) b = static_cast<std::uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  const int bb = gguf_block_bytes(d);
  for (std::size_t at = 0; at < out.size(); at += static_cast<std::size_t>(bb))
    for (int off : f16_offsets(d)) {
      const std::uint16_t s = f32_to_f16(scale(rng) * (byte(rng) & 1 ? 1.0f : -1.0f));
      std::memcpy(&out[at + static_cast<std::size_t>(off)], &s, 2);
    }
  return out;
}

// Every SIMD kernel of the traits table against the scalar reference, called directly (not
// through matmul(), whose batched rows may take another path). The weights are identical, only
// the f32 summation order differs: each result is within 2 * cols * 2^-24 * sum |w x| of the
// exact dot product (the standard bound for n-term f32 sums), so of each other.
TEST(GgufTypes, SimdKernelsMatchTheScalarReference) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nx(0.0f, 1.0f);
  struct Variant {
    Isa isa;
    GgufMatmulRowsFn GgufBlockTraits::*fn;
  };
  int checked = 0;
  for (const GgufBlockTraits& t : gguf_block_types()) {
    for (const auto& [rows, nblocks, batches] :
         {std::tuple{17, 2, std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                                             18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33}},
          std::tuple{1, 1, std::vector<int>{1, 4, 9}}, std::tuple{33, 3, std::vector<int>{1, 5, 12}},
          std::tuple{6, 5, std::vector<int>{1, 8, 17}}}) {
      const int cols = t.block_elems * nblocks;
      const auto w = random_rows(t.dtype, rows, cols, rng);
      const Matrix m{t.dtype, rows, cols, w.data()};
      std::vector<float> wf(static_cast<std::size_t>(rows) * cols);
      for (int r = 0; r < rows; ++r) matrix_row_to_f32(m, r, wf.data() + static_cast<std::size_t>(r) * cols);
      for (int batch : batches) {
        std::vector<float> x(static_cast<std::size_t>(batch) * cols);
        for (float& v : x) v = nx(rng);
        std::vector<float> ref(static_cast<std::size_t>(batch) * rows);
        t.matmul_scalar(m, x.data(), nullptr, batch, ref.data(), 0, rows);
        for (const Variant& v : {Variant{Isa::kAvx2, &GgufBlockTraits::matmul_avx2},
                                 Variant{Isa::kAvx512, &GgufBlockTraits::matmul_avx512}}) {
          if (!isa_supported(v.isa)) continue;
          std::vector<float> simd(ref.size()), split(ref.size());
          (t.*v.fn)(m, x.data(), nullptr, batch, simd.data(), 0, rows);
          const int cut = rows / 2;  // two row ranges, as two threads would take them
          (t.*v.fn)(m, x.data(), nullptr, batch, split.data(), 0, cut);
          (t.*v.fn)(m, x.data(), nullptr, batch, split.data(), cut, rows);
          for (int b = 0; b < batch; ++b)
            for (int r = 0; r < rows; ++r) {
              double mag = 0;
              for (int c = 0; c < cols; ++c)
                mag += std::fabs(static_cast<double>(wf[static_cast<std::size_t>(r) * cols + c]) *
                                 x[static_cast<std::size_t>(b) * cols + c]);
              const std::size_t i = static_cast<std::size_t>(b) * rows + r;
              ASSERT_NEAR(simd[i], ref[i], 2.0 * cols * 0x1p-24 * mag)
                  << t.ggml_name << " " << isa_name(v.isa) << " rows " << rows << " cols " << cols << " batch " << batch
                  << " b " << b << " r " << r;
              ASSERT_EQ(split[i], simd[i]) << t.ggml_name << " " << isa_name(v.isa) << ": the row split changed a result";
              ++checked;
            }
        }
      }
    }
  }
  if (!isa_supported(Isa::kAvx2)) GTEST_SKIP() << "this CPU has no AVX2: only the scalar reference ran";
  EXPECT_GT(checked, 0);
}

TEST(GgufTypes, ScalarReferenceIsTheDequantizedDotProduct) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nx(0.0f, 1.0f);
  for (const GgufBlockTraits& t : gguf_block_types()) {
    const int rows = 3, cols = t.block_elems * 2;
    const auto w = random_rows(t.dtype, rows, cols, rng);
    const Matrix m{t.dtype, rows, cols, w.data()};
    std::vector<float> x(static_cast<std::size_t>(cols)), y(rows), row(static_cast<std::size_t>(cols));
    for (float& v : x) v = nx(rng);
    matmul_isa(Isa::kScalar, m, x.data(), 1, y.data(), nullptr);
    for (int r = 0; r < rows; ++r) {
      matrix_row_to_f32(m, r, row.data());
      double dot = 0, mag = 0;
      for (int c = 0; c < cols; ++c) dot += static_cast<double>(row[c]) * x[c], mag += std::fabs(row[c] * x[c]);
      EXPECT_NEAR(y[r], dot, cols * 0x1p-24 * mag) << t.ggml_name;
    }
  }
}


// ---- a GGUF file mixing every type ----

std::vector<float> as_floats(const std::vector<std::uint8_t>& bytes) {  // the test writer takes f32 words
  std::vector<float> out((bytes.size() + 3) / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

// Random rows whose weights have RMS about 1 / sqrt(cols), as a trained layer's: every weight is
// linear in its block's f16 fields (d, and dmin / m where the type has them), so scaling all of
// them scales the matrix. (Random codes at random scales make a chaotic network whose logits
// amplify any rounding difference.)
std::vector<std::uint8_t> scaled_rows(DType d, int rows, int cols, std::mt19937& rng) {
  std::vector<std::uint8_t> w = random_rows(d, rows, cols, rng);
  std::vector<float> row(static_cast<std::size_t>(cols));
  double sum2 = 0;
  const Matrix m{d, rows, cols, w.data()};
  for (int r = 0; r < rows; ++r) {
    matrix_row_to_f32(m, r, row.data());
    for (float v : row) sum2 += static_cast<double>(v) * v;
  }
  const double factor = 1.0 / std::sqrt(cols) / std::sqrt(sum2 / (static_cast<double>(rows) * cols));
  const int bb = gguf_block_bytes(d);
  for (std::size_t at = 0; at < w.size(); at += static_cast<std::size_t>(bb))
    for (int off : f16_offsets(d)) {
      std::uint16_t h;
      std::memcpy(&h, &w[at + static_cast<std::size_t>(off)], 2);
      h = f32_to_f16(static_cast<float>(f16_to_f32(h) * factor));
      std::memcpy(&w[at + static_cast<std::size_t>(off)], &h, 2);
    }
  return w;
}

// A llama model (dim 256, 2 layers, 4 heads / 2 KV heads, ffn 512, vocab 64) whose 16 matrices
// take the 12 block types in turn from `offset` (so token_embd.weight is type `offset`), with
// random blocks; norms 1.
std::vector<DType> write_mixed_model(const std::string& path, int offset, std::mt19937& rng) {
  const auto types = gguf_block_types();
  GgufWriter g;
  g.kv_string("general.architecture", "llama");
  for (auto [k, v] : {std::pair{"llama.embedding_length", 256u}, {"llama.block_count", 2u},
                      {"llama.feed_forward_length", 512u}, {"llama.attention.head_count", 4u},
                      {"llama.attention.head_count_kv", 2u}, {"llama.context_length", 64u}})
    g.kv_u32(k, v);
  std::vector<DType> used;
  auto mat = [&](const std::string& name, int rows, int cols) {
    const GgufBlockTraits& t = types[(static_cast<std::size_t>(offset) + used.size()) % types.size()];
    used.push_back(t.dtype);
    g.tensor(name, {static_cast<std::uint64_t>(cols), static_cast<std::uint64_t>(rows)},
             as_floats(scaled_rows(t.dtype, rows, cols, rng)), t.ggml_type);
  };
  auto ones = [&](const std::string& name, int n) { g.tensor(name, {static_cast<std::uint64_t>(n)}, std::vector<float>(n, 1.0f)); };
  mat("token_embd.weight", 64, 256);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    ones(p + "attn_norm.weight", 256);
    mat(p + "attn_q.weight", 256, 256);
    mat(p + "attn_k.weight", 128, 256);
    mat(p + "attn_v.weight", 128, 256);
    mat(p + "attn_output.weight", 256, 256);
    ones(p + "ffn_norm.weight", 256);
    mat(p + "ffn_gate.weight", 512, 256);
    mat(p + "ffn_up.weight", 512, 256);
    mat(p + "ffn_down.weight", 256, 512);
  }
  ones("output_norm.weight", 256);
  mat("output.weight", 64, 256);
  g.write(path);
  return used;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float f : v) m = std::max(m, std::fabs(f));
  return m;
}

// Every type as every kind of matrix (the token embedding included, dequantized row by row on
// lookup): the file loads with its blocks in place and its logits equal those of the same file
// dequantized to f32 at load. The weights are bit-identical in the two models; what differs is
// that the GGUF matmuls quantize activations to int8 per 32 values where the CPU has AVX-512 VNNI
// (decode and prefill alike; kernels_gguf_int8.h): relative error <= 2^-8 per value, which these
// random weights amplify through two layers and the cache of 7 steps: measured up to 2.7e-2 of
// the logit scale for decode and 1.3e-2 for prefill, so both are held to 5e-2 (a wrong decode of
// any block gives errors of the order of the logit scale). Without VNNI the f32-activation
// kernels give about 1e-6.
TEST(GgufTypes, FileMixingEveryTypeGivesTheLogitsOfItsF32Copy) {
  const std::string dir = qmeter::testing::test_output_dir("gguf_types_mixed");
  std::mt19937 rng(2024);
  const std::vector<int> tokens = {1, 17, 42, 5, 63, 0, 29};
  for (int offset = 0; offset < static_cast<int>(gguf_block_types().size()); ++offset) {
    const std::string f = dir + "/mixed" + std::to_string(offset) + ".gguf";
    const std::vector<DType> used = write_mixed_model(f, offset, rng);
    const auto q = load_model(f);
    LoadOptions dense;
    dense.weight_dtype = DType::kF32;
    const auto ref = load_model(f, dense);
    EXPECT_EQ(q->weights.token_embedding.dtype, used[0]);
    EXPECT_EQ(q->weights.layers[0].wq.dtype, used[1]);
    EXPECT_EQ(q->weights.layers[1].w_down.dtype, used[14]);
    EXPECT_EQ(q->weights.classifier.dtype, used[15]);
    EXPECT_EQ(ref->weights.layers[0].wq.dtype, DType::kF32);
    const std::vector<float> want = stepwise_logits(*ref, tokens);
    const std::vector<float> got = stepwise_logits(*q, tokens);
    ASSERT_EQ(got.size(), want.size());
    const float scale = max_abs(want);
    ASSERT_GT(scale, 0.0f);
    EXPECT_LE(max_abs_diff(got, want), 5e-2f * scale) << "token_embd " << dtype_name(used[0]);
    const std::vector<float> prefill = all_logits(*q, tokens);
    EXPECT_LE(max_abs_diff(prefill, want), 5e-2f * scale) << "token_embd " << dtype_name(used[0]);
  }
}

TEST(GgufTypes, UnsupportedTypeFailsNamingTheTensorAndType) {
  const std::string dir = qmeter::testing::test_output_dir("gguf_types_unsupported");
  const std::string f = dir + "/m.gguf";
  GgufWriter g;
  g.kv_string("general.architecture", "llama");
  for (auto [k, v] : {std::pair{"llama.embedding_length", 256u}, {"llama.block_count", 1u},
                      {"llama.feed_forward_length", 512u}, {"llama.attention.head_count", 4u}})
    g.kv_u32(k, v);
  g.tensor("token_embd.weight", {256, 64}, std::vector<float>(256 * 64 / 4), /*IQ2_XXS*/ 16);
  g.write(f);
  std::string e = "(loaded)";
  try {
    load_model(f);
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("m.gguf"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor 'token_embd.weight' has ggml type IQ2_XXS (16), not supported (F32, F16, BF16, Q8_0, Q4_0, "
                   "Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS are)"),
            std::string::npos)
      << e;
}

}  // namespace
}  // namespace qmeter::engine
