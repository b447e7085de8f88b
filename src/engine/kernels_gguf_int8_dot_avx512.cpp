// The GGUF block types in the integer-activation decomposition (kernels_gguf_int8.h:
// w = A * u + M), decoded in registers 256 columns at a time, and the two kernels built on it:
//   - the decode kernel (batch 1, and batched decode below kGgufLanesMinBatch, one token after
//     the other on each 3-row tile, which stays in L1): each weight row streams once from memory and is decoded and
//     multiplied in registers (VPDPBUSD against the token's int8 blocks), 3 rows at a time so the
//     token's loads and the multiply latency are shared and 3 row streams are in flight (2 rows:
//     q4_0 1.58 ms per tinyllama layer, 3 rows: 1.31, 4 rows: 1.32 and q8_0 slower from spills;
//     gguf_types_bench --threads 1, thread CPU time); no scratch round trip;
//   - the AVX-512 row decoders of the batched kernel (the same registers, stored).
// Batch 1 was compute-bound with f32 activations (per 32 weights: widen, convert, scale, fma:
// 14-26% of the read roofline, bench/engine/gguf_types_bench); here 64 weights cost one
// VPDPBUSD, one conversion and one fma, plus the decode (A * dx formed per block of 32 or group
// of 16, not per lane chunk: q4_0 1.78 -> 1.58 ms per layer).
// Bit-exactness: the batch-1 kernel does exactly the f32 operations of
// scalar::matmul_int8_act (per 64 columns one fma of the converted lane sums by A * dx, per 256
// columns one fma of the offsets M by xs, the same reduction tree), and the decoders produce
// exactly the scalar decoders' u, A, M; the tests check both bit for bit.
#include "kernels_target.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels_dispatch.h"
#include "kernels_gguf_int8.h"
#include "qmeter/engine/gguf_blocks.h"

QMETER_KERNELS_BEGIN_AVX512_VNNI

namespace qmeter::engine::kernels::avx512 {
namespace {

#define QMETER_INLINE __attribute__((always_inline)) inline

// 256 columns of one row: the codes u of its 4 chunks of 64, the lane scales A of each chunk
// (one per 4 columns) times the token's dx (the batch-1 kernel) or 1 (the row decoder), and the
// offsets M of its 16 groups of 16 columns.
struct Chunks {
  __m512i u[4];
  __m512 a[4];
  __m512 m;
};

// What A is multiplied by before it is spread to the lanes: the token's activation scale of each
// 32-column block (8 per 256 columns) and of each 16-column group (16), or ones. The product
// A * dx is the one the reference forms per lane (the same two f32 values), formed here once per
// block instead of once per lane chunk.
struct ScaleMul {
  __m256 block;
  __m512 group;
};
QMETER_INLINE ScaleMul unit_scale_mul() { return {_mm256_set1_ps(1.0f), _mm512_set1_ps(1.0f)}; }


QMETER_INLINE std::uint16_t raw16(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}
QMETER_INLINE std::uint32_t raw32(const std::uint8_t* p) {
  std::uint32_t h;
  std::memcpy(&h, p, 4);
  return h;
}
QMETER_INLINE __m512 set1_half(const std::uint8_t* p) { return _mm512_set1_ps(_cvtsh_ss(raw16(p))); }

// Lane i of chunk k has the scale of its 32-weight block 2k + i / 8 (of 8 per 256 columns).
QMETER_INLINE __m512i block_lane_index(int k) {
  return _mm512_set_epi32(2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k,
                          2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k);
}
// Lane i of chunk k has the scale of its 16-weight group 4k + i / 4.
QMETER_INLINE __m512i group_lane_index(int k) {
  return _mm512_set_epi32(4 * k + 3, 4 * k + 3, 4 * k + 3, 4 * k + 3, 4 * k + 2, 4 * k + 2, 4 * k + 2, 4 * k + 2, 4 * k + 1,
                          4 * k + 1, 4 * k + 1, 4 * k + 1, 4 * k, 4 * k, 4 * k, 4 * k);
}
// Group g of 16 has the offset of 32-weight block g / 2.
QMETER_INLINE __m512i group_block_index() { return _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0); }

// Per-block scales (8 blocks of 32) times mul spread to the chunks' lanes, and the groups' offsets.
QMETER_INLINE void spread_block_scales(__m256 a8, __m256 m8, const ScaleMul& mul, Chunks& c) {
  const __m512 a = _mm512_castps256_ps512(_mm256_mul_ps(a8, mul.block)), m = _mm512_castps256_ps512(m8);
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) c.a[k] = _mm512_permutexvar_ps(block_lane_index(k), a);
  c.m = _mm512_permutexvar_ps(group_block_index(), m);
}

