// The GGUF block types at batch >= kGgufLanesMinBatch (prefill, batched decode) with int8
// activations and VPDPBUSD, one output row per lane: the w8a16 / w4a16 lanes kernel's layout
// (kernels_quant_int8_lanes_avx512.cpp) applied to the rows the GGUF decoders produce.
//
// Why: matmul_int8_act_vnni gives each (row, token) pair a vector of 16 lane sums and pays, per
// 64 columns and pair, a VPDPBUSD, a conversion, a multiply and an fma (16 multiply-adds per
// instruction): GGUF prefill ran at the f16 speed whatever the type, 0.60-0.77x llama.cpp's on
// 4- and 8-bit files (bench/engine/llamacpp_compare_bench). Here a tile of 16 rows is decoded
// (the same row decoders) and transposed once per batch block, so that one vector holds 4
// consecutive codes of each of the 16 rows; each token's 4 int8 activations are broadcast and
// one VPDPBUSD makes 64 multiply-adds of 16 different outputs. A token's int32 sums cover one
// scale unit (the 32 columns of a block, or the 16 of a q2_K / q3_K / q6_K group: A is the same
// there) and are converted once for 16 outputs.
//
// The f32 operations per output (row r, token b), in column order, which the scalar reference
// scalar::matmul_int8_lanes_gguf repeats exactly (the kernel is bit-identical to it):
//   for each scale unit j:  acc = fma(float(sum_unit u * xq), A_j * dx_j, acc)
//                           then per 16-column group g of the unit:  acc = fma(M_g, xs_g, acc)
// (kernels_gguf_int8.h for u, A, M and the activations xq, dx, xs.) It is another order than
// scalar::matmul_int8_act's (the batch-1 kernel's), so a token's logits may differ in the last
// bits between a batch and a decode step alone, as they do for w8a16 / w4a16.
#include "kernels_target.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels_gguf_int8.h"
#include "qmeter/engine/gguf_blocks.h"

QMETER_KERNELS_BEGIN_AVX512_VNNI

#include "kernels_int8_lanes_step.h"

namespace qmeter::engine::kernels::avx512 {
namespace {

constexpr int kLanes = 16;      // rows per tile
constexpr int kMaxTokens = 16;  // tokens per register tile (16 int32 sums)
// Activation bytes of one batch block (int8 codes + interleaved copy), kept in L2 while the row
// tiles pass.
constexpr std::size_t kBlockActBytes = 512 << 10;

struct GgufLaneScratch {
  std::vector<std::uint8_t> u;  // [16 rows][kpad]: decoded codes (zero past cols)
  std::vector<float> a, m;      // [16 rows][4 ngroups], [16 rows][ngroups]: lane scales A, offsets M
  std::vector<std::uint8_t> t;  // [kpad / 4][16 lanes][4 codes]
  std::vector<float> ag, mg;    // [ngroups][16 lanes]: A and M of each 16-column group
};

// Tokens b0 .. b0 + NB (b0 a multiple of 16) against the transposed tile; y rows r0 .. r0 + nr.
// U: columns per scale unit (32 or 16). pf / pf_per_step: the next tile's weight lines requested
// into L2 per 4-column step (or none).
template <int NB, int U>
void gguf_lane_tile(const GgufLaneScratch& s, const Int8Activations& x, const std::uint8_t* xt, int b0, float* y, int y_rows,
                    int r0, int nr, const std::uint8_t* pf, int pf_per_step) {
  const std::uint8_t* xtile = xt + static_cast<std::size_t>(b0) * x.kpad;
  const int lanes4 = x.kpad / 4, units = x.kpad / U;
  constexpr int kSteps = U / 4, kGroups = U / 16;
  // The f32 sums live in memory (L1): 16 int32 sums already fill half the registers.
  alignas(64) float acc[NB][kLanes] = {};
  for (int j = 0; j < units; ++j) {
    __m512i p[NB];
#pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) p[b] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int i = 0; i < kSteps; ++i) lanes_step<NB>(s.t.data(), xtile, j * kSteps + i, pf, pf_per_step, p);
    const __m512 av = _mm512_loadu_ps(s.ag.data() + kLanes * static_cast<std::size_t>(j * kGroups));  // A of the unit
    __m512 mv[kGroups];
#pragma GCC unroll 2
    for (int g = 0; g < kGroups; ++g) mv[g] = _mm512_loadu_ps(s.mg.data() + kLanes * static_cast<std::size_t>(j * kGroups + g));
#pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) {
      const std::size_t tok = static_cast<std::size_t>(b0 + b);
      const float dx = x.dx[tok * lanes4 + static_cast<std::size_t>(j) * kSteps];
      __m512 c = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[b]), _mm512_mul_ps(av, _mm512_set1_ps(dx)), _mm512_load_ps(acc[b]));
#pragma GCC unroll 2
      for (int g = 0; g < kGroups; ++g)
        c = _mm512_fmadd_ps(mv[g], _mm512_set1_ps(x.xs[tok * x.ngroups + static_cast<std::size_t>(j * kGroups + g)]), c);
      _mm512_store_ps(acc[b], c);
    }
  }
  const __mmask16 rows = static_cast<__mmask16>(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
#pragma GCC unroll 16
  for (int b = 0; b < NB; ++b) _mm512_mask_storeu_ps(y + static_cast<std::size_t>(b0 + b) * y_rows + r0, rows, _mm512_load_ps(acc[b]));
}

