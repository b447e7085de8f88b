// Kernels of llama.cpp's block formats (kernels_quant_gguf.h): the scalar reference, and AVX-512
// kernels that widen each block's codes to f32 in registers, scale them to the exact reference
// weights and accumulate with FMAs; up to 8 batch rows share each dequantized block (matrix-matrix),
// batch 1 is the decode path. Never a dequantized copy of the matrix.
#include "kernels_target.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels_quant.h"
#include "kernels_quant_gguf.h"
#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::engine::kernels::scalar {

// The generic dequantize-and-dot of the packed formats (packed_row_to_f32, which decodes the GGUF
// blocks through gguf_row_to_f32, then a dot product in column order).
void matmul_gguf(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  matmul_nf4(w, x, nullptr, batch, y, row_begin, row_end);
}

}  // namespace qmeter::engine::kernels::scalar

namespace qmeter::engine::kernels {

std::span<const MatmulKernel> gguf_matmul_kernels() {
  static const std::vector<MatmulKernel> rows = [] {
    std::vector<MatmulKernel> out;
    for (const GgufBlockTraits& t : gguf_block_types()) {
      out.push_back({Isa::kScalar, t.dtype, 1, t.matmul_scalar});
      if (t.matmul_avx2) out.push_back({Isa::kAvx2, t.dtype, 1, t.matmul_avx2});
      if (t.matmul_avx512) out.push_back({Isa::kAvx512, t.dtype, 1, t.matmul_avx512});
    }
    return out;
  }();
  return rows;
}

}  // namespace qmeter::engine::kernels

QMETER_KERNELS_BEGIN_AVX512

namespace qmeter::engine::kernels::avx512 {
namespace {

constexpr int kBatchTile = 8;

inline float load_f16(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Rows [r0, r1) of w for NB batch rows of x (x and y already offset to the tile): the row's
// 32-weight groups are dequantized by decode(row, group, w0, w1) into two registers of exact
// weights, each used by all NB rows of x.
template <int NB, typename Decode>
void block_rows(const Matrix& w, const float* x, float* y, int r0, int r1, Decode decode) {
  const std::size_t rb = gguf_row_bytes(w.dtype, w.cols);
  const int groups = w.cols / 32;
  const std::size_t gb = rb / static_cast<std::size_t>(groups);  // bytes per 32 weights (q4_K: 144 / 8)
  for (int r = r0; r < r1; ++r) {
    const auto* row = static_cast<const std::uint8_t*>(w.data) + rb * static_cast<std::size_t>(r);
    __m512 acc0[NB], acc1[NB];
    for (int b = 0; b < NB; ++b) acc0[b] = acc1[b] = _mm512_setzero_ps();
    for (int g = 0; g < groups; ++g) {
      // Software prefetch kPrefetchBytes ahead (rows are contiguous, so past the row end is the
      // next row): the hardware prefetcher stops at every 4 KiB page (kernels_dispatch.h).
      __builtin_prefetch(row + static_cast<std::size_t>(g) * gb + kPrefetchBytes, 0, 2);
      __m512 w0, w1;
      decode(row, g, w0, w1);
      for (int b = 0; b < NB; ++b) {
        const float* xb = x + static_cast<std::size_t>(b) * w.cols + 32 * g;
        acc0[b] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xb), acc0[b]);
        acc1[b] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), acc1[b]);
      }
    }
    for (int b = 0; b < NB; ++b) y[static_cast<std::size_t>(b) * w.rows + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[b], acc1[b]));
  }
}

// q8_0: d * q, exact in f32 (11 x 8 significant bits).
__attribute__((always_inline)) inline void decode_q8_0(const std::uint8_t* row, int g, __m512& w0, __m512& w1) {
  const std::uint8_t* blk = row + static_cast<std::size_t>(g) * kQ8_0Bytes;
  const __m512 d = _mm512_set1_ps(load_f16(blk));
  w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)))));
  w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)))));
}

// q4_0: d * (q - 8), exact; low nibbles are weights 0..15, high nibbles 16..31.
__attribute__((always_inline)) inline void decode_q4_0(const std::uint8_t* row, int g, __m512& w0, __m512& w1) {
  const std::uint8_t* blk = row + static_cast<std::size_t>(g) * kQ4_0Bytes;
  const __m512 d = _mm512_set1_ps(load_f16(blk));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m512 eight = _mm512_set1_ps(8.0f);
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
  w0 = _mm512_mul_ps(d, _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(bytes, low4))), eight));
  w1 = _mm512_mul_ps(d, _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4))), eight));
}