// Per-group scales (16 groups of 16) times mul spread to the chunks' lanes; M = offset * A.
QMETER_INLINE void spread_group_scales(__m512 a16, float offset, const ScaleMul& mul, Chunks& c) {
  const __m512 ad = _mm512_mul_ps(a16, mul.group);
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) c.a[k] = _mm512_permutexvar_ps(group_lane_index(k), ad);
  c.m = _mm512_mul_ps(a16, _mm512_set1_ps(offset));
}

// Chunk k's 64 codes from 32 bytes q: byte l's bits >> lo_shift for weights 0..31 and >> hi_shift
// for weights 32..63, masked (the 64-bit shift's spill from the next byte lands above the mask).
QMETER_INLINE __m512i split_bits(const std::uint8_t* q, int lo_shift, int hi_shift, int mask) {
  const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
  const __m512i shifts = _mm512_set_epi64(hi_shift, hi_shift, hi_shift, hi_shift, lo_shift, lo_shift, lo_shift, lo_shift);
  return _mm512_and_si512(_mm512_srlv_epi64(both, shifts), _mm512_set1_epi8(static_cast<char>(mask)));
}

// Mask of the bytes l of 32 bytes p (repeated for both halves of 64) with bit lo_bit (weights
// 0..31) or hi_bit (32..63) set.
QMETER_INLINE __mmask64 bits_of(const std::uint8_t* p, int lo_bit, int hi_bit) {
  const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  const __m512i sel = _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << lo_bit)),
                                         _mm256_set1_epi8(static_cast<char>(1 << hi_bit)), 1);
  return _mm512_test_epi8_mask(both, sel);
}

// iq4's 16 values as unsigned codes (value + 128) in every 128-bit lane, for VPSHUFB.
QMETER_INLINE __m256i iq4_codes_table() {
  return _mm256_broadcastsi128_si256(_mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)),
                                                   _mm_set1_epi8(static_cast<char>(0x80))));
}

// 16 bytes of nibbles -> 32 codes in weight order (low nibbles: weights 0..15, high: 16..31).
QMETER_INLINE __m256i nibbles32(const std::uint8_t* p) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(b), _mm_srli_epi16(b, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 2 x 16 bytes of nibbles (blocks at p0, p1) -> 64 codes: each block's low nibbles, then its high ones.
QMETER_INLINE __m512i nibbles64(const std::uint8_t* p0, const std::uint8_t* p1) {
  // Broadcast loads (load-port work, no shuffle): p0's bytes into lanes 0, 1, p1's into 2, 3.
  const __m512i twice = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0))),
                                                    0xFF00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)));
  return _mm512_and_si512(_mm512_srlv_epi64(twice, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(0x0F));
}

