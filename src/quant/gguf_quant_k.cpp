// llama.cpp's K-quants (256-weight super-blocks) and the non-linear IQ4 types, importance-free:
// what llama-quantize runs without an imatrix (quantize_row_*_ref for q2_K..q6_K; IQ4 has no
// separate reference and runs its search with weights x^2). Layouts in engine/gguf_blocks.h.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gguf_quant_common.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/quant/gguf_quant.h"

namespace qmeter::quant {

using detail::fit_scale_min;
using detail::fit_symmetric;
using detail::get_f16;
using detail::kGroupMaxEps;
using detail::nearest;
using detail::put_f16;
using detail::signed_absmax;

namespace {

// The 2-bit planes of q2_K / q3_K: in each 128-weight half, byte l holds weights l, l + 32,
// l + 64, l + 96 at bits 0, 2, 4, 6.
void pack_2bit_planes(const std::uint8_t* L, std::uint8_t* qs) {
  for (int h = 0; h < 256; h += 128)
    for (int l = 0; l < 32; ++l)
      qs[h / 4 + l] = static_cast<std::uint8_t>(L[h + l] | L[h + l + 32] << 2 | L[h + l + 64] << 4 | L[h + l + 96] << 6);
}

// Symmetric 3-bit fit of 16 weights (ggml's make_q3_quants with rmse): codes in [-4, 3] for the
// scale of the largest magnitude, then up to 5 passes moving single codes to the value that
// raises the weighted (x^2) correlation sumlx^2 / suml2. Codes returned offset by +4.
float fit_q3(const float* x, std::int8_t* L) {
  constexpr int n = 16, nmax = 4;
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<std::int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * L[i] * L[i];
      const int new_l = std::clamp(nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (new_l == L[i]) continue;
      slx += w * x[i] * new_l;
      sl2 += w * new_l * new_l;
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = static_cast<std::int8_t>(new_l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// q4_K / q5_K: per 32-weight sub-block a (scale, min) fit with weights sqrt(mean x^2) + |x|, the
// 8 scales and mins quantized to 6 bits against the largest (d = max / 63), codes recomputed
// from the stored values. Writes d, dmin, scales[12] at out; codes (0..nmax) in L.
void quantize_k_scales_mins(const float* x, int nmax, float rmin, int nstep, std::uint8_t* out, std::uint8_t* L) {
  float scales[8], mins[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  std::uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {  // ggml stores nearest() in a u8 before the min(63, .)
    ls[j] = std::min<std::uint8_t>(63, static_cast<std::uint8_t>(nearest(inv_scale * scales[j])));
    lm[j] = std::min<std::uint8_t>(63, static_cast<std::uint8_t>(nearest(inv_min * mins[j])));
  }
  put_f16(out, max_scale / 63.0f);
  put_f16(out + 2, max_min / 63.0f);
  engine::q4k_pack_scales(ls, lm, out + 4);
  const float d = get_f16(out), dmin = get_f16(out + 2);
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, m;
    engine::q4k_scale_min(j, out + 4, sc, m);
    const float dj = d * sc;
    if (dj == 0) continue;  // keeps the fit's codes (they multiply a zero scale)
    const float mj = dmin * m;
    for (int l = 0; l < 32; ++l) L[32 * j + l] = static_cast<std::uint8_t>(std::clamp(nearest((x[32 * j + l] + mj) / dj), 0, nmax));
  }
}

// The shared search of iq4_nl (one 32-weight block, super == 32) and iq4_xs (8 sub-blocks with
// 6-bit scales, super == 256): per 32 weights, the scale of the largest magnitude against the
// table's end, then 15 scales (k + values[0]) / max, k = -7..7, keeping the best weighted (x^2)
// least-squares one; each weight takes the table entry nearest to x / scale.
int best_level(float v) {  // the index of the nearest table value (ties to the larger), by midpoints
  const float v2 = v + v;
  int idx = 0;
  for (int step = 8; step > 0; step >>= 1) {
    const int j = idx + step;
    if (v2 >= static_cast<float>(engine::kIq4nlValues[j - 1] + engine::kIq4nlValues[j])) idx = j;
  }
  return idx;
}

float fit_iq4_block(const float* x, std::uint8_t* L) {
  constexpr int ntry = 7;
  const std::int8_t* values = engine::kIq4nlValues;
  const float max = signed_absmax(x, 32);
  if (std::fabs(max) < kGroupMaxEps) return 0.0f;
  float d = -max / values[0];
  float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < 32; ++j) {
    const int l = best_level(id * x[j]);
    L[j] = static_cast<std::uint8_t>(l);
    const float q = values[l], w = x[j] * x[j];
    sumqx += w * q * x[j];
    sumq2 += w * q * q;
  }
  d = sumqx / sumq2;
  float best = d * sumqx;
  for (int k = -ntry; k <= ntry; ++k) {
    id = (k + values[0]) / max;
    sumqx = sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const float q = values[best_level(id * x[j])], w = x[j] * x[j];
      sumqx += w * q * x[j];
      sumq2 += w * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

void pack_iq4_codes(const std::uint8_t* L, int n, std::uint8_t* qs) {
  for (int b = 0; b < n / 32; ++b)
    for (int j = 0; j < 16; ++j) qs[16 * b + j] = static_cast<std::uint8_t>(L[32 * b + j] | L[32 * b + 16 + j] << 4);
}

}  // namespace

void quantize_row_q2_k(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / 256; ++b, x += 256, out += engine::kQ2KBytes) {
    std::uint8_t L[256], sc[16];
    float scales[16], mins[16], weights[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = fit_scale_min(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    // 4-bit scales and mins against the largest of each (d = max / 15), one byte per sub-block.
    std::fill(sc, sc + 16, 0);
    if (max_scale > 0) {
      const float iscale = 15.0f / max_scale;
      for (int j = 0; j < 16; ++j) sc[j] = static_cast<std::uint8_t>(nearest(iscale * scales[j]));
    }
    if (max_min > 0) {
      const float iscale = 15.0f / max_min;
      for (int j = 0; j < 16; ++j) sc[j] = static_cast<std::uint8_t>(sc[j] | nearest(iscale * mins[j]) << 4);
    }
    std::memcpy(out, sc, 16);
    put_f16(out + 80, max_scale > 0 ? max_scale / 15.0f : 0.0f);
    put_f16(out + 82, max_min > 0 ? max_min / 15.0f : 0.0f);
    const float d = get_f16(out + 80), dmin = get_f16(out + 82);
    for (int j = 0; j < 16; ++j) {
      const float dj = d * (sc[j] & 15);
      if (dj == 0) continue;
      const float mj = dmin * (sc[j] >> 4);
      for (int l = 0; l < 16; ++l) L[16 * j + l] = static_cast<std::uint8_t>(std::clamp(nearest((x[16 * j + l] + mj) / dj), 0, 3));
    }
    pack_2bit_planes(L, out + 16);
  }
}

void quantize_row_q3_k(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / 256; ++b, x += 256, out += engine::kQ3KBytes) {
    std::int8_t L[256];
    float scales[16];
    for (int j = 0; j < 16; ++j) scales[j] = fit_q3(x + 16 * j, L + 16 * j);
    const float max_scale = signed_absmax(scales, 16);
    // 6-bit signed scales (stored + 32) against the scale of largest magnitude: d = max / -32.
    std::uint8_t* hmask = out;
    std::uint8_t* qs = out + 32;
    std::uint8_t* packed = out + 96;
    std::uint8_t sc[16] = {};
    if (max_scale != 0) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < 16; ++j)
        sc[j] = static_cast<std::uint8_t>(std::clamp<int>(static_cast<std::int8_t>(nearest(iscale * scales[j])), -32, 31) + 32);
      engine::q3k_pack_scales(sc, packed);
      put_f16(out + 108, 1 / iscale);
    } else {
      std::memset(packed, 0, 12);
      put_f16(out + 108, 0.0f);
    }
    const float d_all = get_f16(out + 108);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * static_cast<float>(engine::q3k_scale(j, packed) - 32);
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l) L[16 * j + l] = static_cast<std::int8_t>(std::clamp(nearest(x[16 * j + l] / d), -4, 3) + 4);
    }
    // Code bit 2 goes to hmask: weight j at bit j / 32 of byte j % 32.
    std::memset(hmask, 0, 32);
    std::uint8_t low[256];
    for (int j = 0; j < 256; ++j) {
      std::uint8_t v = static_cast<std::uint8_t>(L[j]);
      if (v > 3) {
        hmask[j % 32] = static_cast<std::uint8_t>(hmask[j % 32] | 1 << (j / 32));
        v = static_cast<std::uint8_t>(v - 4);
      }
      low[j] = v;
    }
    pack_2bit_planes(low, qs);
  }
}

void quantize_row_q4_k(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / engine::kQ4KBlock; ++b, x += 256, out += engine::kQ4KBytes) {
    std::uint8_t L[256];
    quantize_k_scales_mins(x, 15, -1.0f, 20, out, L);
    std::uint8_t* qs = out + 16;
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) qs[32 * k + l] = static_cast<std::uint8_t>(L[64 * k + l] | (L[64 * k + 32 + l] << 4));
  }
}

