#pragma once
// llama.cpp's (ggml's) quantized block layouts, bit for bit: what a Matrix of DType kGgufQ8_0,
// kGgufQ4_0 or kGgufQ4K points at. Unlike the qmeter packed blobs (packed_formats.h) these have
// no header: a matrix is `rows` rows of cols / block_elems blocks, row after row, exactly the
// bytes of a GGUF tensor, so GGUF files are used in place (memory-mapped). The block size is fixed
// per type, so {dtype, rows, cols, data} still describes the matrix completely. cols must be a
// multiple of the block (as in ggml, which has no partial blocks).
//
// q8_0 (ggml type 8), 32 weights, 34 bytes:  {f16 d; int8 qs[32]}          x[i] = d * qs[i]
// q4_0 (ggml type 2), 32 weights, 18 bytes:  {f16 d; u8 qs[16]}            x[i] = d * (q[i] - 8)
//   q[i] = qs[i] & 15 and q[i + 16] = qs[i] >> 4 for i < 16.
// q4_K (ggml type 12), 256 weights, 144 bytes: {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}
//   8 sub-blocks of 32 with 6-bit scale sc[j] and min m[j] (q4k_scale_min()):
//   x[32j + l] = (d * sc[j]) * q - (dmin * m[j]), q the 4-bit code of that weight:
//   for the 64-weight chunk k (sub-blocks 2k, 2k+1), byte qs[32k + l] holds weight 64k + l in its
//   low nibble and weight 64k + 32 + l in its high nibble.
//   scales[12]: for j < 4, scales[j] = sc[j] | (sc[j+4] >> 4) << 6 and scales[j+4] = m[j] | (m[j+4] >> 4) << 6;
//   scales[8 + i] = (sc[4+i] & 15) | (m[4+i] & 15) << 4 for i < 4 (llama.cpp's get_scale_min_k4).
#include <cstddef>
#include <cstdint>
#include <optional>

#include "qmeter/engine/kernels.h"

namespace qmeter::engine {

constexpr int kQ8_0Block = 32, kQ8_0Bytes = 34;
constexpr int kQ4_0Block = 32, kQ4_0Bytes = 18;
constexpr int kQ4KBlock = 256, kQ4KBytes = 144;

bool is_gguf_block(DType d);
int gguf_block_elems(DType d);  // weights per block
int gguf_block_bytes(DType d);
// Bytes of one row of `cols` weights (cols must be a multiple of the block).
std::size_t gguf_row_bytes(DType d, int cols);
// The ggml type id of a block DType (8, 2, 12), and the DType of a ggml id (nullopt: not a block type).
std::uint32_t gguf_ggml_type(DType d);
std::optional<DType> gguf_dtype_of_ggml(std::uint32_t ggml_type);

// Dequantizes `cols` weights of one row (the reference definition used by every kernel test).
void gguf_row_to_f32(DType d, const void* row, int cols, float* out);

// q4_K: sub-block j's 6-bit scale and min from the 12 packed bytes, and the packing of 8 of each.
void q4k_scale_min(int j, const std::uint8_t* scales, std::uint8_t& sc, std::uint8_t& m);
void q4k_pack_scales(const std::uint8_t sc[8], const std::uint8_t m[8], std::uint8_t out[12]);

}  // namespace qmeter::engine