// ---- 32-weight block types: per block its 32 codes u (= the block's int codes + bias), the f16
// scale A = d, and M = d * kMScale or the f16 min at kMinAt; codes2: two blocks' codes at once. ----
struct BlockQ8_0 {
  static constexpr int kBytes = kQ8_0Bytes, kMinAt = -1;
  static constexpr float kMScale = -128.0f;
  static QMETER_INLINE __m256i codes(const std::uint8_t* b) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  static QMETER_INLINE __m512i codes2(const std::uint8_t* b0, const std::uint8_t* b1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(codes(b0)), codes(b1), 1);
  }
};
struct BlockQ4_0 {
  static constexpr int kBytes = kQ4_0Bytes, kMinAt = -1;
  static constexpr float kMScale = -8.0f;
  static QMETER_INLINE __m256i codes(const std::uint8_t* b) { return nibbles32(b + 2); }
  static QMETER_INLINE __m512i codes2(const std::uint8_t* b0, const std::uint8_t* b1) { return nibbles64(b0 + 2, b1 + 2); }
};
struct BlockQ4_1 {
  static constexpr int kBytes = kQ4_1Bytes, kMinAt = 2;
  static constexpr float kMScale = 0.0f;
  static QMETER_INLINE __m256i codes(const std::uint8_t* b) { return nibbles32(b + 4); }
  static QMETER_INLINE __m512i codes2(const std::uint8_t* b0, const std::uint8_t* b1) { return nibbles64(b0 + 4, b1 + 4); }
};
// q5_0 / q5_1: the 5th bits are the little-endian u32 before the nibbles, bit i for weight i.
struct BlockQ5_0 {
  static constexpr int kBytes = kQ5_0Bytes, kMinAt = -1;
  static constexpr float kMScale = -16.0f;
  static QMETER_INLINE __m256i codes(const std::uint8_t* b) {
    const __m256i n = nibbles32(b + 6);
    return _mm256_mask_add_epi8(n, raw32(b + 2), n, _mm256_set1_epi8(16));
  }
  static QMETER_INLINE __m512i codes2(const std::uint8_t* b0, const std::uint8_t* b1) {
    const __m512i n = nibbles64(b0 + 6, b1 + 6);
    return _mm512_mask_add_epi8(n, raw32(b0 + 2) | static_cast<std::uint64_t>(raw32(b1 + 2)) << 32, n, _mm512_set1_epi8(16));
  }
};
struct BlockQ5_1 {
  static constexpr int kBytes = kQ5_1Bytes, kMinAt = 2;
  static constexpr float kMScale = 0.0f;
  static QMETER_INLINE __m256i codes(const std::uint8_t* b) {
    const __m256i n = nibbles32(b + 8);
    return _mm256_mask_add_epi8(n, raw32(b + 4), n, _mm256_set1_epi8(16));
  }
  static QMETER_INLINE __m512i codes2(const std::uint8_t* b0, const std::uint8_t* b1) {
    const __m512i n = nibbles64(b0 + 8, b1 + 8);
    return _mm512_mask_add_epi8(n, raw32(b0 + 4) | static_cast<std::uint64_t>(raw32(b1 + 4)) << 32, n, _mm512_set1_epi8(16));
  }
};
struct BlockIQ4NL {
  static constexpr int kBytes = kIQ4NLBytes, kMinAt = -1;
  static constexpr float kMScale = -128.0f;
  static QMETER_INLINE __m256i codes(const std::uint8_t* b) { return _mm256_shuffle_epi8(iq4_codes_table(), nibbles32(b + 2)); }
  static QMETER_INLINE __m512i codes2(const std::uint8_t* b0, const std::uint8_t* b1) {
    return _mm512_shuffle_epi8(_mm512_broadcast_i64x4(iq4_codes_table()), nibbles64(b0 + 2, b1 + 2));
  }
};

