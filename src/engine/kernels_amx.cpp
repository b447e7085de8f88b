// AMX-BF16 matrix-matrix kernel for BF16 weights (prefill and batched decode, batch >= 2).
// One TDPBF16PS multiplies a 16x32 bf16 tile by a 32x16 one into 16x16 f32 sums: 8192
// multiply-adds per instruction, against 32 for VDPBF16PS, so a batched step is bound by the
// weight stream again instead of by arithmetic.
//
// Roles: y^T = W x^T. The A tile is 16 weight rows x 32 columns read straight from the row-major
// weights (stride = the row's bytes), so the weights need no repacking and stay shared with the
// batch-1 matrix-vector path. The B tile is 16 column pairs x 16 tokens of the activations,
// rounded to bf16 once per call (prepare) into AMX's pair-interleaved ("VNNI") layout:
//   prepared[mb][kp][m][2] = bf16(x[16*mb + m][2*kp + {0,1}]),  zero past the batch or the columns.
// The C tile holds 16 rows x 16 tokens and is scattered into y[token][row].
//
// Each y element is the sum over its own weight row and token only, in a fixed column order, so
// the result does not depend on the batch it travels in nor on the thread's row range (the
// padding only adds exact zeros). Numerics: as the VDPBF16PS path, products of bf16 pairs
// accumulated in f32; AMX flushes subnormal inputs and outputs to zero.
//
// Tails: columns past a multiple of 32 and rows past a multiple of 16 are copied into small
// zero-padded buffers before the tile load, so no load reads outside the matrix.
#include "kernels_target.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels_dispatch.h"

QMETER_KERNELS_BEGIN_AMX_BF16

namespace qmeter::engine::kernels::amx {
namespace {

constexpr int kTile = 16;        // rows of every tile, tokens per B / C tile
constexpr int kStepCols = 32;    // bf16 columns per A tile row (64 bytes)
constexpr int kTileBytes = 64;   // bytes per tile row

long padded_cols(long cols) { return (cols + kStepCols - 1) / kStepCols * kStepCols; }
long token_blocks(int batch) { return (batch + kTile - 1) / kTile; }

// Tile register use: C tiles 0..3 (C[n][m] at 2n+m), A tiles 4..5, B tiles 6..7.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

void load_config() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = kTileBytes;
    cfg.rows[t] = kTile;
  }
  _tile_loadconfig(&cfg);
}

// The 16 weight rows of one block as A tiles: column k of row r at base + r * stride_bytes + 2k
// (the matrix itself, or a zero-padded copy of a short last block).
struct WeightBlock {
  const std::uint16_t* base;
  long stride_bytes;
};

// Sums of NB weight blocks x MB token blocks over all column steps, stored to `out`
// (out[(n * MB + m) * 256 + row * 16 + token]).
template <int NB, int MB>
void block_sums(const WeightBlock* wb, long cols, const std::uint16_t* xb, long kpairs, float* out,
                std::uint16_t* tail_buf) {
  if constexpr (NB >= 1 && MB >= 1) _tile_zero(0);
  if constexpr (NB >= 1 && MB >= 2) _tile_zero(1);
  if constexpr (NB >= 2 && MB >= 1) _tile_zero(2);
  if constexpr (NB >= 2 && MB >= 2) _tile_zero(3);
  const long full_steps = cols / kStepCols;
  const long steps = padded_cols(cols) / kStepCols;
  const long b_block = kpairs * kTile * 2;  // bf16 values per token block of the prepared x
  for (long s = 0; s < steps; ++s) {
    const long k = s * kStepCols;
    // A tiles: straight from the weights for full steps, else from a zero-padded copy. (GCC's
    // tile intrinsics paste the tile number into the assembly text, so it must be a literal.)
    auto a_source = [&](int n, long& stride) -> const void* {
      const WeightBlock& w = wb[n];
      if (s < full_steps) {
        stride = w.stride_bytes;
        return w.base + k;
      }
      std::uint16_t* buf = tail_buf + n * kTile * kStepCols;
      std::memset(buf, 0, kTile * kTileBytes);
      const long n_cols = cols - k;
      for (int r = 0; r < kTile; ++r) {
        std::memcpy(buf + r * kStepCols, reinterpret_cast<const unsigned char*>(w.base) + r * w.stride_bytes + k * 2,
                    n_cols * 2);
      }
      stride = kTileBytes;
      return buf;
    };
    long stride = 0;
    const void* a0 = a_source(0, stride);
    _tile_loadd(4, a0, stride);
    if constexpr (NB >= 2) {
      const void* a1 = a_source(1, stride);
      _tile_loadd(5, a1, stride);
    }
    const std::uint16_t* bx = xb + s * kTile * kTile * 2;  // 16 pairs x 16 tokens x 2
    _tile_loadd(6, bx, kTileBytes);
    if constexpr (MB >= 2) _tile_loadd(7, bx + b_block, kTileBytes);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (MB >= 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (NB >= 2) _tile_dpbf16ps(2, 5, 6);
    if constexpr (NB >= 2 && MB >= 2) _tile_dpbf16ps(3, 5, 7);
  }
  constexpr int kC = kTile * kTile;
  _tile_stored(0, out, kTileBytes);
  if constexpr (MB >= 2) _tile_stored(1, out + kC, kTileBytes);
  if constexpr (NB >= 2) _tile_stored(2, out + MB * kC, kTileBytes);
  if constexpr (NB >= 2 && MB >= 2) _tile_stored(3, out + 3 * kC, kTileBytes);
}

}  // namespace

