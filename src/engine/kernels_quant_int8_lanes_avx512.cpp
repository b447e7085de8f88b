// w8a16 / w4a16 (kQ8Row, kQ4Group) at batch >= 2 with int8 activations and VPDPBUSD, one output
// row per lane (kernels_gguf_int8.h: the prepared activations, 128-value blocks).
//
// Why a second int8 kernel: matmul_int8_act_vnni gives each (row, token) pair a vector of 16
// partial sums, so every 64 or 128 columns it pays a conversion, a multiply and an fma per pair
// and reloads the row's codes per token; at batch 16 that was 0.5-0.6x the bf16 VDPBF16PS
// kernel. Here a tile of 16 rows is transposed once (per batch block) so that one 64-byte vector
// holds 4 consecutive codes of each of the 16 rows; each token's 4 activations are broadcast, and
// one VPDPBUSD makes 64 multiply-adds of 16 different outputs. A token's int32 sums stay in one
// register for a whole 128-column block (at most 32 * 4 * 255 * 127 < 2^31: exact) and are then
// converted once for 16 outputs:
//   y[r] += s_r * (d * P[r] - z_r * d * sum(xq))     (w = s (u - z), x ~ d xq, per block)
// with s, z the row's scale and 128 (w8a16) or its group's scale and zero point (w4a16, groups of
// a multiple of 128 columns). The transposition (64 shuffles per 16 x 64 codes) is paid once per
// tile and reused by every token of the batch block.
#include "kernels_target.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels_gguf_int8.h"
#include "kernels_quant.h"
#include "qmeter/engine/packed_formats.h"

QMETER_KERNELS_BEGIN_AVX512

namespace qmeter::engine::kernels::avx512 {

// 64 bytes of each of 16 rows -> 16 vectors of 4 bytes x 16 rows (vector j: bytes 4j..4j+3).
inline void transpose16_regs(__m512i* r, std::uint8_t* dst) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // s[4g + c], 128-bit lane L: rows 4g .. 4g+3 of dword column 4L + c.
  for (int g = 0; g < 4; ++g) {
    r[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i u0 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x44), u1 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xEE);
    const __m512i u2 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x44), u3 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xEE);
    _mm512_storeu_si512(dst + 64 * (0 + c), _mm512_shuffle_i32x4(u0, u2, 0x88));
    _mm512_storeu_si512(dst + 64 * (4 + c), _mm512_shuffle_i32x4(u0, u2, 0xDD));
    _mm512_storeu_si512(dst + 64 * (8 + c), _mm512_shuffle_i32x4(u1, u3, 0x88));
    _mm512_storeu_si512(dst + 64 * (12 + c), _mm512_shuffle_i32x4(u1, u3, 0xDD));
  }
}

void transpose16(const std::uint8_t* const* src, std::uint8_t* dst) {
  __m512i r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(src[i]);
  transpose16_regs(r, dst);
}

std::size_t int8_lanes_prepared_bytes(int batch, int cols) {
  return int8_act_prepared_bytes(batch, cols) + static_cast<std::size_t>((batch + 15) / 16) * 16 * int8_act_kpad(cols);
}

namespace {
// Each tile of 16 tokens of prepared int8 activations interleaved 4 bytes at a time
// ([tile][kpad / 4][16 tokens][4]), so a kernel step broadcasts its 16 tokens' dwords from one
// cache line at fixed offsets (16 token pointers exhausted the general registers).
void interleave_tokens(int batch, int cols, void* out) {
  const Int8Activations v = int8_act_view(out, batch, cols);
  auto* t = static_cast<std::uint8_t*>(out) + int8_act_prepared_bytes(batch, cols);
  alignas(64) static const std::uint8_t zero[64] = {};
  for (int b0 = 0; b0 < batch; b0 += 16)
    for (int c = 0; c < v.kpad / 64; ++c) {
      const std::uint8_t* rows[16];
      for (int i = 0; i < 16; ++i)
        rows[i] = b0 + i < batch ? reinterpret_cast<const std::uint8_t*>(v.xq) + static_cast<std::size_t>(b0 + i) * v.kpad + 64 * c : zero;
      transpose16(rows, t + static_cast<std::size_t>(b0) * v.kpad + 1024 * static_cast<std::size_t>(c));
    }
}
}  // namespace