// 256 columns (8 blocks, the first at p) of a 32-weight type; nb < 8 (a row's last, partial
// 256 columns): blocks nb.. are zero (u, A and M), as the scalar decoders leave them.
template <typename B>
struct Blocks32 {
  static QMETER_INLINE const std::uint8_t* at(const std::uint8_t* row, int s) { return row + static_cast<std::size_t>(s) * 8 * B::kBytes; }
  static constexpr int kSuperBytes = 8 * B::kBytes;
  // The 8 scales (and mins) of a full 256 columns: their f16 words picked out of the blocks'
  // bytes by one or two VPERMT2W (word w of the first 128 bytes, or of the next 128), lanes 0..7
  // the scales, 8..15 the mins; masked loads never touch bytes past the 8 blocks.
  static QMETER_INLINE __m512 scales_and_mins(const std::uint8_t* p) {
    alignas(64) static constexpr std::uint16_t kWord[32] = {
        0 * B::kBytes / 2, 1 * B::kBytes / 2, 2 * B::kBytes / 2, 3 * B::kBytes / 2, 4 * B::kBytes / 2, 5 * B::kBytes / 2,
        6 * B::kBytes / 2, 7 * B::kBytes / 2, (0 * B::kBytes + B::kMinAt) / 2, (1 * B::kBytes + B::kMinAt) / 2,
        (2 * B::kBytes + B::kMinAt) / 2, (3 * B::kBytes + B::kMinAt) / 2, (4 * B::kBytes + B::kMinAt) / 2,
        (5 * B::kBytes + B::kMinAt) / 2, (6 * B::kBytes + B::kMinAt) / 2, (7 * B::kBytes + B::kMinAt) / 2};
    const __m512i word = _mm512_load_si512(kWord);
    const __m512i idx = _mm512_and_si512(word, _mm512_set1_epi16(63));
    constexpr int kSpan = 8 * B::kBytes;
    // Whether a wanted word lies past the first 128 bytes (q4_0 / iq4_nl: 8 scales within 126
    // bytes, no mins: one VPERMT2W is enough).
    constexpr bool kPast128 = 7 * B::kBytes / 2 >= 64 || (B::kMinAt >= 0 && (7 * B::kBytes + B::kMinAt) / 2 >= 64);
    const __m512i lo = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx,
                                                 _mm512_maskz_loadu_epi8(kSpan >= 128 ? ~0ull : ~0ull >> (128 - kSpan), p + 64));
    __m512i words = lo;
    if constexpr (kSpan > 128 && kPast128) {
      const __mmask64 m2 = kSpan >= 192 ? ~0ull : ~0ull >> (192 - kSpan), m3 = kSpan >= 256 ? ~0ull : kSpan <= 192 ? 0 : ~0ull >> (256 - kSpan);
      const __m512i hi = _mm512_permutex2var_epi16(_mm512_maskz_loadu_epi8(m2, p + 128), idx, _mm512_maskz_loadu_epi8(m3, p + 192));
      words = _mm512_mask_blend_epi16(_mm512_cmpge_epu16_mask(word, _mm512_set1_epi16(64)), lo, hi);
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(words));
  }
  static QMETER_INLINE void decode(const std::uint8_t* p, int nb, const ScaleMul& mul, Chunks& c) {
    if (nb == 8) {
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) c.u[k] = B::codes2(p + 2 * k * B::kBytes, p + (2 * k + 1) * B::kBytes);
      const __m512 dm = scales_and_mins(p);
      const __m256 a8 = _mm512_castps512_ps256(dm);
      spread_block_scales(a8, B::kMinAt >= 0 ? _mm512_extractf32x8_ps(dm, 1) : _mm256_mul_ps(a8, _mm256_set1_ps(B::kMScale)), mul, c);
      return;
    }
    __m256i u[8];
    std::uint16_t dh[8], mh[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const std::uint8_t* b = p + i * B::kBytes;
      u[i] = i < nb ? B::codes(b) : _mm256_setzero_si256();
      dh[i] = i < nb ? raw16(b) : 0;
      if constexpr (B::kMinAt >= 0) mh[i] = i < nb ? raw16(b + B::kMinAt) : 0;
    }
    const __m256 a8 = _mm256_cvtph_ps(_mm_setr_epi16(static_cast<short>(dh[0]), static_cast<short>(dh[1]), static_cast<short>(dh[2]),
                                                     static_cast<short>(dh[3]), static_cast<short>(dh[4]), static_cast<short>(dh[5]),
                                                     static_cast<short>(dh[6]), static_cast<short>(dh[7])));
    __m256 m8;
    if constexpr (B::kMinAt >= 0) {
      m8 = _mm256_cvtph_ps(_mm_setr_epi16(static_cast<short>(mh[0]), static_cast<short>(mh[1]), static_cast<short>(mh[2]),
                                          static_cast<short>(mh[3]), static_cast<short>(mh[4]), static_cast<short>(mh[5]),
                                          static_cast<short>(mh[6]), static_cast<short>(mh[7])));
    } else {
      // Zero (not -0) past the row, as the scalar decoders' zero fill.
      m8 = _mm256_maskz_mul_ps(static_cast<__mmask8>((1u << nb) - 1), a8, _mm256_set1_ps(B::kMScale));
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) c.u[k] = _mm512_inserti64x4(_mm512_castsi256_si512(u[2 * k]), u[2 * k + 1], 1);
    spread_block_scales(a8, m8, mul, c);
  }
};

