#pragma once
// Private: the in-register decoders of llama.cpp's block formats (gguf_blocks.h), shared by the
// AVX2 and AVX-512 kernels. Include it INSIDE a QMETER_KERNELS_BEGIN_<ISA> region: the decoders
// use AVX2 instructions only and compile into that ISA's code (anonymous namespace: each kernel
// file has its own copy, so the two targets never share one definition).
//
// A decoder turns 32-weight group g of a row into GgufGroup: the 32 integer codes as int8 in
// weight order (two halves of 16), and the weights are d0 * q - m0 (weights 0..15) and
// d1 * q - m1 (16..31). Each product is exact in f32 and the fused multiply-subtract rounds once,
// so the kernels see exactly the weights of the scalar reference (gguf_row_to_f32). Types with
// "+ min" (q4_1, q5_1) store -min. Kept 128 bits wide: the halves feed one 512-bit (or two
// 256-bit) widening conversions each, and no lane crossing is spent on joining or splitting them.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::engine::kernels {
namespace {

struct GgufGroup {
  __m128i q0, q1;  // codes of weights 0..15 and 16..31
  float d0, d1, m0, m1;
};

// What a decoder fills in, so the kernels skip the rest: kMin (m0 / m1 are not 0), kSplitScale
// (d1 / m1 may differ from d0 / m0: one scale per 16 weights). Without them d1 = d0, m = 0.

__attribute__((always_inline)) inline float gguf_f16(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

__attribute__((always_inline)) inline __m128i gguf_load16(const std::uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// 16 bytes of nibble pairs: low nibbles are weights 0..15, high nibbles 16..31.
__attribute__((always_inline)) inline void gguf_nibbles(const std::uint8_t* p, GgufGroup& o) {
  const __m128i bytes = gguf_load16(p);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  o.q0 = _mm_and_si128(bytes, low4);
  o.q1 = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
}

// Byte i is 16 where bit i of h (16 bits) is set, else 0 (q5_0 / q5_1 5th bits).
__attribute__((always_inline)) inline __m128i gguf_bit4_of_bits(std::uint32_t h) {
  const __m128i spread = _mm_shuffle_epi8(_mm_set1_epi16(static_cast<short>(h)),
                                          _mm_set_epi64x(0x0101010101010101, 0x0000000000000000));
  const __m128i bit = _mm_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread, bit), bit), _mm_set1_epi8(16));
}

// Byte l is `value` where bit `bit` of p[l] is set, else 0 (16 bytes: q3_K hmask, q5_K qh).
__attribute__((always_inline)) inline __m128i gguf_bit_of_bytes(const std::uint8_t* p, int bit, int value) {
  const __m128i mask = _mm_set1_epi8(static_cast<char>(1 << bit));
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(gguf_load16(p), mask), mask), _mm_set1_epi8(static_cast<char>(value)));
}

// (p[l] >> shift) & mask for 16 bytes (shift < 8; the 16-bit shift's spill from the next byte
// lands above the mask).
__attribute__((always_inline)) inline __m128i gguf_shifted_bits(const std::uint8_t* p, int shift, int mask) {
  return _mm_and_si128(_mm_srl_epi16(gguf_load16(p), _mm_cvtsi32_si128(shift)), _mm_set1_epi8(static_cast<char>(mask)));
}

__attribute__((always_inline)) inline __m128i gguf_iq4_lookup(__m128i nibbles) {
  return _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)), nibbles);
}

struct DecodeQ8_0 {
  static constexpr bool kMin = false, kSplitScale = false;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ8_0Bytes;
    o.q0 = gguf_load16(b + 2);
    o.q1 = gguf_load16(b + 18);
    o.d0 = gguf_f16(b);
  }
};

struct DecodeQ4_0 {
  static constexpr bool kMin = false, kSplitScale = false;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ4_0Bytes;
    gguf_nibbles(b + 2, o);
    o.q0 = _mm_sub_epi8(o.q0, _mm_set1_epi8(8));
    o.q1 = _mm_sub_epi8(o.q1, _mm_set1_epi8(8));
    o.d0 = gguf_f16(b);
  }
};

struct DecodeQ4_1 {
  static constexpr bool kMin = true, kSplitScale = false;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ4_1Bytes;
    gguf_nibbles(b + 4, o);
    o.d0 = gguf_f16(b);
    o.m0 = -gguf_f16(b + 2);
  }
};

struct DecodeQ5_0 {
  static constexpr bool kMin = false, kSplitScale = false;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ5_0Bytes;
    std::uint32_t h;
    std::memcpy(&h, b + 2, 4);
    gguf_nibbles(b + 6, o);
    const __m128i sixteen = _mm_set1_epi8(16);
    o.q0 = _mm_sub_epi8(_mm_or_si128(o.q0, gguf_bit4_of_bits(h)), sixteen);
    o.q1 = _mm_sub_epi8(_mm_or_si128(o.q1, gguf_bit4_of_bits(h >> 16)), sixteen);
    o.d0 = gguf_f16(b);
  }
};

struct DecodeQ5_1 {
  static constexpr bool kMin = true, kSplitScale = false;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kQ5_1Bytes;
    std::uint32_t h;
    std::memcpy(&h, b + 4, 4);
    gguf_nibbles(b + 8, o);
    o.q0 = _mm_or_si128(o.q0, gguf_bit4_of_bits(h));
    o.q1 = _mm_or_si128(o.q1, gguf_bit4_of_bits(h >> 16));
    o.d0 = gguf_f16(b);
    o.m0 = -gguf_f16(b + 2);
  }
};

