#pragma once
// llama.cpp's (ggml's) quantized block layouts, bit for bit: what a Matrix of a kGguf* DType points
// at. Unlike the qmeter packed blobs (packed_formats.h) these have no header: a matrix is `rows`
// rows of cols / block_elems blocks, row after row, exactly the bytes of a GGUF tensor, so GGUF
// files are used in place (memory-mapped). The block size is fixed per type, so
// {dtype, rows, cols, data} still describes the matrix completely. cols must be a multiple of the
// block (as in ggml, which has no partial blocks). All scales are little-endian IEEE f16.
//
// 32-weight blocks (q[i] the code of weight i; "nibbles": q[i] = qs[i] & 15, q[i + 16] = qs[i] >> 4
// for i < 16; qh[4] read as one little-endian u32 h, bit i the 5th bit of weight i):
// q8_0   (ggml 8),  34 bytes: {f16 d; int8 qs[32]}                     x[i] = d * qs[i]
// q4_0   (ggml 2),  18 bytes: {f16 d; u8 qs[16]}  nibbles              x[i] = d * (q[i] - 8)
// q4_1   (ggml 3),  20 bytes: {f16 d; f16 m; u8 qs[16]}  nibbles       x[i] = d * q[i] + m
// q5_0   (ggml 6),  22 bytes: {f16 d; u8 qh[4]; u8 qs[16]}             x[i] = d * ((q[i] | h_i << 4) - 16)
// q5_1   (ggml 7),  24 bytes: {f16 d; f16 m; u8 qh[4]; u8 qs[16]}      x[i] = d * (q[i] | h_i << 4) + m
// iq4_nl (ggml 20), 18 bytes: {f16 d; u8 qs[16]}  nibbles              x[i] = d * kIq4nlValues[q[i]]
//
// 256-weight super-blocks (K-quants), in sub-blocks of 16 or 32 with small integer scales:
// q4_K (ggml 12), 144 bytes: {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}
//   8 sub-blocks of 32 with 6-bit scale sc[j] and min m[j] (q4k_scale_min()):
//   x[32j + l] = (d * sc[j]) * q - (dmin * m[j]), q the 4-bit code of that weight:
//   for the 64-weight chunk k (sub-blocks 2k, 2k+1), byte qs[32k + l] holds weight 64k + l in its
//   low nibble and weight 64k + 32 + l in its high nibble.
//   scales[12]: for j < 4, scales[j] = sc[j] | (sc[j+4] >> 4) << 6 and scales[j+4] = m[j] | (m[j+4] >> 4) << 6;
//   scales[8 + i] = (sc[4+i] & 15) | (m[4+i] & 15) << 4 for i < 4 (llama.cpp's get_scale_min_k4).
// q5_K (ggml 13), 176 bytes: {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
//   as q4_K (same scales, same nibbles) with a 5th bit: weight 32j + l has bit j of qh[l] as its
//   bit 4 (q 0..31).
// q6_K (ggml 14), 210 bytes: {u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d}
//   two halves of 128 (n = 0, 1: ql + 64n, qh + 32n, scales + 8n); within a half, for l < 32 the
//   4 weights l, l + 32, l + 64, l + 96 take their low 4 bits from ql[l] low, ql[l + 32] low,
//   ql[l] high, ql[l + 32] high, and their high 2 bits from qh[l] bits 0-1, 2-3, 4-5, 6-7;
//   x = (d * scales[k]) * (q - 32), k = 8n + (index within the half) / 16.
// q3_K (ggml 11), 110 bytes: {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}
//   16 sub-blocks of 16 with 6-bit scales (q3k_scale()); two halves of 128 (n = 0, 1: qs + 32n);
//   weight 128n + 32k + l (k < 4, l < 32) has low bits (qs[32n + l] >> 2k) & 3 and high bit
//   bit 4n + k of hmask[l]: x = (d * (sc[8n + 2k + l / 16] - 32)) * (low - (high ? 0 : 4)).
// q2_K (ggml 10), 84 bytes: {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}
//   16 sub-blocks of 16, scales[s] = sc | m << 4 (4 bits each); the same 2-bit order as q3_K:
//   weight 128n + 32k + l has q = (qs[32n + l] >> 2k) & 3 and s = 8n + 2k + l / 16:
//   x = (d * sc[s]) * q - (dmin * m[s]).
// iq4_xs (ggml 23), 136 bytes: {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}
//   8 sub-blocks of 32, each as an iq4_nl block (qs + 16j, nibbles) with the 6-bit scale
//   ls[j] = (scales_l[j / 2] >> 4 (j % 2)) & 15 | ((scales_h >> 2j) & 3) << 4:
//   x = (d * (ls[j] - 32)) * kIq4nlValues[q].
//
// Every product above is exact in f32 (at most 24 significant bits), so x is rounded at most once
// (where a min is subtracted or added): SIMD kernels reproduce the reference weights exactly.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "qmeter/engine/kernels.h"