// ---- 256-weight super-block types (gguf_blocks.h for the layouts) ----
template <typename S>
struct Blocks256 {
  static QMETER_INLINE const std::uint8_t* at(const std::uint8_t* row, int s) { return row + static_cast<std::size_t>(s) * S::kBytes; }
  static constexpr int kSuperBytes = S::kBytes;
  static QMETER_INLINE void decode(const std::uint8_t* p, int, const ScaleMul& mul, Chunks& c) { S::decode(p, mul, c); }
};

// q4_K / q5_K: u = the 4 (5) bit code, A = d * sc[j], M = -(dmin * m[j]) per sub-block j of 32.
template <bool kFive>
struct SuperQ45K {
  static constexpr int kBytes = kFive ? kQ5KBytes : kQ4KBytes;
  static QMETER_INLINE void decode(const std::uint8_t* b, const ScaleMul& mul, Chunks& c) {
    // The 12 bytes of 6-bit scales and mins (q4k_scale_min), 4 sub-blocks per u32 at once.
    const std::uint32_t s0 = raw32(b + 4), s1 = raw32(b + 8), s2 = raw32(b + 12);
    const std::uint32_t sc_lo = s0 & 0x3F3F3F3Fu, mn_lo = s1 & 0x3F3F3F3Fu;
    const std::uint32_t sc_hi = (s2 & 0x0F0F0F0Fu) | ((s0 >> 6) & 0x03030303u) << 4;
    const std::uint32_t mn_hi = ((s2 >> 4) & 0x0F0F0F0Fu) | ((s1 >> 6) & 0x03030303u) << 4;
    const __m128i sc = _mm_cvtsi64_si128(static_cast<long long>(sc_lo | static_cast<std::uint64_t>(sc_hi) << 32));
    const __m128i mn = _mm_cvtsi64_si128(static_cast<long long>(mn_lo | static_cast<std::uint64_t>(mn_hi) << 32));
    const __m256 a8 = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(raw16(b))), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sc)));
    const __m256 m8 = _mm256_xor_ps(_mm256_set1_ps(-0.0f),  // -(dmin * m), as the scalar decoder
                                    _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(raw16(b + 2))), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(mn))));
    const std::uint8_t* qs = b + (kFive ? 48 : 16);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      c.u[k] = split_bits(qs + 32 * k, 0, 4, 0x0F);
      if constexpr (kFive) c.u[k] = _mm512_mask_add_epi8(c.u[k], bits_of(b + 16, 2 * k, 2 * k + 1), c.u[k], _mm512_set1_epi8(16));
    }
    spread_block_scales(a8, m8, mul, c);
  }
};

// q6_K: u = the 6-bit code, A = d * sc[g], M = -32 A per group g of 16. Chunk k is half k / 2,
// low nibbles of ql (k even) or high ones (k odd), high 2 bits at bits 0/2 or 4/6 of qh.
struct SuperQ6K {
  static constexpr int kBytes = kQ6KBytes;
  static QMETER_INLINE void decode(const std::uint8_t* b, const ScaleMul& mul, Chunks& c) {
    const __m512 a16 = _mm512_mul_ps(set1_half(b + 208),
                                     _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)))));
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const std::uint8_t* ql = b + 64 * (k / 2);
      const std::uint8_t* qh = b + 128 + 32 * (k / 2);
      __m512i low = _mm512_loadu_si512(ql);
      if (k % 2) low = _mm512_srli_epi64(low, 4);
      low = _mm512_and_si512(low, _mm512_set1_epi8(0x0F));
      const __m512i high = split_bits(qh, 4 * (k % 2), 4 * (k % 2) + 2, 3);
      c.u[k] = _mm512_or_si512(low, _mm512_slli_epi64(high, 4));
    }
    spread_group_scales(a16, -32.0f, mul, c);
  }
};

