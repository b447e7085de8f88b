// ggml block layouts (see gguf_blocks.h): sizes, type ids and the reference dequantization.
#include "qmeter/engine/gguf_blocks.h"

#include <fmt/format.h>

#include <cstring>

#include "qmeter/core/error.h"

namespace qmeter::engine {

bool is_gguf_block(DType d) { return d == DType::kGgufQ8_0 || d == DType::kGgufQ4_0 || d == DType::kGgufQ4K; }

int gguf_block_elems(DType d) {
  switch (d) {
    case DType::kGgufQ8_0: return kQ8_0Block;
    case DType::kGgufQ4_0: return kQ4_0Block;
    case DType::kGgufQ4K: return kQ4KBlock;
    default: throw Error(fmt::format("{} is not a GGUF block type", dtype_name(d)));
  }
}

int gguf_block_bytes(DType d) {
  switch (d) {
    case DType::kGgufQ8_0: return kQ8_0Bytes;
    case DType::kGgufQ4_0: return kQ4_0Bytes;
    case DType::kGgufQ4K: return kQ4KBytes;
    default: throw Error(fmt::format("{} is not a GGUF block type", dtype_name(d)));
  }
}

std::size_t gguf_row_bytes(DType d, int cols) {
  const int n = gguf_block_elems(d);
  if (cols % n != 0) throw Error(fmt::format("{}: a row of {} weights is not a whole number of {}-weight blocks", dtype_name(d), cols, n));
  return static_cast<std::size_t>(cols / n) * static_cast<std::size_t>(gguf_block_bytes(d));
}

std::uint32_t gguf_ggml_type(DType d) {
  switch (d) {
    case DType::kGgufQ8_0: return 8;
    case DType::kGgufQ4_0: return 2;
    case DType::kGgufQ4K: return 12;
    default: throw Error(fmt::format("{} is not a GGUF block type", dtype_name(d)));
  }
}

std::optional<DType> gguf_dtype_of_ggml(std::uint32_t ggml_type) {
  switch (ggml_type) {
    case 8: return DType::kGgufQ8_0;
    case 2: return DType::kGgufQ4_0;
    case 12: return DType::kGgufQ4K;
    default: return std::nullopt;
  }
}

void q4k_scale_min(int j, const std::uint8_t* q, std::uint8_t& sc, std::uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {  // low 4 bits in byte 8 + (j - 4), high 2 bits in the top of bytes j - 4 (scale) and j (min)
    sc = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void q4k_pack_scales(const std::uint8_t sc[8], const std::uint8_t m[8], std::uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<std::uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<std::uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

void gguf_row_to_f32(DType d, const void* row, int cols, float* out) {
  const auto* p = static_cast<const std::uint8_t*>(row);
  const std::size_t nb = gguf_row_bytes(d, cols) / static_cast<std::size_t>(gguf_block_bytes(d));
  auto f16 = [](const std::uint8_t* at) {
    std::uint16_t h;
    std::memcpy(&h, at, 2);
    return f16_to_f32(h);
  };
  for (std::size_t b = 0; b < nb; ++b) {
    if (d == DType::kGgufQ8_0) {
      const std::uint8_t* blk = p + b * kQ8_0Bytes;
      const float s = f16(blk);
      for (int i = 0; i < 32; ++i) out[b * 32 + i] = s * static_cast<float>(static_cast<std::int8_t>(blk[2 + i]));
    } else if (d == DType::kGgufQ4_0) {
      const std::uint8_t* blk = p + b * kQ4_0Bytes;
      const float s = f16(blk);
      for (int i = 0; i < 16; ++i) {
        out[b * 32 + i] = s * static_cast<float>((blk[2 + i] & 0xF) - 8);
        out[b * 32 + 16 + i] = s * static_cast<float>((blk[2 + i] >> 4) - 8);
      }
    } else {
      const std::uint8_t* blk = p + b * kQ4KBytes;
      const float dd = f16(blk), dmin = f16(blk + 2);
      const std::uint8_t* scales = blk + 4;
      const std::uint8_t* qs = blk + 16;
      float* o = out + b * 256;
      for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, m;
        q4k_scale_min(j, scales, sc, m);
        // As llama.cpp's dequantize_row_q4_K: d1 = d * sc and m1 = dmin * m rounded to f32 first,
        // then d1 * q - m1 (two statements: never contracted to an fma, so SIMD kernels can match).
        const float d1 = dd * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
        const std::uint8_t* q = qs + 32 * (j / 2);
        const int shift = (j % 2) * 4;
        for (int l = 0; l < 32; ++l) {
          const float scaled = d1 * static_cast<float>((q[l] >> shift) & 0xF);
          o[32 * j + l] = scaled - m1;
        }
      }
    }
  }
}

}  // namespace qmeter::engine