namespace qmeter::engine {

constexpr int kQ8_0Block = 32, kQ8_0Bytes = 34;
constexpr int kQ4_0Block = 32, kQ4_0Bytes = 18;
constexpr int kQ4_1Block = 32, kQ4_1Bytes = 20;
constexpr int kQ5_0Block = 32, kQ5_0Bytes = 22;
constexpr int kQ5_1Block = 32, kQ5_1Bytes = 24;
constexpr int kIQ4NLBlock = 32, kIQ4NLBytes = 18;
constexpr int kQ2KBlock = 256, kQ2KBytes = 84;
constexpr int kQ3KBlock = 256, kQ3KBytes = 110;
constexpr int kQ4KBlock = 256, kQ4KBytes = 144;
constexpr int kQ5KBlock = 256, kQ5KBytes = 176;
constexpr int kQ6KBlock = 256, kQ6KBytes = 210;
constexpr int kIQ4XSBlock = 256, kIQ4XSBytes = 136;

// iq4_nl / iq4_xs: the 16 non-uniform levels a 4-bit code selects (ggml's kvalues_iq4nl).
inline constexpr std::int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                 1,    13,   25,  38,  53,  69,  89,  113};

// The kernel signature of the private kernel table (kernels_dispatch.h's MatmulRowsFn).
using GgufMatmulRowsFn = void (*)(const Matrix& w, const float* x, const void* prepared, int batch, float* y,
                                  int row_begin, int row_end);

// One row per block type: everything that differs between them. Adding a type is one row here
// (gguf_blocks.cpp) plus its decoder and kernels.
struct GgufBlockTraits {
  DType dtype;
  std::uint32_t ggml_type;      // the id in a GGUF tensor info
  std::string_view ggml_name;   // "Q4_K", as llama.cpp names it
  std::string_view dtype_name;  // "gguf_q4_k", dtype_name()
  int block_elems;              // weights per block
  int block_bytes;
  int scale_at, min_at;         // byte offsets of the block's f16 d and f16 min / dmin (-1: none)
  // The reference dequantization of n consecutive blocks (the ground truth of every kernel).
  void (*blocks_to_f32)(const std::uint8_t* blocks, std::size_t n, float* out);
  // Matmul with f32 activations per ISA (kernels_quant_gguf.h); nullptr where an ISA has none
  // (the next lower ISA serves). The scalar one always exists.
  GgufMatmulRowsFn matmul_scalar, matmul_avx2, matmul_avx512;
};

std::span<const GgufBlockTraits> gguf_block_types();
bool is_gguf_block(DType d);
const GgufBlockTraits& gguf_block_traits(DType d);  // throws unless is_gguf_block(d)
int gguf_block_elems(DType d);  // weights per block
int gguf_block_bytes(DType d);
// Bytes of one row of `cols` weights (cols must be a multiple of the block).
std::size_t gguf_row_bytes(DType d, int cols);
// The ggml type id of a block DType, and the DType of a ggml id (nullopt: not a supported block type).
std::uint32_t gguf_ggml_type(DType d);
std::optional<DType> gguf_dtype_of_ggml(std::uint32_t ggml_type);

// Dequantizes `cols` weights of one row (the reference definition used by every kernel test).
void gguf_row_to_f32(DType d, const void* row, int cols, float* out);

// q4_K / q5_K: sub-block j's 6-bit scale and min from the 12 packed bytes, and the packing of 8 of each.
// (Inline: the kernels call the unpacking helpers once per 32 weights.)
inline void q4k_scale_min(int j, const std::uint8_t* q, std::uint8_t& sc, std::uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {  // low 4 bits in byte 8 + (j - 4), high 2 bits in the top of bytes j - 4 (scale) and j (min)
    sc = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
void q4k_pack_scales(const std::uint8_t sc[8], const std::uint8_t m[8], std::uint8_t out[12]);
// q3_K: sub-block j's (< 16) 6-bit scale, 0..63 (the weight scale is d * (that - 32)): low 4 bits
// in scales[j % 8] (low nibble for j < 8, high nibble after), high 2 bits at bit 2 (j / 4) of
// scales[8 + j % 4]; and the packing of 16 such.
inline int q3k_scale(int j, const std::uint8_t* scales) {
  const int low = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | high << 4;
}
void q3k_pack_scales(const std::uint8_t sc[16], std::uint8_t out[12]);
// iq4_xs: sub-block j's (< 8) 6-bit scale, 0..63 (the weight scale is d * (that - 32)).
inline int iq4xs_scale(int j, std::uint16_t scales_h, const std::uint8_t* scales_l) {
  return ((scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | ((scales_h >> (2 * j)) & 3) << 4;
}

}  // namespace qmeter::engine
