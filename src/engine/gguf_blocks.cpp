// ggml block layouts (see gguf_blocks.h): the traits table, the packed-scale helpers and the
// reference dequantization of every type.
#include "qmeter/engine/gguf_blocks.h"

#include <fmt/format.h>

#include <cstring>

#include "kernels_quant_gguf.h"
#include "qmeter/core/error.h"

namespace qmeter::engine {

namespace {

float f16_at(const std::uint8_t* at) {
  std::uint16_t h;
  std::memcpy(&h, at, 2);
  return f16_to_f32(h);
}

// The 5th bits of a q5_0 / q5_1 block, weight i's at bit i.
std::uint32_t u32_at(const std::uint8_t* at) {
  std::uint32_t v;
  std::memcpy(&v, at, 4);
  return v;
}

// The reference decoders. Where a weight is (scale * q) - min, the two are separate statements
// (never contracted to an fma: the products are exact anyway, and this is the rounding the SIMD
// kernels reproduce with one fused multiply-subtract).

void q8_0_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kQ8_0Bytes, out += 32) {
    const float d = f16_at(b);
    for (int i = 0; i < 32; ++i) out[i] = d * static_cast<float>(static_cast<std::int8_t>(b[2 + i]));
  }
}

void q4_0_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kQ4_0Bytes, out += 32) {
    const float d = f16_at(b);
    for (int i = 0; i < 16; ++i) {
      out[i] = d * static_cast<float>((b[2 + i] & 0xF) - 8);
      out[16 + i] = d * static_cast<float>((b[2 + i] >> 4) - 8);
    }
  }
}

void q4_1_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kQ4_1Bytes, out += 32) {
    const float d = f16_at(b), m = f16_at(b + 2);
    for (int i = 0; i < 16; ++i) {
      const float lo = d * static_cast<float>(b[4 + i] & 0xF), hi = d * static_cast<float>(b[4 + i] >> 4);
      out[i] = lo + m;
      out[16 + i] = hi + m;
    }
  }
}

void q5_0_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kQ5_0Bytes, out += 32) {
    const float d = f16_at(b);
    const std::uint32_t h = u32_at(b + 2);
    for (int i = 0; i < 16; ++i) {
      const int lo = (b[6 + i] & 0xF) | static_cast<int>((h >> i) & 1) << 4;
      const int hi = (b[6 + i] >> 4) | static_cast<int>((h >> (i + 16)) & 1) << 4;
      out[i] = d * static_cast<float>(lo - 16);
      out[16 + i] = d * static_cast<float>(hi - 16);
    }
  }
}

void q5_1_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kQ5_1Bytes, out += 32) {
    const float d = f16_at(b), m = f16_at(b + 2);
    const std::uint32_t h = u32_at(b + 4);
    for (int i = 0; i < 16; ++i) {
      const int lo = (b[8 + i] & 0xF) | static_cast<int>((h >> i) & 1) << 4;
      const int hi = (b[8 + i] >> 4) | static_cast<int>((h >> (i + 16)) & 1) << 4;
      const float slo = d * static_cast<float>(lo), shi = d * static_cast<float>(hi);
      out[i] = slo + m;
      out[16 + i] = shi + m;
    }
  }
}

void iq4_nl_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kIQ4NLBytes, out += 32) {
    const float d = f16_at(b);
    for (int i = 0; i < 16; ++i) {
      out[i] = d * static_cast<float>(kIq4nlValues[b[2 + i] & 0xF]);
      out[16 + i] = d * static_cast<float>(kIq4nlValues[b[2 + i] >> 4]);
    }
  }
}

// q4_K and q5_K share scales and nibble order; qh (q5_K) adds bit j of qh[l] as bit 4.
void q45k_to_f32(const std::uint8_t* b, std::size_t n, float* out, bool five) {
  const int bytes = five ? kQ5KBytes : kQ4KBytes;
  for (std::size_t k = 0; k < n; ++k, b += bytes, out += 256) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const std::uint8_t* scales = b + 4;
    const std::uint8_t* qh = b + 16;
    const std::uint8_t* qs = five ? b + 48 : b + 16;
    for (int j = 0; j < 8; ++j) {
      std::uint8_t sc, m;
      q4k_scale_min(j, scales, sc, m);
      // As llama.cpp's dequantize_row_q4_K: d1 = d * sc and m1 = dmin * m rounded to f32 first.
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      const std::uint8_t* q = qs + 32 * (j / 2);
      const int shift = (j % 2) * 4;
      for (int l = 0; l < 32; ++l) {
        int code = (q[l] >> shift) & 0xF;
        if (five) code |= ((qh[l] >> j) & 1) << 4;
        const float scaled = d1 * static_cast<float>(code);
        out[32 * j + l] = scaled - m1;
      }
    }
  }
}
void q4_k_to_f32(const std::uint8_t* b, std::size_t n, float* out) { q45k_to_f32(b, n, out, false); }
void q5_k_to_f32(const std::uint8_t* b, std::size_t n, float* out) { q45k_to_f32(b, n, out, true); }

