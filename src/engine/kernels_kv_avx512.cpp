// AVX-512 inner loops of the quantized KV cache (kv_kernels.h): 16 codes per step, the last
// partial step masked (masked-off codes load as 0 and masked-off q as 0). Code widening as in
// kernels_kv_avx2.cpp (E4M3 through f16 bits and VCVTPH2PS, values / 2^8).
#include "kernels_target.h"

#include "kernels_kv.h"

QMETER_KERNELS_BEGIN_AVX512

namespace qmeter::engine::kernels::avx512 {
namespace {

__mmask16 tail_mask(int n) { return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u); }

template <bool Fp8>
__m512 widen16(__m128i b) {
  if constexpr (Fp8) {
    const __m256i v = _mm256_cvtepu8_epi16(b);
    const __m256i sign = _mm256_and_si256(_mm256_slli_epi16(v, 8), _mm256_set1_epi16(static_cast<short>(0x8000)));
    const __m256i mag = _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7F)), 7);
    return _mm512_cvtph_ps(_mm256_or_si256(sign, mag));
  } else {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
  }
}

template <bool Fp8>
float dot(const float* q, const std::uint8_t* codes, int n) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m128i b = _mm_maskz_loadu_epi8(m, codes + i);
    acc = _mm512_fmadd_ps(widen16<Fp8>(b), _mm512_maskz_loadu_ps(m, q + i), acc);
  }
  return _mm512_reduce_add_ps(acc) * (Fp8 ? 256.0f : 1.0f);
}

template <bool Fp8>
void axpy(float alpha, const std::uint8_t* codes, float* y, int n) {
  const __m512 a = _mm512_set1_ps(Fp8 ? alpha * 256.0f : alpha);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m128i b = _mm_maskz_loadu_epi8(m, codes + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(a, widen16<Fp8>(b), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

}  // namespace

const KvCodeOps kKvInt8Ops = {dot<false>, axpy<false>};
const KvCodeOps kKvFp8Ops = {dot<true>, axpy<true>};

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END
