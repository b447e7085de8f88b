#pragma once
// Packed (quantized) weight layouts of the engine: what a Matrix of DType kQ8Row or kQ4Group
// points at. The quant module produces them (pack_*); the kernels (kernels_quant_*.cpp) and
// matrix_bytes() / matrix_row_to_f32() read them. Every blob starts with a 64-byte header so a
// Matrix view {dtype, rows, cols, data} stays self-describing (the group size lives there).
//
// kQ8Row   (w8a16): per-output-channel symmetric int8.   w[r][c] = scale[r] * q[r][c]
//   header | int8 codes [rows][row_stride] | f32 scale [rows]
// kQ4Group (w4a16 / w3a16, RTN / GPTQ / AWQ): group-wise 4-bit codes (3-bit methods use codes
//   0..7 in the same 4-bit container), one f16 scale and one u8 zero point per group of
//   `group_size` input columns (the last group of a row is shorter when cols is not a multiple).
//   w[r][c] = scale[r][g] * (q[r][c] - zero[r][g]),  g = c / group_size
//   Row r (row_stride bytes at 64 + r*row_stride): codes in blocks of 32 columns, 16 bytes per
//   block: column 32j+i (i < 16) in the low nibble of byte 16j+i, column 32j+16+i in its high
//   nibble (llama.cpp's q4_0 order: no interleave shuffle to unpack); then f16 scales[ngroups],
//   then u8 zeros[ngroups]. group_size is a multiple of 32, so groups start on a block.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qmeter/engine/kernels.h"

namespace qmeter::engine {

struct PackedHeader {
  std::uint32_t magic;       // kPackedMagic
  std::uint32_t dtype;       // the DType value, as a check
  std::uint32_t bits;        // 8, 4 or 3
  std::uint32_t group_size;  // kQ4Group: columns per group; kQ8Row: cols
  std::uint32_t n_groups;    // groups per row
  std::uint32_t row_stride;  // bytes per row (codes + per-row metadata)
  std::uint32_t codes_bytes; // bytes of codes at the start of each kQ4Group row
  std::uint32_t reserved[9];
};
static_assert(sizeof(PackedHeader) == 64);
inline constexpr std::uint32_t kPackedMagic = 0x4b435150;  // "PQCK"

bool is_packed(DType d);
// The header of a packed matrix (throws qmeter::Error when the blob's header does not match).
const PackedHeader& packed_header(const Matrix& m);
std::size_t packed_matrix_bytes(const Matrix& m);
void packed_row_to_f32(const Matrix& m, int row, float* out);

// kQ8Row: codes [rows][cols] in [-127, 127], scales [rows].
std::vector<std::byte> pack_q8_row(int rows, int cols, const std::int8_t* codes, const float* scales);
// kQ4Group: codes [rows][cols] in [0, 2^bits), scales / zeros [rows][n_groups]; scales are stored
// as f16 (quantizers should round their scales through f32_to_f16 first so the stored model is
// exactly the one they optimised).
std::vector<std::byte> pack_q4_group(int rows, int cols, int bits, int group_size, const std::uint8_t* codes,
                                     const float* scales, const std::uint8_t* zeros);
int q4_group_count(int cols, int group_size);

// A Matrix view of a packed blob (which must outlive it and be 64-byte aligned for speed).
Matrix packed_matrix(DType dtype, int rows, int cols, const std::byte* blob);

}  // namespace qmeter::engine
