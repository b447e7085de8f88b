#pragma once
// Private: the in-register decoders of llama.cpp's block formats (gguf_blocks.h), shared by the
// AVX2 and AVX-512 kernels. Include it INSIDE a QMETER_KERNELS_BEGIN_<ISA> region: the decoders
// use AVX2 instructions only and compile into that ISA's code (anonymous namespace: each kernel
// file has its own copy, so the two targets never share one definition).
//
// A decoder turns 32-weight group g of a row into GgufGroup: the 32 integer codes as int8 in
// weight order, and the weights are d0 * q - m0 (weights 0..15) and d1 * q - m1 (16..31). Each
// product is exact in f32 and the fused multiply-subtract rounds once, so the kernels see exactly
// the weights of the scalar reference (gguf_row_to_f32). Types with "+ min" (q4_1, q5_1) store
// -min; types without a min store 0.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::engine::kernels {
namespace {

struct GgufGroup {
  __m256i q;
  float d0, d1, m0, m1;
};

__attribute__((always_inline)) inline float gguf_f16(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

__attribute__((always_inline)) inline void gguf_same_scale(GgufGroup& o, float d, float m) {
  o.d0 = o.d1 = d;
  o.m0 = o.m1 = m;
}

// 16 bytes of nibble pairs: low nibbles are weights 0..15, high nibbles 16..31.
__attribute__((always_inline)) inline __m256i gguf_nibbles(const std::uint8_t* p) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4), _mm_and_si128(bytes, low4));
}

// Byte i is 0xFF where bit i of h is set (q5_0 / q5_1 5th bits).
__attribute__((always_inline)) inline __m256i gguf_bits_to_bytes(std::uint32_t h) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(h)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

// Byte l is 0xFF where bit `bit` of p[l] is set (q3_K hmask, q5_K qh).
__attribute__((always_inline)) inline __m256i gguf_bit_of_bytes(const std::uint8_t* p, int bit) {
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(1 << bit));
  return _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), mask), mask);
}

// (p[l] >> shift) & mask for 32 bytes (shift < 8; the 16-bit shift's spill from the next byte
// lands above the mask).
__attribute__((always_inline)) inline __m256i gguf_shifted_bits(const std::uint8_t* p, int shift, int mask) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(static_cast<char>(mask)));
}

__attribute__((always_inline)) inline __m256i gguf_iq4_lookup(__m256i nibbles) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), nibbles);
}

struct DecodeQ8_0 {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ8_0Bytes;
    o.q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
    gguf_same_scale(o, gguf_f16(b), 0.0f);
  }
};

struct DecodeQ4_0 {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ4_0Bytes;
    o.q = _mm256_sub_epi8(gguf_nibbles(b + 2), _mm256_set1_epi8(8));
    gguf_same_scale(o, gguf_f16(b), 0.0f);
  }
};

struct DecodeQ4_1 {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ4_1Bytes;
    o.q = gguf_nibbles(b + 4);
    gguf_same_scale(o, gguf_f16(b), -gguf_f16(b + 2));
  }
};

struct DecodeQ5_0 {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ5_0Bytes;
    std::uint32_t h;
    std::memcpy(&h, b + 2, 4);
    const __m256i high = _mm256_and_si256(gguf_bits_to_bytes(h), _mm256_set1_epi8(16));
    o.q = _mm256_sub_epi8(_mm256_or_si256(gguf_nibbles(b + 6), high), _mm256_set1_epi8(16));
    gguf_same_scale(o, gguf_f16(b), 0.0f);
  }
};

struct DecodeQ5_1 {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ5_1Bytes;
    std::uint32_t h;
    std::memcpy(&h, b + 4, 4);
    const __m256i high = _mm256_and_si256(gguf_bits_to_bytes(h), _mm256_set1_epi8(16));
    o.q = _mm256_or_si256(gguf_nibbles(b + 8), high);
    gguf_same_scale(o, gguf_f16(b), -gguf_f16(b + 2));
  }
};

struct DecodeIQ4NL {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kIQ4NLBytes;
    o.q = gguf_iq4_lookup(gguf_nibbles(b + 2));
    gguf_same_scale(o, gguf_f16(b), 0.0f);
  }
};

// Group g of a 256-weight type is sub-block j = g % 8 of super-block g / 8.

// q4_K / q5_K: 32 nibbles of qs[32 * (j / 2) ..] (low for even j), q5_K's bit j of qh[l] as bit 4.
template <bool kFive>
struct DecodeQ45K {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * (kFive ? kQ5KBytes : kQ4KBytes);
    const int j = g % 8;
    std::uint8_t sc, m;
    q4k_scale_min(j, b + 4, sc, m);
    const std::uint8_t* qs = b + (kFive ? 48 : 16) + 32 * (j / 2);
    o.q = gguf_shifted_bits(qs, 4 * (j % 2), 0x0F);
    if (kFive) o.q = _mm256_or_si256(o.q, _mm256_and_si256(gguf_bit_of_bytes(b + 16, j), _mm256_set1_epi8(16)));
    gguf_same_scale(o, gguf_f16(b) * static_cast<float>(sc), gguf_f16(b + 2) * static_cast<float>(m));
  }
};
using DecodeQ4K = DecodeQ45K<false>;
using DecodeQ5K = DecodeQ45K<true>;

