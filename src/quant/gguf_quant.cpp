// llama.cpp block quantizers (see gguf_quant.h). Written from the published block definitions and
// the reference procedures' description; the arithmetic order follows them where it decides codes.
#include "qmeter/quant/gguf_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::quant {

using engine::DType;

namespace {

// Round to nearest, ties to even (llama.cpp's nearest_int; the default FP environment).
int nearest(float v) { return static_cast<int>(std::nearbyint(v)); }

void put_f16(std::uint8_t* at, float v) {
  const std::uint16_t h = engine::f32_to_f16(v);
  std::memcpy(at, &h, 2);
}
float get_f16(const std::uint8_t* at) {
  std::uint16_t h;
  std::memcpy(&h, at, 2);
  return engine::f16_to_f32(h);
}

// Weighted least-squares fit of x ~ scale * L + min with L in [0, nmax] and min <= 0: start from
// the full range, then try step counts nmax + rmin + rdelta * k (k = 0..nstep), each with the
// closed-form (scale, min) of its codes, keeping the smallest weighted squared error. Returns the
// scale; *neg_min = -min (>= 0), codes in L. (llama.cpp's make_qkx2_quants, use_mad = false.)
float fit_scale_min(int n, int nmax, const float* x, const float* w, std::uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep) {
  float lo = x[0], hi = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::fill(L, L + n, 0);
    *neg_min = -lo;
    return 0.0f;
  }
  float iscale = nmax / (hi - lo);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<std::uint8_t>(std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax));
    const float diff = scale * L[i] + lo - x[i];
    best += w[i] * diff * diff;
  }
  std::uint8_t aux[256];
  for (int k = 0; k <= nstep; ++k) {
    iscale = (rmin + rdelta * k + nmax) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax);
      aux[i] = static_cast<std::uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * aux[i] + this_min - x[i];
      err += w[i] * diff * diff;
    }
    if (err < best) {
      std::copy(aux, aux + n, L);
      best = err;
      scale = this_scale;
      lo = this_min;
    }
  }
  *neg_min = -lo;
  return scale;
}

}  // namespace

void quantize_row_q8_0(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / engine::kQ8_0Block; ++b, x += 32, out += engine::kQ8_0Bytes) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int i = 0; i < 32; ++i) out[2 + i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::round(x[i] * id)));
  }
}

void quantize_row_q4_0(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / engine::kQ4_0Block; ++b, x += 32, out += engine::kQ4_0Bytes) {
    float amax = 0, m = 0;
    for (int i = 0; i < 32; ++i)
      if (std::fabs(x[i]) > amax) {
        amax = std::fabs(x[i]);
        m = x[i];
      }
    // The extreme weight maps to code 0 (-8 * d); the other side reaches +7 * d at most.
    const float d = m / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(out, d);
    auto code = [&](float v) { return static_cast<std::uint8_t>(std::min(15, static_cast<int>(static_cast<std::int8_t>(v * id + 8.5f)))); };
    for (int i = 0; i < 16; ++i) out[2 + i] = static_cast<std::uint8_t>(code(x[i]) | (code(x[i + 16]) << 4));
  }
}

void quantize_row_q4_k(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / engine::kQ4KBlock; ++b, x += 256, out += engine::kQ4KBytes) {
    std::uint8_t L[256];
    float scales[8], mins[8], weights[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
      scales[j] = fit_scale_min(32, 15, xs, weights, L + 32 * j, &mins[j], -1.0f, 0.1f, 20);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    std::uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
      ls[j] = static_cast<std::uint8_t>(std::min(63, nearest(inv_scale * scales[j])));
      lm[j] = static_cast<std::uint8_t>(std::min(63, nearest(inv_min * mins[j])));
    }
    put_f16(out, max_scale / 63.0f);
    put_f16(out + 2, max_min / 63.0f);
    engine::q4k_pack_scales(ls, lm, out + 4);
    // Codes against the stored (6-bit, f16) scales and mins.
    const float d = get_f16(out), dmin = get_f16(out + 2);
    for (int j = 0; j < 8; ++j) {
      std::uint8_t sc, m;
      engine::q4k_scale_min(j, out + 4, sc, m);
      const float dj = d * sc;
      if (dj == 0) continue;  // keeps the fit's codes (they multiply a zero scale)
      const float mj = dmin * m;
      for (int l = 0; l < 32; ++l) L[32 * j + l] = static_cast<std::uint8_t>(std::clamp(nearest((x[32 * j + l] + mj) / dj), 0, 15));
    }
    std::uint8_t* qs = out + 16;
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) qs[32 * k + l] = static_cast<std::uint8_t>(L[64 * k + l] | (L[64 * k + 32 + l] << 4));
  }
}

DType gguf_storage_dtype(DType want, int cols) {
  if (want == DType::kGgufQ4K && cols % engine::kQ4KBlock != 0) want = DType::kGgufQ4_0;
  if (cols % 32 != 0) return DType::kF16;
  return want;
}

GgufQuantized quantize_gguf_matrix(DType want, const float* w, int rows, int cols) {
  GgufQuantized q;
  q.dtype = gguf_storage_dtype(want, cols);
  if (q.dtype == DType::kF16) {
    q.data.resize(static_cast<std::size_t>(rows) * cols * 2);
    auto* h = reinterpret_cast<std::uint16_t*>(q.data.data());
    for (std::size_t i = 0; i < static_cast<std::size_t>(rows) * cols; ++i) h[i] = engine::f32_to_f16(w[i]);
    return q;
  }
  const std::size_t rb = engine::gguf_row_bytes(q.dtype, cols);
  q.data.resize(rb * static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    const float* x = w + static_cast<std::size_t>(r) * cols;
    auto* out = reinterpret_cast<std::uint8_t*>(q.data.data()) + rb * static_cast<std::size_t>(r);
    if (q.dtype == DType::kGgufQ8_0) quantize_row_q8_0(x, cols, out);
    else if (q.dtype == DType::kGgufQ4_0) quantize_row_q4_0(x, cols, out);
    else quantize_row_q4_k(x, cols, out);
  }
  return q;
}

}  // namespace qmeter::quant
