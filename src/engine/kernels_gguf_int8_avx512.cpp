// AVX-512 side of the integer-activation path (kernels_gguf_int8.h): the activation conversion,
// the row decoders, and the VPDPBUSD kernel.
//
// The kernel works on tiles of up to 4 weight rows x 4 tokens: per 64 columns, 4 decoded rows
// (u, A) and 4 tokens (xq, dx) are loaded once and give 16 VPDPBUSD, each followed by a
// conversion and one fma with A * dx into that (row, token)'s 16 lane accumulators. Rows are
// decoded into a per-thread scratch once per batch block of tokens (a block's activations stay
// in L2 while the rows stream past).
#include "kernels_target.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels_gguf_int8.h"
#include "kernels_quant.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/packed_formats.h"

QMETER_KERNELS_BEGIN_AVX512

namespace qmeter::engine::kernels::avx512 {

// The row decoders (the same values as the scalar:: reference ones, which the tests check).
namespace {

inline float half(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// A 32-weight block: its 8 lanes of scale and 2 groups of offset.
inline void block_scales(float* a, float* m, int block, float scale, float offset) {
  _mm256_storeu_ps(a + 8 * block, _mm256_set1_ps(scale));
  m[2 * block] = m[2 * block + 1] = offset;
}

// 16 bytes of nibbles -> 32 codes (low nibbles first), as q4_0 and kQ4Group store them.
inline void nibbles_to_bytes(const std::uint8_t* q, std::uint8_t* out) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), low4), _mm_and_si128(b, low4)));
}

}  // namespace

void int8_decode_q8_row_simd(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const PackedHeader& h = packed_header(w);
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const std::uint8_t* q = base + static_cast<std::size_t>(row) * h.row_stride;
  float s;
  std::memcpy(&s, base + static_cast<std::size_t>(w.rows) * h.row_stride + sizeof(float) * row, sizeof s);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  int c = 0;
  for (; c + 64 <= w.cols; c += 64)
    _mm512_storeu_si512(u + c, _mm512_xor_si512(_mm512_loadu_si512(q + c), flip));
  if (c < w.cols) {
    const __mmask64 tail = (~0ull) >> (64 - (w.cols - c));
    _mm512_mask_storeu_epi8(u + c, tail, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tail, q + c), flip));
  }
  std::fill(a, a + (w.cols + 3) / 4, s);
  std::fill(m, m + (w.cols + 15) / 16, -128.0f * s);
}

void int8_decode_q4_group_simd(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const PackedHeader& h = packed_header(w);
  const std::uint8_t* r = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader) + static_cast<std::size_t>(row) * h.row_stride;
  const std::uint8_t* scales = r + h.codes_bytes;
  const std::uint8_t* zeros = scales + 2 * h.n_groups;
  const int blocks = (w.cols + 31) / 32;
  for (int b = 0; b < blocks; ++b) {
    nibbles_to_bytes(r + 16 * b, u + 32 * b);
    const int g = 32 * b / static_cast<int>(h.group_size);
    const float s = half(scales + 2 * g);
    block_scales(a, m, b, s, -(s * static_cast<float>(zeros[g])));
  }
}

// The same values as int8_act_prepare_scalar: amax / 127, x * (1 / d) rounded to nearest even
// (the default MXCSR mode, as std::nearbyint), clamped to +-127.
void int8_act_prepare_avx512(const float* x, int batch, int cols, int block, void* out) {
  const Int8Activations v = int8_act_view(out, batch, cols);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  auto mask = [](int n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1); };
  for (int b = 0; b < batch; ++b) {
    const float* xb = x + static_cast<std::size_t>(b) * cols;
    auto* qb = const_cast<std::int8_t*>(v.xq) + static_cast<std::size_t>(b) * v.kpad;
    auto* db = const_cast<float*>(v.dx) + static_cast<std::size_t>(b) * (v.kpad / 4);
    auto* sb = const_cast<float*>(v.xs) + static_cast<std::size_t>(b) * v.ngroups;
    std::fill(sb, sb + v.ngroups, 0.0f);
    for (int c0 = 0; c0 < v.kpad; c0 += block) {
      const int len = std::min(block, v.kpad - c0);
      __m512 amax = _mm512_setzero_ps();
      for (int g = 0; g < len; g += 16)
        amax = _mm512_max_ps(amax, _mm512_andnot_ps(sign, _mm512_maskz_loadu_ps(mask(cols - c0 - g), xb + c0 + g)));
      const float d = _mm512_reduce_max_ps(amax) / 127.0f;
      const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
      for (int g = 0; g < len; g += 16) {
        const __m512 xv = _mm512_maskz_loadu_ps(mask(cols - c0 - g), xb + c0 + g);
        const __m512i q = _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(xv, id))));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + c0 + g), _mm512_cvtepi32_epi8(q));
        _mm_storeu_ps(db + (c0 + g) / 4, _mm_set1_ps(d));
        sb[(c0 + g) / 16] = d * static_cast<float>(_mm512_reduce_add_epi32(q));
      }
    }
  }
}

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END