// q3_K: u = low 2 bits + 4 * high bit (0..7), A = d * (sc[g] - 32), M = -4 A per group g of 16.
// Chunk k: half n = k / 2 (qs + 32n), bit pairs 2k' and 2k' + 2 (k' = 2 (k % 2)), hmask bits
// 4n + k' and 4n + k' + 1.
struct SuperQ3K {
  static constexpr int kBytes = kQ3KBytes;
  static QMETER_INLINE void decode(const std::uint8_t* b, const ScaleMul& mul, Chunks& c) {
    // q3k_scale() of the 16 groups, 4 per u32: low 4 bits from bytes 0..7 (low nibbles for groups
    // 0..7, high ones for 8..15), high 2 bits at 2 (g / 4) of byte 8 + g % 4.
    const std::uint32_t s0 = raw32(b + 96), s1 = raw32(b + 100), hi = raw32(b + 104);
    const std::uint32_t lo4 = 0x0F0F0F0Fu, lo2 = 0x03030303u;
    const std::uint64_t g0 = (s0 & lo4) | (hi & lo2) << 4 | static_cast<std::uint64_t>((s1 & lo4) | ((hi >> 2) & lo2) << 4) << 32;
    const std::uint64_t g1 =
        ((s0 >> 4) & lo4) | ((hi >> 4) & lo2) << 4 | static_cast<std::uint64_t>(((s1 >> 4) & lo4) | ((hi >> 6) & lo2) << 4) << 32;
    const __m128i sc = _mm_sub_epi8(_mm_set_epi64x(static_cast<long long>(g1), static_cast<long long>(g0)), _mm_set1_epi8(32));
    const __m512 a16 = _mm512_mul_ps(set1_half(b + 108), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)));
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const int n = k / 2, kk = 2 * (k % 2);
      const __m512i low = split_bits(b + 32 + 32 * n, 2 * kk, 2 * kk + 2, 3);
      c.u[k] = _mm512_mask_add_epi8(low, bits_of(b, 4 * n + kk, 4 * n + kk + 1), low, _mm512_set1_epi8(4));
    }
    spread_group_scales(a16, -4.0f, mul, c);
  }
};

// q2_K: u = the 2-bit code, A = d * (sc[g] & 15), M = -(dmin * (sc[g] >> 4)) per group g of 16.
// Chunk k: qs + 32 (k / 2), bit pairs at 4 (k % 2) and 4 (k % 2) + 2.
struct SuperQ2K {
  static constexpr int kBytes = kQ2KBytes;
  static QMETER_INLINE void decode(const std::uint8_t* b, const ScaleMul& mul, Chunks& c) {
    const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    const __m512 a16 = _mm512_mul_ps(set1_half(b + 80), _mm512_cvtepi32_ps(_mm512_and_si512(sc, _mm512_set1_epi32(15))));
    const __m512 m16 = _mm512_mul_ps(set1_half(b + 82), _mm512_cvtepi32_ps(_mm512_srli_epi32(sc, 4)));
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) c.u[k] = split_bits(b + 16 + 32 * (k / 2), 4 * (k % 2), 4 * (k % 2) + 2, 3);
    const __m512 ad = _mm512_mul_ps(a16, mul.group);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) c.a[k] = _mm512_permutexvar_ps(group_lane_index(k), ad);
    c.m = _mm512_xor_ps(_mm512_set1_ps(-0.0f), m16);
  }
};

// iq4_xs: sub-block j is an iq4_nl block at qs + 16 j with scale d * (ls[j] - 32); M = -128 A.
struct SuperIQ4XS {
  static constexpr int kBytes = kIQ4XSBytes;
  static QMETER_INLINE void decode(const std::uint8_t* b, const ScaleMul& mul, Chunks& c) {
    // iq4xs_scale() of the 8 sub-blocks as bytes of one u64 (in registers: no store to reload).
    const std::uint16_t scales_h = raw16(b + 2);
    std::uint64_t ls = 0;
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) ls |= static_cast<std::uint64_t>(iq4xs_scale(j, scales_h, b + 4)) << (8 * j);
    const __m256i ls32 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(ls))), _mm256_set1_epi32(32));
    const __m256 a8 = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(raw16(b))), _mm256_cvtepi32_ps(ls32));
    const __m256i table = iq4_codes_table();
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m256i u0 = _mm256_shuffle_epi8(table, nibbles32(b + 8 + 32 * k));
      const __m256i u1 = _mm256_shuffle_epi8(table, nibbles32(b + 8 + 32 * k + 16));
      c.u[k] = _mm512_inserti64x4(_mm512_castsi256_si512(u0), u1, 1);
    }
    spread_block_scales(a8, _mm256_mul_ps(a8, _mm256_set1_ps(-128.0f)), mul, c);
  }
};

