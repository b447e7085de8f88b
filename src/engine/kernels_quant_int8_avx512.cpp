// AVX-512 int8 x int8 -> int32 kernels of kQ8RowA8 (SmoothQuant W8A8). The prepared activations
// are u8 = int8 + 128 (VPDPBUSD multiplies unsigned by signed bytes), so the VNNI variant
// subtracts 128 * rowsum(q) once per output; the AVX-512BW variant widens both operands to
// 16 bits and uses VPMADDWD. Both sums are exact in int32 (|q|, |x| <= 127, cols < 2^17), so
// every variant and the scalar reference give bit-identical outputs:
//   y = (scale[r] * xscale[b]) * (float)acc
#include "kernels_target.h"

#include <algorithm>
#include <cstring>

#include "kernels_quant.h"
#include "qmeter/engine/packed_formats.h"

QMETER_KERNELS_BEGIN_AVX512

namespace qmeter::engine::kernels::avx512 {
namespace {

constexpr int kBatchTile = 8;

struct Q8A8View {
  const std::uint8_t* codes;
  const float* scales;
  const std::int32_t* rowsums;
  std::uint32_t row_stride;
  const float* xscale;
  const std::uint8_t* xq;
  int xstride;
};

Q8A8View view(const Matrix& w, const void* prepared, int batch) {
  const PackedHeader& h = packed_header(w);
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const auto* tail = base + static_cast<std::size_t>(w.rows) * h.row_stride;
  return {base,
          reinterpret_cast<const float*>(tail),
          reinterpret_cast<const std::int32_t*>(tail + sizeof(float) * w.rows),
          h.row_stride,
          prepared_scales(prepared),
          static_cast<const std::uint8_t*>(prepared) + prepared_scales_bytes(batch),
          int8_prepared_stride(w.cols)};
}

inline float out_value(const Q8A8View& v, int r, int b, std::int32_t acc) {
  float s;
  std::memcpy(&s, v.scales + r, sizeof s);
  return (s * v.xscale[b]) * static_cast<float>(acc);
}

template <int NB>
void bw_rows(const Matrix& w, const Q8A8View& v, int b0, float* y, int r0, int r1) {
  const int steps = v.xstride / 32;
  const __m512i bias = _mm512_set1_epi16(128);
  for (int r = r0; r < r1; ++r) {
    const std::uint8_t* q = v.codes + static_cast<std::size_t>(r) * v.row_stride;
    __m512i acc[NB];
    for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_si512();
    for (int s = 0; s < steps; ++s) {
      const __m512i wq = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * s)));
      for (int b = 0; b < NB; ++b) {
        const std::uint8_t* xb = v.xq + static_cast<std::size_t>(b0 + b) * v.xstride + 32 * s;
        const __m512i xs = _mm512_sub_epi16(_mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb))), bias);
        acc[b] = _mm512_add_epi32(acc[b], _mm512_madd_epi16(xs, wq));
      }
    }
    for (int b = 0; b < NB; ++b)
      y[static_cast<std::size_t>(b0 + b) * w.rows + r] = out_value(v, r, b0 + b, _mm512_reduce_add_epi32(acc[b]));
  }
}

// Batch tiles of up to kBatchTile tokens; Rows<NB> computes one tile.
template <template <int> class Rows>
void run_tiles(const Matrix& w, const void* prepared, int batch, float* y, int r0, int r1) {
  const Q8A8View v = view(w, prepared, batch);
  for (int b0 = 0; b0 < batch; b0 += kBatchTile) {
    switch (std::min(kBatchTile, batch - b0)) {
      case 1: Rows<1>::run(w, v, b0, y, r0, r1); break;
      case 2: Rows<2>::run(w, v, b0, y, r0, r1); break;
      case 3: Rows<3>::run(w, v, b0, y, r0, r1); break;
      case 4: Rows<4>::run(w, v, b0, y, r0, r1); break;
      case 5: Rows<5>::run(w, v, b0, y, r0, r1); break;
      case 6: Rows<6>::run(w, v, b0, y, r0, r1); break;
      case 7: Rows<7>::run(w, v, b0, y, r0, r1); break;
      default: Rows<8>::run(w, v, b0, y, r0, r1); break;
    }
  }
}

template <int NB>
struct Bw {
  static void run(const Matrix& w, const Q8A8View& v, int b0, float* y, int r0, int r1) { bw_rows<NB>(w, v, b0, y, r0, r1); }
};

}  // namespace

QMETER_KERNELS_END

bool has_vnni() {
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  return vnni;
}

void matmul_q8_row_a8_bw(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  run_tiles<Bw>(w, prepared, batch, y, row_begin, row_end);
}

// The VNNI variant in its own target region, so the compiler never emits VNNI instructions in
// the functions above (they must run on AVX-512 CPUs without it).
QMETER_KERNELS_BEGIN_AVX512_VNNI
namespace {

// Weight rows are padded to 64 bytes with zero codes and prepared rows to the same stride, so
// every 64-byte step is a full load and the padding adds 0.
template <int NB>
void vnni_rows(const Matrix& w, const Q8A8View& v, int b0, float* y, int r0, int r1) {
  const int steps = v.xstride / 64;
  for (int r = r0; r < r1; ++r) {
    const std::uint8_t* q = v.codes + static_cast<std::size_t>(r) * v.row_stride;
    __m512i acc[NB];
    for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_si512();
    for (int s = 0; s < steps; ++s) {
      const __m512i wq = _mm512_loadu_si512(q + 64 * s);
      for (int b = 0; b < NB; ++b) {
        const std::uint8_t* xb = v.xq + static_cast<std::size_t>(b0 + b) * v.xstride + 64 * s;
        acc[b] = _mm512_dpbusd_epi32(acc[b], _mm512_loadu_si512(xb), wq);
      }
    }
    std::int32_t rowsum;
    std::memcpy(&rowsum, v.rowsums + r, sizeof rowsum);
    for (int b = 0; b < NB; ++b)
      y[static_cast<std::size_t>(b0 + b) * w.rows + r] = out_value(v, r, b0 + b, _mm512_reduce_add_epi32(acc[b]) - 128 * rowsum);
  }
}

template <int NB>
struct Vnni {
  static void run(const Matrix& w, const Q8A8View& v, int b0, float* y, int r0, int r1) { vnni_rows<NB>(w, v, b0, y, r0, r1); }
};

}  // namespace

void matmul_q8_row_a8_vnni(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  run_tiles<Vnni>(w, prepared, batch, y, row_begin, row_end);
}

QMETER_KERNELS_END

void matmul_q8_row_a8(const Matrix& w, const float* x, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  if (has_vnni()) matmul_q8_row_a8_vnni(w, x, prepared, batch, y, row_begin, row_end);
  else matmul_q8_row_a8_bw(w, x, prepared, batch, y, row_begin, row_end);
}

}  // namespace qmeter::engine::kernels::avx512