void q6_k_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kQ6KBytes, out += 256) {
    const float d = f16_at(b + 208);
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* ql = b + 64 * half;
      const std::uint8_t* qh = b + 128 + 32 * half;
      const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192 + 8 * half);
      float* o = out + 128 * half;
      for (int l = 0; l < 32; ++l) {
        const int q[4] = {(ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4, (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4,
                          (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4, (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4};
        for (int part = 0; part < 4; ++part) {
          const int i = 32 * part + l;
          const float ds = d * static_cast<float>(sc[i / 16]);
          o[i] = ds * static_cast<float>(q[part] - 32);
        }
      }
    }
  }
}

void q3_k_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kQ3KBytes, out += 256) {
    const std::uint8_t* hmask = b;
    const float d = f16_at(b + 108);
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* qs = b + 32 + 32 * half;
      for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) {
          const int low = (qs[l] >> (2 * j)) & 3;
          const bool high = (hmask[l] >> (4 * half + j)) & 1;
          const float ds = d * static_cast<float>(q3k_scale(8 * half + 2 * j + l / 16, b + 96) - 32);
          out[128 * half + 32 * j + l] = ds * static_cast<float>(low - (high ? 0 : 4));
        }
      }
    }
  }
}

void q2_k_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kQ2KBytes, out += 256) {
    const float d = f16_at(b + 80), dmin = f16_at(b + 82);
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* qs = b + 16 + 32 * half;
      for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) {
          const std::uint8_t s = b[8 * half + 2 * j + l / 16];
          const float dl = d * static_cast<float>(s & 0xF), ml = dmin * static_cast<float>(s >> 4);
          const float scaled = dl * static_cast<float>((qs[l] >> (2 * j)) & 3);
          out[128 * half + 32 * j + l] = scaled - ml;
        }
      }
    }
  }
}

void iq4_xs_to_f32(const std::uint8_t* b, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k, b += kIQ4XSBytes, out += 256) {
    const float d = f16_at(b);
    std::uint16_t scales_h;
    std::memcpy(&scales_h, b + 2, 2);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(iq4xs_scale(j, scales_h, b + 4) - 32);
      const std::uint8_t* qs = b + 8 + 16 * j;
      for (int i = 0; i < 16; ++i) {
        out[32 * j + i] = dl * static_cast<float>(kIq4nlValues[qs[i] & 0xF]);
        out[32 * j + 16 + i] = dl * static_cast<float>(kIq4nlValues[qs[i] >> 4]);
      }
    }
  }
}

namespace k = kernels;