void quantize_row_q5_k(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / 256; ++b, x += 256, out += engine::kQ5KBytes) {
    std::uint8_t L[256];
    quantize_k_scales_mins(x, 31, -0.5f, 15, out, L);
    std::uint8_t* qh = out + 16;
    std::uint8_t* qs = out + 48;
    std::memset(qh, 0, 32);
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const int a = L[64 * k + l], c = L[64 * k + 32 + l];  // sub-blocks 2k and 2k + 1
        qh[l] = static_cast<std::uint8_t>(qh[l] | (a >> 4) << (2 * k) | (c >> 4) << (2 * k + 1));
        qs[32 * k + l] = static_cast<std::uint8_t>((a & 15) | (c & 15) << 4);
      }
  }
}

void quantize_row_q6_k(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / 256; ++b, x += 256, out += engine::kQ6KBytes) {
    std::int8_t L[256];
    float scales[16];
    for (int j = 0; j < 16; ++j) scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j, nullptr);
    const float max_scale = signed_absmax(scales, 16);
    std::uint8_t* ql = out;
    std::uint8_t* qh = out + 128;
    auto* sc = reinterpret_cast<std::int8_t*>(out + 192);
    if (std::fabs(max_scale) < kGroupMaxEps) {  // an all-zero block: every byte 0
      std::memset(out, 0, engine::kQ6KBytes);
      continue;
    }
    // 8-bit signed scales against the largest-magnitude one (d = max / -128).
    const float iscale = -128.0f / max_scale;
    put_f16(out + 208, 1 / iscale);
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<std::int8_t>(std::min(127, nearest(iscale * scales[j])));
    const float d_all = get_f16(out + 208);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * sc[j];
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l) L[16 * j + l] = static_cast<std::int8_t>(std::clamp(nearest(x[16 * j + l] / d), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const std::int8_t* q = L + 128 * h + l;
        ql[64 * h + l] = static_cast<std::uint8_t>((q[0] & 15) | (q[64] & 15) << 4);
        ql[64 * h + 32 + l] = static_cast<std::uint8_t>((q[32] & 15) | (q[96] & 15) << 4);
        qh[32 * h + l] = static_cast<std::uint8_t>((q[0] >> 4) | (q[32] >> 4) << 2 | (q[64] >> 4) << 4 | (q[96] >> 4) << 6);
      }
  }
}