// The kernel in its own target region, so VNNI instructions appear only where has_vnni() allows.
QMETER_KERNELS_BEGIN_AVX512_VNNI

namespace qmeter::engine::kernels::avx512 {
namespace {

constexpr int kTileRows = 4, kTileTokens = 4;
// Activation bytes (xq + dx: 2 per column) of one batch block, kept in L2 while rows stream past.
constexpr std::size_t kBlockActBytes = 768 << 10;

// Decoded rows of one row tile.
struct Scratch {
  std::vector<std::uint8_t> u;
  std::vector<float> a, m;
  int kpad = 0, ngroups = 0;
  const std::uint8_t* urow(int r) const { return u.data() + static_cast<std::size_t>(r) * kpad; }
  const float* arow(int r) const { return a.data() + static_cast<std::size_t>(r) * (kpad / 4); }
  const float* mrow(int r) const { return m.data() + static_cast<std::size_t>(r) * ngroups; }
};

inline float reduce16(__m512 v) {  // the reduction tree of scalar::matmul_int8_act
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  for (int width = 8; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) t[l] += t[l + width];
  return t[0];
}

// Rows r0 .. r0 + NR of the scratch against tokens b0 .. b0 + NB, SPAN chunks summed in int32
// before each conversion (kernels_gguf_int8.h).
// pf: the next row tile's weights, pf_lines 64-byte lines of them requested per chunk (spread
// over the tile so the requests do not overflow the miss queue), or none.
template <int NR, int NB, int SPAN>
void tile(const Scratch& s, const Int8Activations& x, int b0, float* y, int y_rows, int r0, const std::uint8_t* pf,
          int pf_lines) {
  const int chunks = x.kpad / 64, lanes = x.kpad / 4;
  __m512 acc[NR][NB];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_ps();
  for (int k0 = 0; k0 < chunks; k0 += SPAN) {
    const int k1 = std::min(chunks, k0 + SPAN);
    if constexpr (SPAN == 1) {
      // Each product is converted and scaled as soon as it is made: 16 accumulators, 4 rows'
      // codes and scales and one token stay in registers (holding all 16 products first spilled
      // the accumulators to the stack: prefill was bound by those stores and reloads).
      for (int i = 0; i < pf_lines; ++i) __builtin_prefetch(pf + 64 * (static_cast<std::size_t>(k0) * pf_lines + i), 0, 2);
      __m512i u[NR];
      __m512 a[NR];
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        u[r] = _mm512_loadu_si512(s.urow(r) + 64 * k0);
        a[r] = _mm512_loadu_ps(s.arow(r) + 16 * k0);
      }
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
        const __m512i xq = _mm512_loadu_si512(x.xq + static_cast<std::size_t>(b0 + b) * x.kpad + 64 * k0);
        const __m512 dx = _mm512_loadu_ps(x.dx + static_cast<std::size_t>(b0 + b) * lanes + 16 * k0);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
          const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[r], xq);
          acc[r][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(a[r], dx), acc[r][b]);
        }
      }
    } else {
      // SPAN chunks summed in int32 per (row, token), then converted and scaled at once; the
      // rows' codes are reloaded from the scratch (L1) per token rather than held, for the
      // same reason (16 accumulators + 16 sums + codes overflowed the 32 registers).
      for (int k = k0; k < k1; ++k)
        for (int i = 0; i < pf_lines; ++i) __builtin_prefetch(pf + 64 * (static_cast<std::size_t>(k) * pf_lines + i), 0, 2);
      __m512 a[NR];
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) a[r] = _mm512_loadu_ps(s.arow(r) + 16 * k0);
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
        const std::int8_t* xb = x.xq + static_cast<std::size_t>(b0 + b) * x.kpad;
        const __m512 dx = _mm512_loadu_ps(x.dx + static_cast<std::size_t>(b0 + b) * lanes + 16 * k0);
        // Indexed by i < SPAN (not k - k0): the bound the compiler can see (k - k0 drew a
        // false -Warray-bounds from the unrolled loop).
        const int n = k1 - k0;
        __m512i xq[SPAN];
#pragma GCC unroll 4
        for (int i = 0; i < SPAN; ++i)
          if (i < n) xq[i] = _mm512_loadu_si512(xb + 64 * (k0 + i));
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
          __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(s.urow(r) + 64 * k0), xq[0]);
#pragma GCC unroll 4
          for (int i = 1; i < SPAN; ++i)
            if (i < n) p = _mm512_dpbusd_epi32(p, _mm512_loadu_si512(s.urow(r) + 64 * (k0 + i)), xq[i]);
          acc[r][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(a[r], dx), acc[r][b]);
        }
      }
    }
    if (k1 % 4 == 0 || k1 == chunks) {  // the offsets of the 16 groups (256 columns) just done
      const int g = 16 * ((k1 - 1) / 4);
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
        const __m512 xs = _mm512_loadu_ps(x.xs + static_cast<std::size_t>(b0 + b) * x.ngroups + g);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) acc[r][b] = _mm512_fmadd_ps(_mm512_loadu_ps(s.mrow(r) + g), xs, acc[r][b]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) y[static_cast<std::size_t>(b0 + b) * y_rows + r0 + r] = reduce16(acc[r][b]);
}