using GgufLaneTileFn = void (*)(const GgufLaneScratch&, const Int8Activations&, const std::uint8_t*, int, float*, int, int, int,
                                const std::uint8_t*, int);
template <int U, std::size_t... I>
constexpr auto make_tiles(std::index_sequence<I...>) {
  return std::array<GgufLaneTileFn, sizeof...(I)>{gguf_lane_tile<static_cast<int>(I) + 1, U>...};
}
constexpr auto kTiles32 = make_tiles<32>(std::make_index_sequence<kMaxTokens>{});
constexpr auto kTiles16 = make_tiles<16>(std::make_index_sequence<kMaxTokens>{});

// Decodes rows r .. r + nr into the scratch (rows past nr count as zero), then transposes the
// codes, and A and M per 16-column group, into lane order (16 x 16 dword transposes: 4 for the
// codes of 256 columns, one each for A and M of 16 groups).
void decode_tile(const Matrix& w, const Int8WeightType& t, int r, int nr, int kpad, int ngroups, GgufLaneScratch& s) {
  const Int8DecodeRowFn decode = t.decode_avx512 ? t.decode_avx512 : t.decode_scalar;
  const std::size_t astride = 4 * static_cast<std::size_t>(ngroups);  // a row: whole 256 columns
  for (int i = 0; i < nr; ++i) {
    // A decoder writes every entry up to cols (rounded up to its lanes); the padding is zeroed.
    std::uint8_t* u = s.u.data() + static_cast<std::size_t>(i) * kpad;
    float* a = s.a.data() + i * astride;
    float* m = s.m.data() + static_cast<std::size_t>(i) * ngroups;
    decode(w, r + i, u, a, m);
    std::fill(u + w.cols, u + kpad, 0);
    std::fill(a + (w.cols + 3) / 4, a + astride, 0.0f);
    std::fill(m + (w.cols + 15) / 16, m + ngroups, 0.0f);
  }
  alignas(64) static const std::uint8_t zero_row[64] = {};
  const std::uint8_t* rows[kLanes];
  for (int c = 0; c < kpad / 64; ++c) {
    for (int i = 0; i < kLanes; ++i) rows[i] = i < nr ? s.u.data() + static_cast<std::size_t>(i) * kpad + 64 * c : zero_row;
    transpose16(rows, s.t.data() + 1024 * static_cast<std::size_t>(c));
  }
  // A of each group: every 4th lane scale (64 lanes -> 16 groups per row), then transposed.
  const __m512i every4 = _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0);
  alignas(64) float ga[kLanes][16];
  for (int gb = 0; gb < ngroups / 16; ++gb) {
    for (int i = 0; i < kLanes; ++i) {
      if (i >= nr) {
        rows[i] = zero_row;
        continue;
      }
      const float* a = s.a.data() + i * astride + 64 * static_cast<std::size_t>(gb);
      const __m512 lo = _mm512_permutex2var_ps(_mm512_loadu_ps(a), every4, _mm512_loadu_ps(a + 16));
      const __m512 hi = _mm512_permutex2var_ps(_mm512_loadu_ps(a + 32), every4, _mm512_loadu_ps(a + 48));
      _mm512_store_ps(ga[i], _mm512_mask_blend_ps(0xFF00, lo, hi));
      rows[i] = reinterpret_cast<const std::uint8_t*>(ga[i]);
    }
    transpose16(rows, reinterpret_cast<std::uint8_t*>(s.ag.data() + 256 * static_cast<std::size_t>(gb)));
    for (int i = 0; i < kLanes; ++i)
      rows[i] = i < nr ? reinterpret_cast<const std::uint8_t*>(s.m.data() + static_cast<std::size_t>(i) * ngroups + 16 * gb) : zero_row;
    transpose16(rows, reinterpret_cast<std::uint8_t*>(s.mg.data() + 256 * static_cast<std::size_t>(gb)));
  }
}

}  // namespace

