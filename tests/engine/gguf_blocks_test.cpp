// llama.cpp block formats (gguf_blocks.h): hand-written blocks decode to hand-computed floats, the
// q4_K scale packing matches bytes worked out by hand, and the GGUF loader's checks of block
// tensors (SIMD vs scalar for every block type: gguf_types_test.cpp).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "model_test_util.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/packed_formats.h"
#include "test_support.h"

namespace qmeter::engine {
namespace {
using testing::GgufWriter;

std::vector<float> decode(DType d, const std::vector<std::uint8_t>& row, int cols) {
  std::vector<float> out(static_cast<std::size_t>(cols));
  gguf_row_to_f32(d, row.data(), cols, out.data());
  return out;
}

TEST(GgufBlocks, SizesAndTypeIds) {
  EXPECT_EQ(gguf_row_bytes(DType::kGgufQ8_0, 64), 68u);   // 2 x (2 + 32)
  EXPECT_EQ(gguf_row_bytes(DType::kGgufQ4_0, 64), 36u);   // 2 x (2 + 16)
  EXPECT_EQ(gguf_row_bytes(DType::kGgufQ4K, 512), 288u);  // 2 x (2 + 2 + 12 + 128)
  EXPECT_THROW(gguf_row_bytes(DType::kGgufQ4_0, 48), Error);
  EXPECT_THROW(gguf_row_bytes(DType::kGgufQ4K, 64), Error);
  EXPECT_EQ(matrix_bytes(Matrix{DType::kGgufQ4K, 3, 512, nullptr}), 864u);
  EXPECT_TRUE(is_packed(DType::kGgufQ8_0));
  EXPECT_EQ(gguf_ggml_type(DType::kGgufQ4_0), 2u);
  EXPECT_EQ(gguf_ggml_type(DType::kGgufQ8_0), 8u);
  EXPECT_EQ(gguf_ggml_type(DType::kGgufQ4K), 12u);
  EXPECT_EQ(gguf_dtype_of_ggml(12), DType::kGgufQ4K);
  EXPECT_FALSE(gguf_dtype_of_ggml(16).has_value());  // IQ2_XXS: not supported
}

TEST(GgufBlocks, Q8_0HandWrittenBlockDecodes) {
  // d = 0.5 (f16 0x3800, little-endian), codes i - 16, and -128 in the last slot.
  std::vector<std::uint8_t> blk = {0x00, 0x38};
  for (int i = 0; i < 32; ++i) blk.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(i - 16)));
  blk[2 + 31] = 0x80;
  const auto x = decode(DType::kGgufQ8_0, blk, 32);
  EXPECT_EQ(x[0], -8.0f);
  EXPECT_EQ(x[16], 0.0f);
  EXPECT_EQ(x[17], 0.5f);
  EXPECT_EQ(x[30], 7.0f);
  EXPECT_EQ(x[31], -64.0f);
}

TEST(GgufBlocks, Q4_0HandWrittenBlockDecodes) {
  // d = -2 (f16 0xC000); byte i: low nibble i (element i), high nibble 15 - i (element 16 + i).
  std::vector<std::uint8_t> blk = {0x00, 0xC0};
  for (int i = 0; i < 16; ++i) blk.push_back(static_cast<std::uint8_t>(i | ((15 - i) << 4)));
  const auto x = decode(DType::kGgufQ4_0, blk, 32);
  EXPECT_EQ(x[0], 16.0f);    // -2 * (0 - 8)
  EXPECT_EQ(x[8], -0.0f);    // -2 * 0
  EXPECT_EQ(x[15], -14.0f);  // -2 * (15 - 8)
  EXPECT_EQ(x[16], -14.0f);  // high nibble of byte 0 = 15
  EXPECT_EQ(x[31], 16.0f);   // high nibble of byte 15 = 0
  EXPECT_EQ(x[20], -6.0f);   // byte 4's high nibble 11: -2 * 3
}

// Sub-block scales and mins of the q4_K tests, and their 12 bytes worked out by hand:
//   j = 0: 63 | (5 >> 4) << 6 = 0x3F;  3 | (33 >> 4) << 6 = 0x83;  (5 & 15) | (33 & 15) << 4 = 0x15
//   j = 1: 1 | (40 >> 4) << 6 = 0x81; 63 | (7 >> 4) << 6 = 0x3F;  8 | 7 << 4 = 0x78
//   j = 2: 32 | (63 >> 4) << 6 = 0xE0; 0 | (50 >> 4) << 6 = 0xC0; 15 | 2 << 4 = 0x2F
//   j = 3: 17 | 0 = 0x11;              12 | 0 = 0x0C;             9 | 1 << 4 = 0x19
const std::uint8_t kSc[8] = {63, 1, 32, 17, 5, 40, 63, 9};
const std::uint8_t kMin[8] = {3, 63, 0, 12, 33, 7, 50, 1};
const std::uint8_t kPacked[12] = {0x3F, 0x81, 0xE0, 0x11, 0x83, 0x3F, 0xC0, 0x0C, 0x15, 0x78, 0x2F, 0x19};

