#pragma once
// Private: the in-register decoders of llama.cpp's block formats (gguf_blocks.h), shared by the
// AVX2 and AVX-512 kernels. Include it INSIDE a QMETER_KERNELS_BEGIN_<ISA> region: the decoders
// use AVX2 instructions only and compile into that ISA's code (anonymous namespace: each kernel
// file has its own copy, so the two targets never share one definition).
//
// A decoder reads one block: its scales (and mins) as f32 once, then each 32-weight group's
// codes as int8 in weight order (two halves of 16); the weights are d * q - m per 16 weights.
// Each product is exact in f32 and the fused multiply-subtract rounds once, so the kernels see
// exactly the weights of the scalar reference (gguf_row_to_f32). Types with "+ min" (q4_1, q5_1)
// store -min. Kept 128 bits wide: the halves feed one 512-bit (or two 256-bit) widening
// conversions each, and no lane crossing is spent on joining or splitting them; the kernels
// broadcast the scales from the small f32 arrays (a load, not a shuffle).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::engine::kernels {
namespace {

__attribute__((always_inline)) inline float gguf_f16(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

__attribute__((always_inline)) inline __m128i gguf_load16(const std::uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// 16 bytes of nibble pairs: low nibbles are weights 0..15, high nibbles 16..31.
__attribute__((always_inline)) inline void gguf_nibbles(const std::uint8_t* p, __m128i& q0, __m128i& q1) {
  const __m128i bytes = gguf_load16(p);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  q0 = _mm_and_si128(bytes, low4);
  q1 = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
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

// A decoder of one type: kElems / kBytes per block, kGroups = kElems / 32, and
//   scales(block, d, m): the scale d[i] and min m[i] of each 16 weights i of the block (only
//     d[2j] / m[2j] are read unless kSplitScale; m is not read unless kMin);
//   codes(block, j, q0, q1): the codes of group j (weights 32j .. 32j + 31) as int8, 16 in each half.
// kMin: the weights are d * q - m (else d * q); kSplitScale: one scale per 16 weights (else per 32).

struct DecodeQ8_0 {
  static constexpr int kElems = kQ8_0Block, kBytes = kQ8_0Bytes, kGroups = 1;
  static constexpr bool kMin = false, kSplitScale = false;
  static void scales(const std::uint8_t* b, float* d, float*) { d[0] = gguf_f16(b); }
  static void codes(const std::uint8_t* b, int, __m128i& q0, __m128i& q1) {
    q0 = gguf_load16(b + 2);
    q1 = gguf_load16(b + 18);
  }
};

struct DecodeQ4_0 {
  static constexpr int kElems = kQ4_0Block, kBytes = kQ4_0Bytes, kGroups = 1;
  static constexpr bool kMin = false, kSplitScale = false;
  static void scales(const std::uint8_t* b, float* d, float*) { d[0] = gguf_f16(b); }
  static void codes(const std::uint8_t* b, int, __m128i& q0, __m128i& q1) {
    gguf_nibbles(b + 2, q0, q1);
    q0 = _mm_sub_epi8(q0, _mm_set1_epi8(8));
    q1 = _mm_sub_epi8(q1, _mm_set1_epi8(8));
  }
};

struct DecodeQ4_1 {
  static constexpr int kElems = kQ4_1Block, kBytes = kQ4_1Bytes, kGroups = 1;
  static constexpr bool kMin = true, kSplitScale = false;
  static void scales(const std::uint8_t* b, float* d, float* m) {
    d[0] = gguf_f16(b);
    m[0] = -gguf_f16(b + 2);
  }
  static void codes(const std::uint8_t* b, int, __m128i& q0, __m128i& q1) { gguf_nibbles(b + 4, q0, q1); }
};

struct DecodeQ5_0 {
  static constexpr int kElems = kQ5_0Block, kBytes = kQ5_0Bytes, kGroups = 1;
  static constexpr bool kMin = false, kSplitScale = false;
  static void scales(const std::uint8_t* b, float* d, float*) { d[0] = gguf_f16(b); }
  static void codes(const std::uint8_t* b, int, __m128i& q0, __m128i& q1) {
    std::uint32_t h;
    std::memcpy(&h, b + 2, 4);
    gguf_nibbles(b + 6, q0, q1);
    const __m128i sixteen = _mm_set1_epi8(16);
    q0 = _mm_sub_epi8(_mm_or_si128(q0, gguf_bit4_of_bits(h)), sixteen);
    q1 = _mm_sub_epi8(_mm_or_si128(q1, gguf_bit4_of_bits(h >> 16)), sixteen);
  }
};

struct DecodeQ5_1 {
  static constexpr int kElems = kQ5_1Block, kBytes = kQ5_1Bytes, kGroups = 1;
  static constexpr bool kMin = true, kSplitScale = false;
  static void scales(const std::uint8_t* b, float* d, float* m) {
    d[0] = gguf_f16(b);
    m[0] = -gguf_f16(b + 2);
  }
  static void codes(const std::uint8_t* b, int, __m128i& q0, __m128i& q1) {
    std::uint32_t h;
    std::memcpy(&h, b + 4, 4);
    gguf_nibbles(b + 8, q0, q1);
    q0 = _mm_or_si128(q0, gguf_bit4_of_bits(h));
    q1 = _mm_or_si128(q1, gguf_bit4_of_bits(h >> 16));
  }
};

struct DecodeIQ4NL {
  static constexpr int kElems = kIQ4NLBlock, kBytes = kIQ4NLBytes, kGroups = 1;
  static constexpr bool kMin = false, kSplitScale = false;
  static void scales(const std::uint8_t* b, float* d, float*) { d[0] = gguf_f16(b); }
  static void codes(const std::uint8_t* b, int, __m128i& q0, __m128i& q1) {
    gguf_nibbles(b + 2, q0, q1);
    q0 = gguf_iq4_lookup(q0);
    q1 = gguf_iq4_lookup(q1);
  }
};

// The 256-weight types: group j is sub-block j; their scales are unpacked once per block.

// q4_K / q5_K: 32 nibbles of qs[32 * (j / 2) ..] (low for even j), q5_K's bit j of qh[l] as bit 4.
template <bool kFive>
struct DecodeQ45K {
  static constexpr int kElems = 256, kBytes = kFive ? kQ5KBytes : kQ4KBytes, kGroups = 8;
  static constexpr bool kMin = true, kSplitScale = false;
  static void scales(const std::uint8_t* b, float* d, float* m) {
    const float dd = gguf_f16(b), dmin = gguf_f16(b + 2);
    for (int j = 0; j < 8; ++j) {
      std::uint8_t sc, mn;
      q4k_scale_min(j, b + 4, sc, mn);
      d[2 * j] = dd * static_cast<float>(sc);
      m[2 * j] = dmin * static_cast<float>(mn);
    }
  }
  static void codes(const std::uint8_t* b, int j, __m128i& q0, __m128i& q1) {
    const std::uint8_t* qs = b + (kFive ? 48 : 16) + 32 * (j / 2);
    q0 = gguf_shifted_bits(qs, 4 * (j % 2), 0x0F);
    q1 = gguf_shifted_bits(qs + 16, 4 * (j % 2), 0x0F);
    if (kFive) {
      q0 = _mm_or_si128(q0, gguf_bit_of_bytes(b + 16, j, 16));
      q1 = _mm_or_si128(q1, gguf_bit_of_bytes(b + 32, j, 16));
    }
  }
};
using DecodeQ4K = DecodeQ45K<false>;
using DecodeQ5K = DecodeQ45K<true>;

// q6_K: sub-block j is part j % 4 of half j / 4: low bits from ql (+32 for odd parts, high
// nibbles for parts 2 and 3), high 2 bits at bit 2 * part of qh; int8 scale i for weights 16i...
struct DecodeQ6K {
  static constexpr int kElems = 256, kBytes = kQ6KBytes, kGroups = 8;
  static constexpr bool kMin = false, kSplitScale = true;
  static void scales(const std::uint8_t* b, float* d, float*) {
    const float dd = gguf_f16(b + 208);
    for (int i = 0; i < 16; ++i) d[i] = dd * static_cast<float>(static_cast<std::int8_t>(b[192 + i]));
  }
  static void codes(const std::uint8_t* b, int j, __m128i& q0, __m128i& q1) {
    const int half = j / 4, part = j % 4;
    const std::uint8_t* ql = b + 64 * half + 32 * (part & 1);
    const std::uint8_t* qh = b + 128 + 32 * half;
    const int low_shift = part >= 2 ? 4 : 0;
    const __m128i thirty_two = _mm_set1_epi8(32);
    q0 = _mm_sub_epi8(_mm_or_si128(gguf_shifted_bits(ql, low_shift, 0x0F), _mm_slli_epi16(gguf_shifted_bits(qh, 2 * part, 3), 4)),
                      thirty_two);
    q1 = _mm_sub_epi8(
        _mm_or_si128(gguf_shifted_bits(ql + 16, low_shift, 0x0F), _mm_slli_epi16(gguf_shifted_bits(qh + 16, 2 * part, 3), 4)),
        thirty_two);
  }
};

// q3_K: 2 low bits at bit 2k of qs[32 * half + l] (half = j / 4, k = j % 4), the high bit (set:
// +0, clear: -4) at bit j of hmask[l]; 6-bit scales minus 32, one per 16 weights.
struct DecodeQ3K {
  static constexpr int kElems = 256, kBytes = kQ3KBytes, kGroups = 8;
  static constexpr bool kMin = false, kSplitScale = true;
  static void scales(const std::uint8_t* b, float* d, float*) {
    const float dd = gguf_f16(b + 108);
    for (int i = 0; i < 16; ++i) d[i] = dd * static_cast<float>(q3k_scale(i, b + 96) - 32);
  }
  static void codes(const std::uint8_t* b, int j, __m128i& q0, __m128i& q1) {
    const std::uint8_t* qs = b + 32 + 32 * (j / 4);
    const int k = j % 4;
    const __m128i four = _mm_set1_epi8(4);
    q0 = _mm_add_epi8(_mm_sub_epi8(gguf_shifted_bits(qs, 2 * k, 3), four), gguf_bit_of_bytes(b, j, 4));
    q1 = _mm_add_epi8(_mm_sub_epi8(gguf_shifted_bits(qs + 16, 2 * k, 3), four), gguf_bit_of_bytes(b + 16, j, 4));
  }
};

// q2_K: as q3_K's low bits (qs at byte 16), a 4-bit scale and min per 16 weights.
struct DecodeQ2K {
  static constexpr int kElems = 256, kBytes = kQ2KBytes, kGroups = 8;
  static constexpr bool kMin = true, kSplitScale = true;
  static void scales(const std::uint8_t* b, float* d, float* m) {
    const float dd = gguf_f16(b + 80), dmin = gguf_f16(b + 82);
    for (int i = 0; i < 16; ++i) {
      d[i] = dd * static_cast<float>(b[i] & 0xF);
      m[i] = dmin * static_cast<float>(b[i] >> 4);
    }
  }
  static void codes(const std::uint8_t* b, int j, __m128i& q0, __m128i& q1) {
    const std::uint8_t* qs = b + 16 + 32 * (j / 4);
    q0 = gguf_shifted_bits(qs, 2 * (j % 4), 3);
    q1 = gguf_shifted_bits(qs + 16, 2 * (j % 4), 3);
  }
};

// iq4_xs: sub-block j is an iq4_nl block at qs + 16j with the 6-bit scale iq4xs_scale(j) - 32.
struct DecodeIQ4XS {
  static constexpr int kElems = 256, kBytes = kIQ4XSBytes, kGroups = 8;
  static constexpr bool kMin = false, kSplitScale = false;
  static void scales(const std::uint8_t* b, float* d, float*) {
    const float dd = gguf_f16(b);
    std::uint16_t scales_h;
    std::memcpy(&scales_h, b + 2, 2);
    for (int j = 0; j < 8; ++j) d[2 * j] = dd * static_cast<float>(iq4xs_scale(j, scales_h, b + 4) - 32);
  }
  static void codes(const std::uint8_t* b, int j, __m128i& q0, __m128i& q1) {
    gguf_nibbles(b + 8 + 16 * j, q0, q1);
    q0 = gguf_iq4_lookup(q0);
    q1 = gguf_iq4_lookup(q1);
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