void matmul_int8_lanes_gguf_vnni(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const Int8WeightType& t = *int8_weight_type(w.dtype);
  const Int8Activations x = int8_act_view(prepared, batch, w.cols);
  const std::uint8_t* xt = int8_lanes_tokens(prepared, batch, w.cols);
  const int unit = int8_scale_unit_cols(w.dtype);
  const auto& tiles = unit == 32 ? kTiles32 : kTiles16;
  thread_local GgufLaneScratch s;
  s.u.resize(static_cast<std::size_t>(kLanes) * x.kpad);
  s.a.resize(static_cast<std::size_t>(kLanes) * 4 * x.ngroups);
  s.m.resize(static_cast<std::size_t>(kLanes) * x.ngroups);
  s.t.resize(static_cast<std::size_t>(kLanes) * x.kpad);
  s.ag.resize(static_cast<std::size_t>(kLanes) * x.ngroups);
  s.mg.resize(static_cast<std::size_t>(kLanes) * x.ngroups);
  const std::size_t row_bytes = gguf_row_bytes(w.dtype, w.cols);
  const auto* wbase = static_cast<const std::uint8_t*>(w.data);
  const int lanes4 = x.kpad / 4;
  const int block = std::max<int>(kMaxTokens, static_cast<int>(kBlockActBytes / (2 * static_cast<std::size_t>(x.kpad))) / kMaxTokens * kMaxTokens);
  for (int bb = 0; bb < batch; bb += block) {
    const int be = std::min(batch, bb + block);
    for (int r = row_begin; r < row_end; r += kLanes) {
      const int nr = std::min(kLanes, row_end - r);
      decode_tile(w, t, r, nr, x.kpad, x.ngroups, s);
      // The next tile's rows are requested into L2 while the first token tile computes (the
      // decoders read rows in one burst, which otherwise waits on memory).
      const int next = std::min(row_end, r + nr + kLanes) - (r + nr);
      const std::uint8_t* pf = wbase + static_cast<std::size_t>(r + nr) * row_bytes;
      const int pf_lines = next <= 0 ? 0 : static_cast<int>((row_bytes * static_cast<std::size_t>(next) + 63) / 64);
      const int pf_per_step = (pf_lines + lanes4 - 1) / lanes4;
      for (int b = bb; b < be; b += kMaxTokens)
        tiles[std::min(kMaxTokens, be - b) - 1](s, x, xt, b, y, w.rows, r, nr, pf, b == bb ? pf_per_step : 0);
    }
  }
}

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END
