#pragma once
// Helpers shared by the GGUF block quantizers (gguf_quant.cpp: 32-weight blocks, gguf_quant_k.cpp:
// the 256-weight K-quants and IQ4). Every quantizer must reproduce ggml's reference arithmetic in
// f32 step by step, in the same order (no fused multiply-add: this module is built without FMA
// code generation), because a different rounding can pick a different code.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "qmeter/engine/kernels.h"

namespace qmeter::quant::detail {

// Round to nearest, ties to even (ggml's nearest_int, which adds 1.5 * 2^23 in the default FP
// environment: the same result for the |v| < 2^22 it is used on).
inline int nearest(float v) { return static_cast<int>(std::nearbyint(v)); }

inline void put_f16(std::uint8_t* at, float v) {
  const std::uint16_t h = engine::f32_to_f16(v);
  std::memcpy(at, &h, 2);
}
inline float get_f16(const std::uint8_t* at) {
  std::uint16_t h;
  std::memcpy(&h, at, 2);
  return engine::f16_to_f32(h);
}

// The value of largest magnitude in x[0..n), sign kept (the first of equal magnitudes; 0 when all
// are 0): where ggml's symmetric types put the extreme code.
inline float signed_absmax(const float* x, int n) {
  float amax = 0, m = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      m = x[i];
    }
  return m;
}

// ggml's "all zero" threshold for a group's largest magnitude (GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Weighted least-squares fit of x ~ scale * L + min with L in [0, nmax] and min <= 0 (ggml's
// make_qkx2_quants): start from the full range, then try nstep + 1 step counts
// nmax + rmin + rdelta * k, each with the closed-form (scale, min) of its codes, and keep the one
// with the smallest weighted error (squared, or absolute when use_mad). Returns the scale;
// *neg_min = -min (>= 0), codes in L.
float fit_scale_min(int n, int nmax, const float* x, const float* w, std::uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep, bool use_mad);

// Symmetric fit x ~ scale * (L - nmax) with L - nmax in [-nmax, nmax - 1], weights x^2 (ggml's
// make_qx_quants with rmse_type 1 and no importance): the scale of the largest magnitude, then 18
// nearby scales -(nmax + 0.1 k) / max, keeping the best weighted least-squares one. Also used on a
// super-block's scales with given weights `w` (non-null).
float fit_symmetric(int n, int nmax, const float* x, std::int8_t* L, const float* w);

}  // namespace qmeter::quant::detail
