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
// kNf4 (bitsandbytes NormalFloat4): codes index kNf4Values, one absmax per block of 64 input
//   columns (a shorter last block).  w[r][c] = kNf4Values[q[r][c]] * absmax[r][c / 64]
//   Row: codes as kQ4Group, then f32 absmax[nblocks], or with double quantization (flags bit 0)
//   u8 absmax codes[nblocks]; the tail holds f32 absmax2[ceil(rows*nblocks / 256)], f32 offset:
//   absmax[i] = kDynamicMap8[code[i]] * absmax2[i / 256] + offset, i = r * nblocks + b (the
//   flattened block index, as bitsandbytes' nested quantization of the absmax vector).
// kFp8Row / kFp8RowA8 (fp8-w8a16 / fp8-w8a8): E4M3 (OCP "fn": max 448, no inf) codes per output
//   channel scale.  w[r][c] = scale[r] * e4m3_to_f32(q[r][c])
//   header | u8 codes [rows][row_stride] | f32 scale [rows]. kFp8RowA8 also rounds each input
//   token to E4M3 with its own scale amax/448 (per-token dynamic) before the product.
// kQ8RowA8 (smoothquant-w8a8): kQ8Row's int8 codes and scales, plus i32 row sums (the
//   correction of the unsigned activations of VPDPBUSD); each input token is quantized to int8
//   with scale amax/127 and the products accumulate exactly in int32:
//   y[b][r] = (scale[r] * xscale[b]) * sum_c q[r][c] * xq[b][c]
//   header | int8 codes [rows][row_stride] | f32 scale [rows] | i32 rowsum [rows]
// kGgufQ8_0 / kGgufQ4_0 / kGgufQ4K: llama.cpp's blocks, headerless (gguf_blocks.h); is_packed()
//   is true for them, matrix_bytes() / matrix_row_to_f32() / packed_matrix() handle them, and
//   packed_header() does not apply.
#include <cstddef>
#include <cstdint>
#include <string>
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
  std::uint32_t flags;       // kNf4: bit 0 = double-quantized absmax
  std::uint32_t tail_bytes;  // bytes after the rows (per-matrix data)
  std::uint32_t reserved[7];
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
// kQ4Group with a column permutation (imported act-order GPTQ checkpoints, whose groups are not
// runs of contiguous input columns): header flags bit kQ4ColumnPermutation, and the tail holds
// i32 perm[cols]: stored column j is input column perm[j] (codes and groups are in stored order).
// matmul gathers x[perm[j]] once per call and runs the usual kQ4Group kernels (exllama's way);
// packed_row_to_f32 returns the row in input-column order.
inline constexpr std::uint32_t kQ4ColumnPermutation = 2u;
std::vector<std::byte> pack_q4_group_permuted(int rows, int cols, int bits, int group_size, const std::uint8_t* codes,
                                              const float* scales, const std::uint8_t* zeros, const std::int32_t* perm);
// The column permutation of a kQ4Group matrix (cols entries), or nullptr when it has none.
const std::int32_t* q4_column_permutation(const Matrix& m);
// Row `row` of a kQ4Group matrix in stored column order (what the kernels multiply with the
// gathered activations); packed_row_to_f32 is the same row in input-column order.
void q4_group_stored_row_to_f32(const Matrix& m, int row, float* out);

// The 16 NormalFloat4 values (QLoRA, Dettmers et al. 2023), ascending, -1 .. 1 with an exact 0.
extern const float kNf4Values[16];
// bitsandbytes' signed dynamic 8-bit map (create_dynamic_map(signed=True, 7, 8)): 256 ascending
// values in [-1, 1], used for the double quantization of NF4 absmax values.
const float* dynamic_map8();
// Nearest entry of dynamic_map8() (ties to the lower code).
std::uint8_t dynamic_map8_code(float v);
// kNf4: codes [rows][cols] in [0, 16). Plain: absmax [rows][nblocks] as f32. Double-quantized:
// absmax_codes [rows][nblocks], absmax2 [ceil(rows*nblocks/256)], offset.
std::vector<std::byte> pack_nf4(int rows, int cols, const std::uint8_t* codes, const float* absmax);
std::vector<std::byte> pack_nf4_double(int rows, int cols, const std::uint8_t* codes, const std::uint8_t* absmax_codes,
                                       const float* absmax2, float offset);
// The dequantized absmax values of row `row`'s blocks (nblocks floats), either format.
void nf4_row_absmax(const Matrix& m, int row, float* out);
// One double-quantized absmax: kDynamicMap8[code] * absmax2 + offset (the one place it is computed).
float nf4_double_absmax(std::uint8_t code, float absmax2, float offset);
constexpr int kNf4Block = 64;
constexpr int kNf4DoubleBlock = 256;

// E4M3 (fn): decode any code (0x7F / 0xFF are NaN), and round an f32 to the nearest E4M3 value
// (ties to even, saturating at +-448) as a code or as its f32 value.
float e4m3_to_f32(std::uint8_t code);
std::uint8_t f32_to_e4m3(float v);
float round_to_e4m3(float v);
constexpr float kE4m3Max = 448.0f;
// kFp8Row / kFp8RowA8 (dtype chooses): E4M3 codes [rows][cols], scales [rows].
std::vector<std::byte> pack_fp8_row(DType dtype, int rows, int cols, const std::uint8_t* codes, const float* scales);
// kQ8RowA8: int8 codes [rows][cols] in [-127, 127], scales [rows].
std::vector<std::byte> pack_q8_row_a8(int rows, int cols, const std::int8_t* codes, const float* scales);

// A Matrix view of a packed blob (which must outlive it and be 64-byte aligned for speed).
Matrix packed_matrix(DType dtype, int rows, int cols, const std::byte* blob);
// A stored blob of `size` bytes read from a file (the dtype is its header's): checks the magic,
// the dtype, the sizes against rows x cols, and throws qmeter::Error naming `what` otherwise.
// The blob must be 4-byte aligned (loaders copy misaligned ones).
Matrix packed_matrix_from_blob(const std::byte* blob, std::size_t size, int rows, int cols, const std::string& what);

}  // namespace qmeter::engine