// q4_K: group g is sub-block j = g % 8 of super-block g / 8: 32 nibbles of qs[32 * (j / 2) ..],
// low for even j, high for odd. d1 * q is exact (17 x 4 significant bits), so the fused
// d1 * q - m1 rounds once, as the reference's separate multiply and subtract do.
__attribute__((always_inline)) inline void decode_q4_k(const std::uint8_t* row, int g, __m512& w0, __m512& w1) {
  const std::uint8_t* blk = row + static_cast<std::size_t>(g / 8) * kQ4KBytes;
  const int j = g % 8;
  std::uint8_t sc, m;
  q4k_scale_min(j, blk + 4, sc, m);
  const __m512 d1 = _mm512_set1_ps(load_f16(blk) * static_cast<float>(sc));
  const __m512 m1 = _mm512_set1_ps(load_f16(blk + 2) * static_cast<float>(m));
  const std::uint8_t* q = blk + 16 + 32 * (j / 2);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16));
  if (j % 2) {
    b0 = _mm_srli_epi16(b0, 4);
    b1 = _mm_srli_epi16(b1, 4);
  }
  w0 = _mm512_fmsub_ps(d1, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(b0, low4))), m1);
  w1 = _mm512_fmsub_ps(d1, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(b1, low4))), m1);
}

using TileFn = void (*)(const Matrix&, const float*, float*, int, int);

// Functor types (not function pointers), so each block_rows instance inlines its decoder.
struct DecodeQ8_0 {
  void operator()(const std::uint8_t* row, int g, __m512& w0, __m512& w1) const { decode_q8_0(row, g, w0, w1); }
};
struct DecodeQ4_0 {
  void operator()(const std::uint8_t* row, int g, __m512& w0, __m512& w1) const { decode_q4_0(row, g, w0, w1); }
};
struct DecodeQ4K {
  void operator()(const std::uint8_t* row, int g, __m512& w0, __m512& w1) const { decode_q4_k(row, g, w0, w1); }
};
template <int NB> struct Q8K { static void run(const Matrix& w, const float* x, float* y, int a, int b) { block_rows<NB>(w, x, y, a, b, DecodeQ8_0{}); } };
template <int NB> struct Q40K { static void run(const Matrix& w, const float* x, float* y, int a, int b) { block_rows<NB>(w, x, y, a, b, DecodeQ4_0{}); } };
template <int NB> struct Q4KK { static void run(const Matrix& w, const float* x, float* y, int a, int b) { block_rows<NB>(w, x, y, a, b, DecodeQ4K{}); } };

template <template <int> class K>
void run_tiles(const Matrix& w, const float* x, int batch, float* y, int row_begin, int row_end) {
  static constexpr TileFn kFns[kBatchTile] = {K<1>::run, K<2>::run, K<3>::run, K<4>::run,
                                              K<5>::run, K<6>::run, K<7>::run, K<8>::run};
  (void)gguf_row_bytes(w.dtype, w.cols);  // throws for a partial block before any load
  for (int b0 = 0; b0 < batch; b0 += kBatchTile) {
    const int nb = std::min(kBatchTile, batch - b0);
    kFns[nb - 1](w, x + static_cast<std::size_t>(b0) * w.cols, y + static_cast<std::size_t>(b0) * w.rows, row_begin, row_end);
  }
}

}  // namespace

void matmul_gguf_q8_0(const Matrix& w, const float* x, const void*, int batch, float* y, int r0, int r1) {
  run_tiles<Q8K>(w, x, batch, y, r0, r1);
}
void matmul_gguf_q4_0(const Matrix& w, const float* x, const void*, int batch, float* y, int r0, int r1) {
  run_tiles<Q40K>(w, x, batch, y, r0, r1);
}
void matmul_gguf_q4_k(const Matrix& w, const float* x, const void*, int batch, float* y, int r0, int r1) {
  run_tiles<Q4KK>(w, x, batch, y, r0, r1);
}

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END