// The one traits table (constant-initialized: safe to read from any static initializer).
constexpr GgufBlockTraits kTypes[] = {
    {DType::kGgufQ8_0, 8, "Q8_0", "gguf_q8_0", kQ8_0Block, kQ8_0Bytes, 0, -1, q8_0_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q8_0, k::avx512::matmul_gguf_q8_0},
    {DType::kGgufQ4_0, 2, "Q4_0", "gguf_q4_0", kQ4_0Block, kQ4_0Bytes, 0, -1, q4_0_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q4_0, k::avx512::matmul_gguf_q4_0},
    {DType::kGgufQ4_1, 3, "Q4_1", "gguf_q4_1", kQ4_1Block, kQ4_1Bytes, 0, 2, q4_1_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q4_1, k::avx512::matmul_gguf_q4_1},
    {DType::kGgufQ5_0, 6, "Q5_0", "gguf_q5_0", kQ5_0Block, kQ5_0Bytes, 0, -1, q5_0_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q5_0, k::avx512::matmul_gguf_q5_0},
    {DType::kGgufQ5_1, 7, "Q5_1", "gguf_q5_1", kQ5_1Block, kQ5_1Bytes, 0, 2, q5_1_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q5_1, k::avx512::matmul_gguf_q5_1},
    {DType::kGgufQ2K, 10, "Q2_K", "gguf_q2_k", kQ2KBlock, kQ2KBytes, 80, 82, q2_k_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q2_k, k::avx512::matmul_gguf_q2_k},
    {DType::kGgufQ3K, 11, "Q3_K", "gguf_q3_k", kQ3KBlock, kQ3KBytes, 108, -1, q3_k_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q3_k, k::avx512::matmul_gguf_q3_k},
    {DType::kGgufQ4K, 12, "Q4_K", "gguf_q4_k", kQ4KBlock, kQ4KBytes, 0, 2, q4_k_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q4_k, k::avx512::matmul_gguf_q4_k},
    {DType::kGgufQ5K, 13, "Q5_K", "gguf_q5_k", kQ5KBlock, kQ5KBytes, 0, 2, q5_k_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q5_k, k::avx512::matmul_gguf_q5_k},
    {DType::kGgufQ6K, 14, "Q6_K", "gguf_q6_k", kQ6KBlock, kQ6KBytes, 208, -1, q6_k_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_q6_k, k::avx512::matmul_gguf_q6_k},
    {DType::kGgufIQ4NL, 20, "IQ4_NL", "gguf_iq4_nl", kIQ4NLBlock, kIQ4NLBytes, 0, -1, iq4_nl_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_iq4_nl, k::avx512::matmul_gguf_iq4_nl},
    {DType::kGgufIQ4XS, 23, "IQ4_XS", "gguf_iq4_xs", kIQ4XSBlock, kIQ4XSBytes, 0, -1, iq4_xs_to_f32, k::scalar::matmul_gguf,
     k::avx2::matmul_gguf_iq4_xs, k::avx512::matmul_gguf_iq4_xs},
};

const GgufBlockTraits* find_traits(DType d) {
  for (const GgufBlockTraits& t : kTypes)
    if (t.dtype == d) return &t;
  return nullptr;
}

}  // namespace

std::span<const GgufBlockTraits> gguf_block_types() { return kTypes; }

bool is_gguf_block(DType d) { return find_traits(d) != nullptr; }

const GgufBlockTraits& gguf_block_traits(DType d) {
  if (const GgufBlockTraits* t = find_traits(d)) return *t;
  throw Error(fmt::format("{} is not a GGUF block type", dtype_name(d)));
}

int gguf_block_elems(DType d) { return gguf_block_traits(d).block_elems; }
int gguf_block_bytes(DType d) { return gguf_block_traits(d).block_bytes; }

std::size_t gguf_row_bytes(DType d, int cols) {
  const GgufBlockTraits& t = gguf_block_traits(d);
  if (cols % t.block_elems != 0)
    throw Error(fmt::format("{}: a row of {} weights is not a whole number of {}-weight blocks", t.dtype_name, cols,
                            t.block_elems));
  return static_cast<std::size_t>(cols / t.block_elems) * static_cast<std::size_t>(t.block_bytes);
}

std::uint32_t gguf_ggml_type(DType d) { return gguf_block_traits(d).ggml_type; }

std::optional<DType> gguf_dtype_of_ggml(std::uint32_t ggml_type) {
  for (const GgufBlockTraits& t : kTypes)
    if (t.ggml_type == ggml_type) return t.dtype;
  return std::nullopt;
}

void gguf_row_to_f32(DType d, const void* row, int cols, float* out) {
  const GgufBlockTraits& t = gguf_block_traits(d);
  const std::size_t nb = gguf_row_bytes(d, cols) / static_cast<std::size_t>(t.block_bytes);
  t.blocks_to_f32(static_cast<const std::uint8_t*>(row), nb, out);
}

void q4k_pack_scales(const std::uint8_t sc[8], const std::uint8_t m[8], std::uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<std::uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<std::uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

void q3k_pack_scales(const std::uint8_t sc[16], std::uint8_t out[12]) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 16; ++j) {
    out[j % 8] = static_cast<std::uint8_t>(out[j % 8] | (sc[j] & 0xF) << (j < 8 ? 0 : 4));
    out[8 + j % 4] = static_cast<std::uint8_t>(out[8 + j % 4] | ((sc[j] >> 4) & 3) << (2 * (j / 4)));
  }
}

}  // namespace qmeter::engine
