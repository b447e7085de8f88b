#pragma once
// Private: one 4-column step of the one-row-per-lane int8 kernels (w8a16 / w4a16 in
// kernels_quant_int8_lanes_avx512.cpp, the GGUF types in kernels_gguf_int8_lanes_avx512.cpp).
// Include inside a QMETER_KERNELS_BEGIN_AVX512_VNNI region (the function needs VNNI).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace qmeter::engine::kernels::avx512 {

// Step k: the next weight tile's lines pf (pf_per_step of them per step) requested into L2, then
// the 16 rows' 4 codes of the transposed tile t times each token's 4 activations (xtile: 16
// tokens interleaved 4 bytes at a time), added to that token's int32 sums p[b].
template <int NB>
inline __attribute__((always_inline)) void lanes_step(const std::uint8_t* t, const std::uint8_t* xtile, int k, const std::uint8_t* pf,
                                                      int pf_per_step, __m512i (&p)[NB]) {
  for (int q = 0; q < pf_per_step; ++q) __builtin_prefetch(pf + 64 * (static_cast<std::size_t>(k) * pf_per_step + q), 0, 2);
  const __m512i wv = _mm512_loadu_si512(t + 64 * static_cast<std::size_t>(k));
#pragma GCC unroll 16
  for (int b = 0; b < NB; ++b) {
    std::int32_t xv;
    std::memcpy(&xv, xtile + 64 * static_cast<std::size_t>(k) + 4 * b, 4);
    p[b] = _mm512_dpbusd_epi32(p[b], wv, _mm512_set1_epi32(xv));
  }
}

}  // namespace qmeter::engine::kernels::avx512