struct DecodeIQ4NL {
  static constexpr bool kMin = false, kSplitScale = false;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g) * kIQ4NLBytes;
    gguf_nibbles(b + 2, o);
    o.q0 = gguf_iq4_lookup(o.q0);
    o.q1 = gguf_iq4_lookup(o.q1);
    o.d0 = gguf_f16(b);
  }
};

// Group g of a 256-weight type is sub-block j = g % 8 of super-block g / 8.

// q4_K / q5_K: 32 nibbles of qs[32 * (j / 2) ..] (low for even j), q5_K's bit j of qh[l] as bit 4.
template <bool kFive>
struct DecodeQ45K {
  static constexpr bool kMin = true, kSplitScale = false;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * (kFive ? kQ5KBytes : kQ4KBytes);
    const int j = g % 8;
    std::uint8_t sc, m;
    q4k_scale_min(j, b + 4, sc, m);
    const std::uint8_t* qs = b + (kFive ? 48 : 16) + 32 * (j / 2);
    o.q0 = gguf_shifted_bits(qs, 4 * (j % 2), 0x0F);
    o.q1 = gguf_shifted_bits(qs + 16, 4 * (j % 2), 0x0F);
    if (kFive) {
      o.q0 = _mm_or_si128(o.q0, gguf_bit_of_bytes(b + 16, j, 16));
      o.q1 = _mm_or_si128(o.q1, gguf_bit_of_bytes(b + 32, j, 16));
    }
    o.d0 = gguf_f16(b) * static_cast<float>(sc);
    o.m0 = gguf_f16(b + 2) * static_cast<float>(m);
  }
};
using DecodeQ4K = DecodeQ45K<false>;
using DecodeQ5K = DecodeQ45K<true>;

// q6_K: sub-block j is part j % 4 of half j / 4: low bits from ql (+32 for odd parts, high
// nibbles for parts 2 and 3), high 2 bits at bit 2 * part of qh; one int8 scale per 16 weights.
struct DecodeQ6K {
  static constexpr bool kMin = false, kSplitScale = true;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * kQ6KBytes;
    const int half = (g % 8) / 4, part = g % 4;
    const std::uint8_t* ql = b + 64 * half + 32 * (part & 1);
    const std::uint8_t* qh = b + 128 + 32 * half;
    const int low_shift = part >= 2 ? 4 : 0;
    const __m128i thirty_two = _mm_set1_epi8(32);
    o.q0 = _mm_sub_epi8(_mm_or_si128(gguf_shifted_bits(ql, low_shift, 0x0F), _mm_slli_epi16(gguf_shifted_bits(qh, 2 * part, 3), 4)),
                        thirty_two);
    o.q1 = _mm_sub_epi8(
        _mm_or_si128(gguf_shifted_bits(ql + 16, low_shift, 0x0F), _mm_slli_epi16(gguf_shifted_bits(qh + 16, 2 * part, 3), 4)),
        thirty_two);
    const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192 + 8 * half + 2 * part);
    const float d = gguf_f16(b + 208);
    o.d0 = d * static_cast<float>(sc[0]);
    o.d1 = d * static_cast<float>(sc[1]);
  }
};

// q3_K: 2 low bits at bit 2k of qs[32 * half + l] (k = j % 4), the high bit (set: +0, clear: -4)
// at bit 4 * half + k of hmask[l]; 6-bit scales minus 32, one per 16 weights.
struct DecodeQ3K {
  static constexpr bool kMin = false, kSplitScale = true;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * kQ3KBytes;
    const int half = (g % 8) / 4, k = g % 4;
    const std::uint8_t* qs = b + 32 + 32 * half;
    const __m128i four = _mm_set1_epi8(4);
    o.q0 = _mm_add_epi8(_mm_sub_epi8(gguf_shifted_bits(qs, 2 * k, 3), four), gguf_bit_of_bytes(b, 4 * half + k, 4));
    o.q1 = _mm_add_epi8(_mm_sub_epi8(gguf_shifted_bits(qs + 16, 2 * k, 3), four), gguf_bit_of_bytes(b + 16, 4 * half + k, 4));
    const float d = gguf_f16(b + 108);
    o.d0 = d * static_cast<float>(q3k_scale(8 * half + 2 * k, b + 96) - 32);
    o.d1 = d * static_cast<float>(q3k_scale(8 * half + 2 * k + 1, b + 96) - 32);
  }
};

// q2_K: as q3_K's low bits (qs at byte 16), a 4-bit scale and min per 16 weights.
struct DecodeQ2K {
  static constexpr bool kMin = true, kSplitScale = true;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * kQ2KBytes;
    const int half = (g % 8) / 4, k = g % 4;
    const std::uint8_t* qs = b + 16 + 32 * half;
    o.q0 = gguf_shifted_bits(qs, 2 * k, 3);
    o.q1 = gguf_shifted_bits(qs + 16, 2 * k, 3);
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
  static constexpr bool kMin = false, kSplitScale = false;
  static void decode(const std::uint8_t* row, int g, GgufGroup& o) {
    const std::uint8_t* b = row + static_cast<std::size_t>(g / 8) * kIQ4XSBytes;
    const int j = g % 8;
    std::uint16_t scales_h;
    std::memcpy(&scales_h, b + 2, 2);
    gguf_nibbles(b + 8 + 16 * j, o);
    o.q0 = gguf_iq4_lookup(o.q0);
    o.q1 = gguf_iq4_lookup(o.q1);
    o.d0 = gguf_f16(b) * static_cast<float>(iq4xs_scale(j, scales_h, b + 4) - 32);
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