// The reduction tree of scalar::matmul_int8_act (lanes l + 8, then + 4, + 2, + 1).
QMETER_INLINE float reduce16(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
}

// One token's activation scales per 32-column block and per 16-column group (zero past kpad,
// up to whole 256 columns), read by the decoders as ScaleMul.
struct TokenScales {
  const float* block;
  const float* group;
  QMETER_INLINE ScaleMul at(int s) const { return {_mm256_loadu_ps(block + 8 * s), _mm512_loadu_ps(group + 16 * s)}; }
};

// 256 columns (chunks of 64, k < `chunks`) of NR decoded rows (A already times dx) against one token.
template <int NR>
QMETER_INLINE void dot_chunks(const Chunks (&c)[NR], const Int8Activations& x, int s, int chunks, __m512 (&acc)[NR]) {
#pragma GCC unroll 4
  for (int k = 0; k < chunks; ++k) {
    const __m512i xq = _mm512_loadu_si512(x.xq + 256 * s + 64 * k);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[r].u[k], xq);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), c[r].a[k], acc[r]);
    }
  }
  const __m512 xs = _mm512_loadu_ps(x.xs + 16 * s);
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_fmadd_ps(c[r].m, xs, acc[r]);
}

// Rows r0 .. r0 + NR against one token. Decoding the NR rows' 256 columns first, then their 4
// chunks, keeps the token's loads shared and NR independent multiply chains in flight.
template <typename T, int NR>
void dot_rows(const Matrix& w, std::size_t row_bytes, const Int8Activations& x, const TokenScales& ts, float* y, int r0) {
  const auto* base = static_cast<const std::uint8_t*>(w.data) + row_bytes * static_cast<std::size_t>(r0);
  const int full = w.cols / 256;
  // Each row's stream requests the same bytes of the next tile's row (NR rows on): a tile ahead,
  // and no request lands in a row this tile is reading itself.
  const std::size_t ahead = NR * row_bytes;
  __m512 acc[NR];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
  for (int s = 0; s < full; ++s) {
    Chunks c[NR];
    const ScaleMul mul = ts.at(s);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const std::uint8_t* p = T::at(base + row_bytes * r, s);
#pragma GCC unroll 8
      for (int line = 0; line < T::kSuperBytes; line += 64) __builtin_prefetch(p + ahead + line, 0, 2);
      T::decode(p, 8, mul, c[r]);
    }
    dot_chunks<NR>(c, x, s, 4, acc);
  }
  if (full * 256 < w.cols) {  // a 32-weight type's last, partial 256 columns
    const int left = w.cols - 256 * full;
    Chunks c[NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) T::decode(T::at(base + row_bytes * r, full), left / 32, ts.at(full), c[r]);
    dot_chunks<NR>(c, x, full, (left + 63) / 64, acc);
  }
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r) y[r0 + r] = reduce16(acc[r]);
}

