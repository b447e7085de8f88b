// AVX2 + FMA + F16C inner loops of the quantized KV cache (kv_kernels.h), 8 codes per step and a
// scalar tail. int8 codes widen through VPMOVSXBD + VCVTDQ2PS. An E4M3 byte becomes the f16 with
// the same sign, exponent and mantissa bits ((b & 0x80) << 8 | (b & 0x7F) << 7), which is exactly
// the E4M3 value / 2^8 (subnormals included), widened by VCVTPH2PS; the 2^8 is applied once to
// the sum (dot) or to alpha (axpy), an exact power-of-two scaling.
#include "kernels_target.h"

#include "kernels_kv.h"
#include "qmeter/engine/packed_formats.h"

QMETER_KERNELS_BEGIN_AVX2

namespace qmeter::engine::kernels::avx2 {
namespace {

template <bool Fp8>
__m256 widen8(const std::uint8_t* c) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c));
  if constexpr (Fp8) {
    const __m128i v = _mm_cvtepu8_epi16(b);
    const __m128i sign = _mm_and_si128(_mm_slli_epi16(v, 8), _mm_set1_epi16(static_cast<short>(0x8000)));
    const __m128i mag = _mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x7F)), 7);
    return _mm256_cvtph_ps(_mm_or_si128(sign, mag));
  } else {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
  }
}

template <bool Fp8>
float value(std::uint8_t c) {
  return Fp8 ? e4m3_to_f32(c) : static_cast<float>(static_cast<std::int8_t>(c));
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <bool Fp8>
float dot(const float* q, const std::uint8_t* codes, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(widen8<Fp8>(codes + i), _mm256_loadu_ps(q + i), acc);
  float s = hsum(acc) * (Fp8 ? 256.0f : 1.0f);
  for (; i < n; ++i) s += q[i] * value<Fp8>(codes[i]);
  return s;
}

template <bool Fp8>
void axpy(float alpha, const std::uint8_t* codes, float* y, int n) {
  const __m256 a = _mm256_set1_ps(Fp8 ? alpha * 256.0f : alpha);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, widen8<Fp8>(codes + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * value<Fp8>(codes[i]);
}

}  // namespace

const KvCodeOps kKvInt8Ops = {dot<false>, axpy<false>};
const KvCodeOps kKvFp8Ops = {dot<true>, axpy<true>};

}  // namespace qmeter::engine::kernels::avx2

QMETER_KERNELS_END