TEST(GgufBlocks, Q4KScalesPackAsWorkedOutByHand) {
  std::uint8_t out[12];
  q4k_pack_scales(kSc, kMin, out);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(out[i], kPacked[i]) << "byte " << i;
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, m;
    q4k_scale_min(j, kPacked, sc, m);
    EXPECT_EQ(sc, kSc[j]) << j;
    EXPECT_EQ(m, kMin[j]) << j;
  }
}

TEST(GgufBlocks, Q4KHandWrittenSuperBlockDecodes) {
  // d = 0.5 (0x3800), dmin = 0.25 (0x3400); chunk k's byte l: low nibble l % 16 (sub-block 2k),
  // high nibble 15 - l % 16 (sub-block 2k + 1).  x = 0.5 * sc * q - 0.25 * m.
  std::vector<std::uint8_t> blk = {0x00, 0x38, 0x00, 0x34};
  blk.insert(blk.end(), kPacked, kPacked + 12);
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l) blk.push_back(static_cast<std::uint8_t>((l % 16) | ((15 - l % 16) << 4)));
  ASSERT_EQ(blk.size(), 144u);
  const auto x = decode(DType::kGgufQ4K, blk, 256);
  EXPECT_EQ(x[0], -0.75f);     // sc 63, q 0, m 3
  EXPECT_EQ(x[5], 156.75f);    // 0.5 * 63 * 5 - 0.75
  EXPECT_EQ(x[32], -8.25f);    // sub-block 1: 0.5 * 1 * 15 - 0.25 * 63
  EXPECT_EQ(x[138], 16.75f);   // sub-block 4, q 10: 0.5 * 5 * 10 - 0.25 * 33
  EXPECT_EQ(x[226], 58.25f);   // sub-block 7, q 13: 0.5 * 9 * 13 - 0.25 * 1
  EXPECT_EQ(x[64 + 17], 0.5f * 32 * 1 - 0.0f);  // sub-block 2 (m 0), l 17 -> q 1
}

std::string load_error(const std::string& path) {
  try {
    load_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}

GgufWriter llama_header() {
  GgufWriter g;
  g.kv_string("general.architecture", "llama");
  for (auto [k, v] : {std::pair{"llama.embedding_length", 64u}, {"llama.block_count", 1u},
                      {"llama.feed_forward_length", 172u}, {"llama.attention.head_count", 8u}})
    g.kv_u32(k, v);
  return g;
}

TEST(GgufLoader, BlockTensorsAreBoundsChecked) {
  const std::string dir = qmeter::testing::test_output_dir("gguf_block_errors");
  const std::string f = dir + "/m.gguf";
  // Q4_K rows must be whole 256-weight super-blocks: 64 is not.
  GgufWriter partial = llama_header();
  partial.tensor("token_embd.weight", {64, 512}, std::vector<float>(64 * 512), /*Q4_K*/ 12);
  partial.write(f);
  std::string e = load_error(f);
  EXPECT_NE(e.find("m.gguf"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor 'token_embd.weight' of type Q4_K has rows of 64 weights, not a multiple of its 256-weight block"),
            std::string::npos)
      << e;
  // Q4_0 [64 x 512] needs 512 rows x 2 blocks x 18 bytes = 18432 bytes; 40 are there.
  GgufWriter truncated = llama_header();
  truncated.tensor("token_embd.weight", {64, 512}, std::vector<float>(10), /*Q4_0*/ 2);
  truncated.write(f);
  e = load_error(f);
  EXPECT_NE(e.find("truncated GGUF file: tensor 'token_embd.weight' needs data bytes [0, 18432) but only 40 exist"),
            std::string::npos)
      << e;
  // Norms must stay dense.
  GgufWriter norm = llama_header();
  norm.tensor("token_embd.weight", {64, 512}, std::vector<float>(64 * 512 * 34 / 32 / 4), /*Q8_0*/ 8);
  norm.tensor("blk.0.attn_norm.weight", {64}, std::vector<float>(64 * 34 / 32 / 4), /*Q8_0*/ 8);
  norm.write(f);
  e = load_error(f);
  EXPECT_NE(e.find("tensor 'blk.0.attn_norm.weight' is gguf_q8_0; vectors (norms, biases) must be F32, F16 or BF16"),
            std::string::npos)
      << e;
}

}  // namespace
}  // namespace qmeter::engine