template <typename T>
void dot_kernel(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const std::size_t rb = gguf_row_bytes(w.dtype, w.cols);
  const Int8Activations all = int8_act_view(prepared, batch, w.cols);
  // Each token's TokenScales, then rows outer and tokens inner: a small batch (batched decode)
  // re-decodes each 3-row tile per token from L1/L2 instead of streaming the matrix per token.
  const std::size_t nb = static_cast<std::size_t>(all.ngroups / 2), ng = static_cast<std::size_t>(all.ngroups);
  thread_local std::vector<float> block_dx, group_dx;
  block_dx.assign(nb * static_cast<std::size_t>(batch), 0.0f);
  group_dx.assign(ng * static_cast<std::size_t>(batch), 0.0f);
  thread_local std::vector<Int8Activations> xs;
  thread_local std::vector<TokenScales> ts;
  xs.resize(static_cast<std::size_t>(batch));
  ts.resize(static_cast<std::size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    const std::size_t bi = static_cast<std::size_t>(b);
    const Int8Activations x{all.xq + bi * all.kpad, all.dx + bi * (all.kpad / 4), all.xs + bi * all.ngroups, all.kpad, all.ngroups};
    for (int g = 0; g < x.kpad / 16; ++g) group_dx[bi * ng + static_cast<std::size_t>(g)] = x.dx[4 * g];
    for (int j = 0; j < x.kpad / 32; ++j) block_dx[bi * nb + static_cast<std::size_t>(j)] = x.dx[8 * j];
    xs[bi] = x;
    ts[bi] = TokenScales{block_dx.data() + bi * nb, group_dx.data() + bi * ng};
  }
  int r = row_begin;
  for (; r + 3 <= row_end; r += 3)
    for (int b = 0; b < batch; ++b)
      dot_rows<T, 3>(w, rb, xs[static_cast<std::size_t>(b)], ts[static_cast<std::size_t>(b)], y + static_cast<std::size_t>(b) * w.rows, r);
  for (; r < row_end; ++r)
    for (int b = 0; b < batch; ++b)
      dot_rows<T, 1>(w, rb, xs[static_cast<std::size_t>(b)], ts[static_cast<std::size_t>(b)], y + static_cast<std::size_t>(b) * w.rows, r);
}

// The row decoder of the batched kernel (Int8DecodeRowFn): the registers stored.
template <typename T>
void decode_row(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const auto* p = static_cast<const std::uint8_t*>(w.data) + gguf_row_bytes(w.dtype, w.cols) * static_cast<std::size_t>(row);
  for (int s = 0; 256 * s < w.cols; ++s) {
    const int left = w.cols - 256 * s;
    Chunks c;
    int chunks = 4;
    if (left >= 256) {
      T::decode(T::at(p, s), 8, unit_scale_mul(), c);
    } else {
      T::decode(T::at(p, s), left / 32, unit_scale_mul(), c);
      chunks = (left + 63) / 64;
    }
    for (int k = 0; k < chunks; ++k) {
      _mm512_storeu_si512(u + 256 * s + 64 * k, c.u[k]);
      _mm512_storeu_ps(a + 64 * s + 16 * k, c.a[k]);
    }
    _mm512_storeu_ps(m + 16 * s, c.m);
  }
}

}  // namespace

#define QMETER_INT8_DOT_DEFINE(name, T)                                                                             \
  void int8_dot_##name(const Matrix& w, const float* x, const void* p, int n, float* y, int r0, int r1) {        \
    dot_kernel<T>(w, x, p, n, y, r0, r1);                                                                         \
  }                                                                                                               \
  void int8_decode_##name##_simd(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) { decode_row<T>(w, row, u, a, m); }
QMETER_INT8_DOT_DEFINE(q8_0, Blocks32<BlockQ8_0>)
QMETER_INT8_DOT_DEFINE(q4_0, Blocks32<BlockQ4_0>)
QMETER_INT8_DOT_DEFINE(q4_1, Blocks32<BlockQ4_1>)
QMETER_INT8_DOT_DEFINE(q5_0, Blocks32<BlockQ5_0>)
QMETER_INT8_DOT_DEFINE(q5_1, Blocks32<BlockQ5_1>)
QMETER_INT8_DOT_DEFINE(iq4_nl, Blocks32<BlockIQ4NL>)
QMETER_INT8_DOT_DEFINE(q2_k, Blocks256<SuperQ2K>)
QMETER_INT8_DOT_DEFINE(q3_k, Blocks256<SuperQ3K>)
QMETER_INT8_DOT_DEFINE(q4_k, Blocks256<SuperQ45K<false>>)
QMETER_INT8_DOT_DEFINE(q5_k, Blocks256<SuperQ45K<true>>)
QMETER_INT8_DOT_DEFINE(q6_k, Blocks256<SuperQ6K>)
QMETER_INT8_DOT_DEFINE(iq4_xs, Blocks256<SuperIQ4XS>)
#undef QMETER_INT8_DOT_DEFINE

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END