std::size_t prepared_bytes_bf16(int batch, int cols) {
  return static_cast<std::size_t>(token_blocks(batch)) * kTile * padded_cols(cols) * sizeof(std::uint16_t);
}

void prepare_bf16(const float* x, int batch, int cols, void* out) {
  const long kpairs = padded_cols(cols) / 2;
  auto* dst = static_cast<std::uint16_t*>(out);
  std::memset(out, 0, prepared_bytes_bf16(batch, cols));
  for (int t = 0; t < batch; ++t) {
    const float* src = x + static_cast<long>(t) * cols;
    std::uint16_t* block = dst + (t / kTile) * kpairs * kTile * 2 + (t % kTile) * 2;
    for (long c = 0; c < cols; c += 16) {
      const long n = std::min<long>(cols - c, 16);
      const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
      alignas(32) std::uint16_t h[16];
      // VCVTNEPS2BF16: round to nearest even, as the VDPBF16PS path.
      _mm256_store_si256(reinterpret_cast<__m256i*>(h), (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + c)));
      for (long i = 0; i < n; i += 2) {
        const long kp = (c + i) / 2;
        std::memcpy(block + kp * kTile * 2, h + i, 2 * sizeof(std::uint16_t));
      }
    }
  }
}

void matmul_bf16(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin,
                 int row_end) {
  const auto* data = static_cast<const std::uint16_t*>(w.data);
  const auto* xq = static_cast<const std::uint16_t*>(prepared);
  const long cols = w.cols;
  const long rows = w.rows;
  const long kpairs = padded_cols(cols) / 2;
  const long mblocks = token_blocks(batch);
  // Scratch: C results, the partial-step copies of two blocks, and a padded copy of a short last
  // row block.
  alignas(64) float sums[4 * kTile * kTile];
  alignas(64) std::uint16_t tail_buf[2 * kTile * kStepCols];
  thread_local std::vector<std::uint16_t> short_rows;

  load_config();
  auto scatter = [&](const float* c, int n0, int n_rows, long m0) {
    const int n_tok = static_cast<int>(std::min<long>(kTile, batch - m0));
    for (int t = 0; t < n_tok; ++t) {
      float* yt = y + (m0 + t) * rows + n0;
      for (int r = 0; r < n_rows; ++r) yt[r] = c[r * kTile + t];
    }
  };
  for (int n0 = row_begin; n0 < row_end; n0 += 2 * kTile) {
    const int n_rows = std::min(2 * kTile, row_end - n0);
    WeightBlock blocks[2];
    int nb = 0;
    for (int i = 0; i < 2 && i * kTile < n_rows; ++i, ++nb) {
      const int r0 = n0 + i * kTile;
      const int valid = std::min(kTile, row_end - r0);
      if (valid == kTile) {
        blocks[i] = {data + r0 * cols, cols * 2};
      } else {
        const long pc = padded_cols(cols);
        short_rows.assign(static_cast<std::size_t>(kTile * pc), 0);
        for (int r = 0; r < valid; ++r) std::memcpy(short_rows.data() + r * pc, data + (r0 + r) * cols, cols * 2);
        blocks[i] = {short_rows.data(), pc * 2};
      }
    }
    for (long mb = 0; mb < mblocks; mb += 2) {
      const bool two_m = mb + 1 < mblocks;
      const std::uint16_t* xb = xq + mb * kpairs * kTile * 2;
      float* out = sums;
      if (nb == 2) {
        if (two_m) block_sums<2, 2>(blocks, cols, xb, kpairs, out, tail_buf);
        else block_sums<2, 1>(blocks, cols, xb, kpairs, out, tail_buf);
      } else {
        if (two_m) block_sums<1, 2>(blocks, cols, xb, kpairs, out, tail_buf);
        else block_sums<1, 1>(blocks, cols, xb, kpairs, out, tail_buf);
      }
      const int mcount = two_m ? 2 : 1;
      for (int i = 0; i < nb; ++i) {
        const int r0 = n0 + i * kTile;
        const int valid = std::min(kTile, row_end - r0);
        for (int m = 0; m < mcount; ++m) scatter(out + (i * mcount + m) * kTile * kTile, r0, valid, (mb + m) * kTile);
      }
    }
  }
  _tile_release();
}

}  // namespace qmeter::engine::kernels::amx

QMETER_KERNELS_END