// q6_K: sub-block j is part j % 4 of half j / 4: low bits from ql (+32 for odd parts, high
// nibbles for parts 2 and 3), high 2 bits at bit 2 * part of qh; one int8 scale per 16 weights.
struct DecodeQ6K {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * kQ6KBytes;
    const int half = (g % 8) / 4, part = g % 4;
    const __m256i low = gguf_shifted_bits(b + 64 * half + 32 * (part & 1), part >= 2 ? 4 : 0, 0x0F);
    const __m256i high = gguf_shifted_bits(b + 128 + 32 * half, 2 * part, 3);
    o.q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 4)), _mm256_set1_epi8(32));
    const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192 + 8 * half + 2 * part);
    const float d = gguf_f16(b + 208);
    o.d0 = d * static_cast<float>(sc[0]);
    o.d1 = d * static_cast<float>(sc[1]);
    o.m0 = o.m1 = 0.0f;
  }
};

// q3_K: 2 low bits at bit 2k of qs[32 * half + l] (k = j % 4), the high bit (set: +0, clear: -4)
// at bit 4 * half + k of hmask[l]; 6-bit scales minus 32, one per 16 weights.
struct DecodeQ3K {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * kQ3KBytes;
    const int half = (g % 8) / 4, k = g % 4;
    const __m256i low = gguf_shifted_bits(b + 32 + 32 * half, 2 * k, 3);
    const __m256i four = _mm256_set1_epi8(4);
    o.q = _mm256_add_epi8(_mm256_sub_epi8(low, four), _mm256_and_si256(gguf_bit_of_bytes(b, 4 * half + k), four));
    const float d = gguf_f16(b + 108);
    o.d0 = d * static_cast<float>(q3k_scale(8 * half + 2 * k, b + 96) - 32);
    o.d1 = d * static_cast<float>(q3k_scale(8 * half + 2 * k + 1, b + 96) - 32);
    o.m0 = o.m1 = 0.0f;
  }
};

// q2_K: as q3_K's low bits (qs at byte 16), a 4-bit scale and min per 16 weights.
struct DecodeQ2K {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * kQ2KBytes;
    const int half = (g % 8) / 4, k = g % 4;
    o.q = gguf_shifted_bits(b + 16 + 32 * half, 2 * k, 3);
    const std::uint8_t s0 = b[8 * half + 2 * k], s1 = b[8 * half + 2 * k + 1];
    const float d = gguf_f16(b + 80), dmin = gguf_f16(b + 82);
    o.d0 = d * static_cast<float>(s0 & 0xF);
    o.d1 = d * static_cast<float>(s1 & 0xF);
    o.m0 = dmin * static_cast<float>(s0 >> 4);
    o.m1 = dmin * static_cast<float>(s1 >> 4);
  }
};

// iq4_xs: sub-block j is an iq4_nl block at qs + 16j with the 6-bit scale iq4xs_scale(j) - 32.
struct DecodeIQ4XS {
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * kIQ4XSBytes;
    const int j = g % 8;
    std::uint16_t scales_h;
    std::memcpy(&scales_h, b + 2, 2);
    o.q = gguf_iq4_lookup(gguf_nibbles(b + 8 + 16 * j));
    gguf_same_scale(o, gguf_f16(b) * static_cast<float>(iq4xs_scale(j, scales_h, b + 4) - 32), 0.0f);
  }
};

// Runs tile kernel fns[nb - 1] over batch rows of x in tiles of kTile (the last one ragged);
// fns[n - 1] computes n batch rows of rows [r0, r1) with x and y offset to the tile.
using GgufTileFn = void (*)(const Matrix& w, const float* x, float* y, int r0, int r1);
template <int kTile>
void gguf_run_tiles(const GgufTileFn (&fns)[kTile], const Matrix& w, const float* x, int batch, float* y, int r0, int r1) {
  (void)gguf_row_bytes(w.dtype, w.cols);  // throws for a partial block before any load
  for (int b0 = 0; b0 < batch; b0 += kTile) {
    const int nb = std::min(kTile, batch - b0);
    fns[nb - 1](w, x + static_cast<std::size_t>(b0) * w.cols, y + static_cast<std::size_t>(b0) * w.rows, r0, r1);
  }
}

}  // namespace
}  // namespace qmeter::engine::kernels

// The entry point matmul_gguf_<name> of one type, for a file that defines run_tiles<Decoder>.
#define QMETER_GGUF_DEFINE_ENTRY(name, Decoder)                                                                  \
  void matmul_gguf_##name(const Matrix& w, const float* x, const void*, int batch, float* y, int r0, int r1) { \
    run_tiles<Decoder>(w, x, batch, y, r0, r1);                                                                 \
  }

// Every (type, decoder) pair, for the per-ISA files to define their entry points with:
// X(suffix of matmul_gguf_<suffix>, decoder).
#define QMETER_GGUF_DECODERS(X)                                                                                   \
  X(q8_0, DecodeQ8_0) X(q4_0, DecodeQ4_0) X(q4_1, DecodeQ4_1) X(q5_0, DecodeQ5_0) X(q5_1, DecodeQ5_1)             \
  X(iq4_nl, DecodeIQ4NL) X(q2_k, DecodeQ2K) X(q3_k, DecodeQ3K) X(q4_k, DecodeQ4K) X(q5_k, DecodeQ5K) X(q6_k, DecodeQ6K) \
  X(iq4_xs, DecodeIQ4XS)