using TileFn = void (*)(const Scratch&, const Int8Activations&, int, float*, int, int, const std::uint8_t*, int);
template <int NR, int SPAN>
constexpr TileFn kRowTiles[kTileTokens] = {tile<NR, 1, SPAN>, tile<NR, 2, SPAN>, tile<NR, 3, SPAN>, tile<NR, 4, SPAN>};
template <int SPAN>
constexpr const TileFn* kTiles[kTileRows] = {kRowTiles<1, SPAN>, kRowTiles<2, SPAN>, kRowTiles<3, SPAN>, kRowTiles<4, SPAN>};

// The bytes of weight row r (codes and the row's own scales), for prefetching.
inline void row_bytes_of(const Matrix& w, int r, const std::uint8_t*& p, std::size_t& n) {
  if (is_gguf_block(w.dtype)) {
    n = gguf_row_bytes(w.dtype, w.cols);
    p = static_cast<const std::uint8_t*>(w.data) + n * static_cast<std::size_t>(r);
  } else {
    n = packed_header(w).row_stride;
    p = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader) + n * static_cast<std::size_t>(r);
  }
}

}  // namespace

void matmul_int8_act_vnni(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const Int8WeightType* t = int8_weight_type(w.dtype);
  const Int8DecodeRowFn decode = t->decode_avx512 ? t->decode_avx512 : t->decode_scalar;
  const Int8Activations x = int8_act_view(prepared, batch, w.cols);
  const TileFn* const* tiles = t->span && t->span(w) == 2 ? kTiles<2> : kTiles<1>;
  thread_local Scratch s;
  s.kpad = x.kpad;
  s.ngroups = x.ngroups;
  s.u.resize(static_cast<std::size_t>(kTileRows) * x.kpad);
  s.a.resize(static_cast<std::size_t>(kTileRows) * (x.kpad / 4));
  s.m.resize(static_cast<std::size_t>(kTileRows) * x.ngroups);
  const int block = std::max<int>(kTileTokens, static_cast<int>(kBlockActBytes / (2 * static_cast<std::size_t>(x.kpad))) / kTileTokens * kTileTokens);
  for (int bb = 0; bb < batch; bb += block) {
    const int be = std::min(batch, bb + block);
    for (int r = row_begin; r < row_end; r += kTileRows) {
      const int nr = std::min(kTileRows, row_end - r);
      for (int i = 0; i < nr; ++i) {
        // A decoder writes every entry up to cols (rounded up to its lanes); the padding is zeroed.
        std::uint8_t* u = s.u.data() + static_cast<std::size_t>(i) * x.kpad;
        float* a = s.a.data() + static_cast<std::size_t>(i) * (x.kpad / 4);
        float* m = s.m.data() + static_cast<std::size_t>(i) * x.ngroups;
        decode(w, r + i, u, a, m);
        std::fill(u + w.cols, u + x.kpad, 0);
        std::fill(a + (w.cols + 3) / 4, a + x.kpad / 4, 0.0f);
        std::fill(m + (w.cols + 15) / 16, m + x.ngroups, 0.0f);
      }
      // The next row tile's weights are requested into L2 while this one computes (its first
      // token tile): decoding reads rows in one burst, which otherwise waits on memory every
      // time (the w8a16 decoder took a third of the time at batch 16 without this).
      const std::uint8_t* pf;
      std::size_t row_bytes;
      row_bytes_of(w, std::min(r + nr, w.rows - 1), pf, row_bytes);
      const int next = std::min(row_end, r + nr + kTileRows) - (r + nr);
      const int pf_lines = next <= 0 ? 0 : static_cast<int>((row_bytes * next + 63) / 64 + x.kpad / 64 - 1) / (x.kpad / 64);
      for (int b = bb; b < be; b += kTileTokens)
        tiles[nr - 1][std::min(kTileTokens, be - b) - 1](s, x, b, y, w.rows, r, pf, b == bb ? pf_lines : 0);
    }
  }
}

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END

namespace qmeter::engine::kernels::avx512 {

void matmul_int8_act(const Matrix& w, const float* x, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  if (has_vnni()) {
    const Int8WeightType* t = int8_weight_type(w.dtype);
    // The GGUF types below the lanes kernel's batches: the register-decoding kernel, one token
    // at a time per 3-row tile (batch 2 / 4 / 8: 1.13-1.31x / 0.77-0.88x / 0.75-0.84x f16 against
    // the 4x4 tiles' 0.52-0.60x / 0.55-0.62x / 0.72-0.74x, batched_matmul_bench --threads 1).
    if (batch < kGgufLanesMinBatch && t->dot_vnni) return t->dot_vnni(w, x, prepared, batch, y, row_begin, row_end);
    return matmul_int8_act_vnni(w, x, prepared, batch, y, row_begin, row_end);
  }
  int8_weight_type(w.dtype)->f32_fallback(w, x, prepared, batch, y, row_begin, row_end);
}

}  // namespace qmeter::engine::kernels::avx512