// The int8 activations (blocks of 128: w8a16 / w4a16; of 32: the GGUF types), then interleaved.
// Without VNNI the rows take their f32-activation kernels, which read x itself.
void int8_lanes_prepare(const float* x, int batch, int cols, void* out) {
  if (!has_vnni()) return;
  int8_act_prepare_b128(x, batch, cols, out);
  interleave_tokens(batch, cols, out);
}
void int8_lanes_prepare_b32(const float* x, int batch, int cols, void* out) {
  if (!has_vnni()) return;
  int8_act_prepare(x, batch, cols, out);
  interleave_tokens(batch, cols, out);
}

const std::uint8_t* int8_lanes_tokens(const void* prepared, int batch, int cols) {
  return static_cast<const std::uint8_t*>(prepared) + int8_act_prepared_bytes(batch, cols);
}

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END

QMETER_KERNELS_BEGIN_AVX512_VNNI

#include "kernels_int8_lanes_step.h"

namespace qmeter::engine::kernels::avx512 {
namespace {

constexpr int kLanes = 16;     // rows per tile
constexpr int kMaxTokens = 16; // tokens per register tile (16 int32 accumulators)
constexpr int kBlock = 128;    // activation block (int8_act_prepare_b128)
// Activation bytes of one batch block, kept in L2 while the row tiles pass.
constexpr std::size_t kBlockActBytes = 512 << 10;

struct LaneScratch {
  std::vector<std::uint8_t> t;     // [kpad / 4][16 lanes][4 codes]
  std::vector<float> s, z;         // [nblocks][16]
  std::vector<float> d, ds;        // [batch][nblocks]: token block scale, d * sum(xq)
};

float half_at(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Tokens b0 .. b0 + NB against the transposed tile; y rows r0 .. r0 + nr.
// pf / pf_per_step: the next tile's weight lines requested into L2 per 4-column step (or none).
template <int NB>
void lane_tile(const LaneScratch& s, const Int8Activations& x, const std::uint8_t* xt, int nblocks, int b0, float* y,
               int y_rows, int r0, int nr, const std::uint8_t* pf, int pf_per_step) {
  const std::uint8_t* xtile = xt + static_cast<std::size_t>(b0) * x.kpad;  // b0 is a multiple of 16
  // The f32 sums live in memory (L1): with 16 int32 sums in registers they would not fit.
  alignas(64) float acc[NB][kLanes] = {};
  const int steps_total = x.kpad / 4;
  for (int blk = 0; blk < nblocks; ++blk) {
    const int k0 = blk * (kBlock / 4), k1 = std::min(steps_total, k0 + kBlock / 4);
    __m512i p[NB];
#pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) p[b] = _mm512_setzero_si512();
    for (int k = k0; k < k1; ++k) lanes_step<NB>(s.t.data(), xtile, k, pf, pf_per_step, p);
    const __m512 sv = _mm512_loadu_ps(s.s.data() + kLanes * blk), zv = _mm512_loadu_ps(s.z.data() + kLanes * blk);
#pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) {
      const std::size_t i = static_cast<std::size_t>(b0 + b) * nblocks + blk;
      const __m512 c = _mm512_fnmadd_ps(zv, _mm512_set1_ps(s.ds[i]), _mm512_mul_ps(_mm512_cvtepi32_ps(p[b]), _mm512_set1_ps(s.d[i])));
      _mm512_store_ps(acc[b], _mm512_fmadd_ps(c, sv, _mm512_load_ps(acc[b])));
    }
  }
  const __mmask16 rows = static_cast<__mmask16>(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
#pragma GCC unroll 16
  for (int b = 0; b < NB; ++b) _mm512_mask_storeu_ps(y + static_cast<std::size_t>(b0 + b) * y_rows + r0, rows, _mm512_load_ps(acc[b]));
}

using LaneTileFn = void (*)(const LaneScratch&, const Int8Activations&, const std::uint8_t*, int, int, float*, int, int, int,
                           const std::uint8_t*, int);
template <std::size_t... I>
constexpr auto make_lane_tiles(std::index_sequence<I...>) {
  return std::array<LaneTileFn, sizeof...(I)>{lane_tile<static_cast<int>(I) + 1>...};
}
constexpr auto kLaneTiles = make_lane_tiles(std::make_index_sequence<kMaxTokens>{});

// Per-lane scale and zero point of each 128-column block for rows r0 .. r0 + nr (0 past nr).
void block_scales(const Matrix& w, int r0, int nr, int nblocks, float* s, float* z) {
  const PackedHeader& h = packed_header(w);
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  std::fill(s, s + kLanes * nblocks, 0.0f);
  std::fill(z, z + kLanes * nblocks, 0.0f);
  for (int i = 0; i < nr; ++i) {
    const std::uint8_t* row = base + static_cast<std::size_t>(r0 + i) * h.row_stride;
    if (w.dtype == DType::kQ8Row) {
      float sc;
      std::memcpy(&sc, base + static_cast<std::size_t>(w.rows) * h.row_stride + sizeof(float) * (r0 + i), sizeof sc);
      for (int blk = 0; blk < nblocks; ++blk) s[kLanes * blk + i] = sc, z[kLanes * blk + i] = 128.0f;
    } else {
      const std::uint8_t* scales = row + h.codes_bytes;
      const std::uint8_t* zeros = scales + 2 * h.n_groups;
      for (int blk = 0; blk < nblocks; ++blk) {
        const int g = blk * kBlock / static_cast<int>(h.group_size);
        s[kLanes * blk + i] = half_at(scales + 2 * g);
        z[kLanes * blk + i] = static_cast<float>(zeros[g]);
      }
    }
  }
}

}  // namespace

bool int8_lanes_supported(const Matrix& w) {
  if (w.dtype == DType::kQ8Row) return true;
  return w.dtype == DType::kQ4Group && packed_header(w).group_size % kBlock == 0;
}

void matmul_int8_lanes_vnni(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const Int8Activations x = int8_act_view(prepared, batch, w.cols);
  const std::uint8_t* xt = int8_lanes_tokens(prepared, batch, w.cols);
  const int nblocks = (x.kpad + kBlock - 1) / kBlock, lanes4 = x.kpad / 4, groups_per_block = kBlock / 16;
  thread_local LaneScratch s;
  s.t.resize(static_cast<std::size_t>(kLanes) * x.kpad);
  s.s.resize(static_cast<std::size_t>(kLanes) * nblocks);
  s.z.resize(static_cast<std::size_t>(kLanes) * nblocks);
  s.d.resize(static_cast<std::size_t>(batch) * nblocks);
  s.ds.resize(static_cast<std::size_t>(batch) * nblocks);
  for (int b = 0; b < batch; ++b)
    for (int blk = 0; blk < nblocks; ++blk) {
      const std::size_t i = static_cast<std::size_t>(b) * nblocks + blk;
      s.d[i] = x.dx[static_cast<std::size_t>(b) * lanes4 + blk * (kBlock / 4)];
      float sum = 0.0f;  // the xs of the block's 16-column groups: d * sum(xq)
      for (int g = blk * groups_per_block; g < std::min(x.ngroups, (blk + 1) * groups_per_block); ++g)
        sum += x.xs[static_cast<std::size_t>(b) * x.ngroups + g];
      s.ds[i] = sum;
    }
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), low4 = _mm512_set1_epi8(0x0F);
  const __m512i shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
  const PackedHeader& h = packed_header(w);
  const auto* wbase = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const int block = std::max<int>(kMaxTokens, static_cast<int>(kBlockActBytes / static_cast<std::size_t>(x.kpad)) / kMaxTokens * kMaxTokens);
  for (int bb = 0; bb < batch; bb += block) {
    const int be = std::min(batch, bb + block);
    for (int r = row_begin; r < row_end; r += kLanes) {
      const int nr = std::min(kLanes, row_end - r);
      // Codes straight from the packed rows into registers, transposed 64 columns at a time (the
      // row decoders' per-lane scale arrays are not needed here). Columns past cols are read
      // masked; their codes meet zero activations.
      const bool q8 = w.dtype == DType::kQ8Row;
      for (int c = 0; c < x.kpad / 64; ++c) {
        __m512i v[kLanes];
        const int valid = std::min(64, w.cols - 64 * c);  // >= 1: kpad is cols rounded up to 64
        for (int i = 0; i < kLanes; ++i) {
          const std::uint8_t* row = wbase + static_cast<std::size_t>(r + i) * h.row_stride;
          if (i >= nr) {
            v[i] = _mm512_setzero_si512();
          } else if (q8) {
            const __mmask64 m = valid == 64 ? ~0ull : (~0ull >> (64 - valid));
            v[i] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, row + 64 * c), flip);
          } else {
            // 2 blocks of 16 bytes: 128-bit lanes [b0, b0, b1, b1], the odd ones shifted by 4.
            const int bytes = std::min(32, static_cast<int>(h.codes_bytes) - 32 * c);
            const __m256i q = _mm256_maskz_loadu_epi8(bytes >= 32 ? ~0u : (1u << bytes) - 1, row + 32 * c);
            const __m512i z = _mm512_castsi256_si512(q);
            v[i] = _mm512_and_si512(_mm512_srlv_epi64(_mm512_shuffle_i64x2(z, z, 0x50), shifts), low4);
          }
        }
        transpose16_regs(v, s.t.data() + 1024 * static_cast<std::size_t>(c));
      }
      block_scales(w, r, nr, nblocks, s.s.data(), s.z.data());
      // The next tile's rows are requested into L2 while the first token tile computes (the
      // decoder reads them in one burst, which otherwise waits on memory).
      const int next = std::min(row_end, r + nr + kLanes) - (r + nr);
      const std::uint8_t* pf = wbase + static_cast<std::size_t>(r + nr) * h.row_stride;
      const int pf_lines = next <= 0 ? 0 : static_cast<int>((static_cast<std::size_t>(h.row_stride) * next + 63) / 64);
      const int pf_per_step = (pf_lines + lanes4 - 1) / lanes4;
      for (int b = bb; b < be; b += kMaxTokens)
        kLaneTiles[std::min(kMaxTokens, be - b) - 1](s, x, xt, nblocks, b, y, w.rows, r, nr, pf, b == bb ? pf_per_step : 0);
    }
  }
}

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END

namespace qmeter::engine::kernels::avx512 {

void matmul_int8_lanes(const Matrix& w, const float* x, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  if (has_vnni() && int8_lanes_supported(w)) return matmul_int8_lanes_vnni(w, x, prepared, batch, y, row_begin, row_end);
  matmul_int8_act(w, x, prepared, batch, y, row_begin, row_end);
}

void matmul_int8_lanes_or_bf16(const Matrix& w, const float* x, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  if (has_vnni() && int8_lanes_supported(w)) return matmul_int8_lanes_vnni(w, x, prepared, batch, y, row_begin, row_end);
  // Rare (groups of 32 / 64 / 96 columns): each call converts its own bf16 activations, so the
  // common case does not pay for a conversion it does not use (4% of batch-16 decode).
  thread_local std::vector<std::byte> bf16;
  bf16.resize(prepared_bytes_q4_bf16(batch, w.cols) + 64);
  void* at = bf16.data() + (64 - reinterpret_cast<std::uintptr_t>(bf16.data()) % 64) % 64;
  prepare_q4_bf16(x, batch, w.cols, at);
  avx512bf16::matmul_q4_group_dp(w, x, at, batch, y, row_begin, row_end);
}

}  // namespace qmeter::engine::kernels::avx512