void quantize_row_iq4_nl(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / 32; ++b, x += 32, out += engine::kIQ4NLBytes) {
    std::uint8_t L[32] = {};
    const float d = fit_iq4_block(x, L);
    put_f16(out, d);
    // Codes against the unrounded scale (an all-zero block: every code the level nearest 0).
    const float id = d != 0 ? 1 / d : 0.0f;
    for (int j = 0; j < 32; ++j) L[j] = static_cast<std::uint8_t>(best_level(id * x[j]));
    pack_iq4_codes(L, 32, out + 2);
  }
}

void quantize_row_iq4_xs(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / 256; ++b, x += 256, out += engine::kIQ4XSBytes) {
    std::uint8_t L[256] = {};
    float scales[8];
    for (int j = 0; j < 8; ++j) scales[j] = fit_iq4_block(x + 32 * j, L + 32 * j);
    const float max_scale = signed_absmax(scales, 8);
    // 6-bit signed sub-block scales (stored + 32) against d = max / -32 (-0.0 when all are zero,
    // as ggml stores it); codes against each sub-block's d * l.
    const float d = -max_scale / 32;
    put_f16(out, d);
    const float id = d != 0 ? 1 / d : 0.0f;
    std::uint16_t scales_h = 0;
    std::uint8_t* scales_l = out + 4;
    std::memset(scales_l, 0, 4);
    for (int j = 0; j < 8; ++j) {
      const int l = std::clamp(nearest(id * scales[j]), -32, 31);
      const float dl = d * l;
      const float idl = dl != 0 ? 1 / dl : 0.0f;
      for (int k = 0; k < 32; ++k) L[32 * j + k] = static_cast<std::uint8_t>(best_level(idl * x[32 * j + k]));
      const int stored = l + 32;
      scales_l[j / 2] = static_cast<std::uint8_t>(scales_l[j / 2] | (stored & 15) << (4 * (j % 2)));
      scales_h = static_cast<std::uint16_t>(scales_h | (stored >> 4) << (2 * j));
    }
    std::memcpy(out + 2, &scales_h, 2);
    pack_iq4_codes(L, 256, out + 8);
  }
}

}  // namespace qmeter::quant
