// llama.cpp block quantizers, 32-weight blocks, and the per-matrix dispatch (see gguf_quant.h).
// Written from the published block definitions and the reference procedures' description; the
// arithmetic order follows them where it decides codes. The K-quants and IQ4 are in gguf_quant_k.cpp.
#include "qmeter/quant/gguf_quant.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "gguf_quant_common.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::quant {

using detail::get_f16;
using detail::nearest;
using detail::put_f16;
using detail::signed_absmax;
using engine::DType;

namespace detail {

float fit_scale_min(int n, int nmax, const float* x, const float* w, std::uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep, bool use_mad) {
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
  auto error = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
  float iscale = nmax / (hi - lo);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<std::uint8_t>(std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax));
    best += w[i] * error(scale * L[i] + lo - x[i]);
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
    for (int i = 0; i < n; ++i) err += w[i] * error(this_scale * aux[i] + this_min - x[i]);
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

float fit_symmetric(int n, int nmax, const float* x, std::int8_t* L, const float* w) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  auto weight = [&](int i) { return w ? w[i] : x[i] * x[i]; };
  auto code = [&](float iscale, int i) { return std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1); };
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale, i);
    L[i] = static_cast<std::int8_t>(l + nmax);
    sumlx += weight(i) * x[i] * l;
    suml2 += weight(i) * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    iscale = -(nmax + 0.1f * k) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale, i);
      sumlx += weight(i) * x[i] * l;
      suml2 += weight(i) * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(nmax + code(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

}  // namespace detail

namespace {

// Nibble packing shared by the 32-weight blocks: weight i in the low nibble of byte i, weight
// i + 16 in the high nibble.
void pack_nibbles(const std::uint8_t* q, std::uint8_t* qs) {
  for (int i = 0; i < 16; ++i) qs[i] = static_cast<std::uint8_t>((q[i] & 15) | (q[i + 16] & 15) << 4);
}
// The 5th bits of 32 codes as one little-endian u32 (bit i: weight i).
void pack_fifth_bits(const std::uint8_t* q, std::uint8_t* qh) {
  std::uint32_t h = 0;
  for (int i = 0; i < 32; ++i) h |= static_cast<std::uint32_t>((q[i] >> 4) & 1) << i;
  std::memcpy(qh, &h, 4);
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
    // The extreme weight maps to code 0 (-8 * d); the other side reaches +7 * d at most.
    const float d = signed_absmax(x, 32) / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(out, d);
    std::uint8_t q[32];
    for (int i = 0; i < 32; ++i) q[i] = static_cast<std::uint8_t>(std::min(15, static_cast<int>(static_cast<std::int8_t>(x[i] * id + 8.5f))));
    pack_nibbles(q, out + 2);
  }
}

void quantize_row_q4_1(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / engine::kQ4_1Block; ++b, x += 32, out += engine::kQ4_1Bytes) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int i = 0; i < 32; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    const float d = (hi - lo) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(out, d);
    put_f16(out + 2, lo);
    std::uint8_t q[32];
    for (int i = 0; i < 32; ++i) q[i] = static_cast<std::uint8_t>(std::min(15, static_cast<int>(static_cast<std::int8_t>((x[i] - lo) * id + 0.5f))));
    pack_nibbles(q, out + 4);
  }
}

void quantize_row_q5_0(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / engine::kQ5_0Block; ++b, x += 32, out += engine::kQ5_0Bytes) {
    const float d = signed_absmax(x, 32) / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(out, d);
    std::uint8_t q[32];
    for (int i = 0; i < 32; ++i) q[i] = static_cast<std::uint8_t>(std::min(31, static_cast<int>(static_cast<std::int8_t>(x[i] * id + 16.5f))));
    pack_fifth_bits(q, out + 2);
    pack_nibbles(q, out + 6);
  }
}

void quantize_row_q5_1(const float* x, int n, std::uint8_t* out) {
  for (int b = 0; b < n / engine::kQ5_1Block; ++b, x += 32, out += engine::kQ5_1Bytes) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int i = 0; i < 32; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    const float d = (hi - lo) / 31;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(out, d);
    put_f16(out + 2, lo);
    std::uint8_t q[32];  // (x - min) / d + 0.5 truncated: at most 31.5 -> 31, never negative
    for (int i = 0; i < 32; ++i) q[i] = static_cast<std::uint8_t>((x[i] - lo) * id + 0.5f);
    pack_fifth_bits(q, out + 4);
    pack_nibbles(q, out + 8);
  }
}

void quantize_row_gguf(DType d, const float* x, int n, std::uint8_t* out) {
  if (n % engine::gguf_block_elems(d) != 0)
    throw Error(fmt::format("{}: a row of {} weights is not whole {}-weight blocks", engine::dtype_name(d), n,
                            engine::gguf_block_elems(d)));
  switch (d) {
    case DType::kGgufQ8_0: return quantize_row_q8_0(x, n, out);
    case DType::kGgufQ4_0: return quantize_row_q4_0(x, n, out);
    case DType::kGgufQ4_1: return quantize_row_q4_1(x, n, out);
    case DType::kGgufQ5_0: return quantize_row_q5_0(x, n, out);
    case DType::kGgufQ5_1: return quantize_row_q5_1(x, n, out);
    case DType::kGgufIQ4NL: return quantize_row_iq4_nl(x, n, out);
    case DType::kGgufQ2K: return quantize_row_q2_k(x, n, out);
    case DType::kGgufQ3K: return quantize_row_q3_k(x, n, out);
    case DType::kGgufQ4K: return quantize_row_q4_k(x, n, out);
    case DType::kGgufQ5K: return quantize_row_q5_k(x, n, out);
    case DType::kGgufQ6K: return quantize_row_q6_k(x, n, out);
    case DType::kGgufIQ4XS: return quantize_row_iq4_xs(x, n, out);
    default: throw Error(fmt::format("{} is not a GGUF block type", engine::dtype_name(d)));
  }
}

DType gguf_storage_dtype(DType want, int cols) {
  if (want == DType::kF16 || want == DType::kF32 || want == DType::kBF16) return want;
  if (cols % engine::gguf_block_elems(want) != 0) {  // llama.cpp's per-tensor fallback
    // As llama.cpp's llama_tensor_get_type at commit 0ad4a86 (checked against it byte for byte by
    // tests/llamacpp): q2_K and q3_K fall back to q4_0 (older llama.cpp used iq4_nl, which some
    // of its backends lack), iq4_xs still to iq4_nl.
    switch (want) {
      case DType::kGgufQ2K:
      case DType::kGgufQ3K: want = DType::kGgufQ4_0; break;
      case DType::kGgufIQ4XS: want = DType::kGgufIQ4NL; break;
      case DType::kGgufQ4K: want = DType::kGgufQ5_0; break;
      case DType::kGgufQ5K: want = DType::kGgufQ5_1; break;
      case DType::kGgufQ6K: want = DType::kGgufQ8_0; break;
      default: break;  // the 32-weight blocks: llama.cpp refuses the tensor, qmeter writes f16
    }
  }
  if (cols % engine::gguf_block_elems(want) != 0) return DType::kF16;
  return want;
}

GgufQuantized quantize_gguf_matrix(DType want, const float* w, int rows, int cols) {
  GgufQuantized q;
  q.dtype = gguf_storage_dtype(want, cols);
  if (!engine::is_gguf_block(q.dtype)) {
    q.data.resize(static_cast<std::size_t>(rows) * cols * 2);
    auto* h = reinterpret_cast<std::uint16_t*>(q.data.data());
    for (std::size_t i = 0; i < static_cast<std::size_t>(rows) * cols; ++i) h[i] = engine::f32_to_f16(w[i]);
    q.dtype = DType::kF16;
    return q;
  }
  const std::size_t rb = engine::gguf_row_bytes(q.dtype, cols);
  q.data.resize(rb * static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r)
    quantize_row_gguf(q.dtype, w + static_cast<std::size_t>(r) * cols, cols,
                      reinterpret_cast<std::uint8_t*>(q.data.data()) + rb * static_cast<std::size_t>(r));
  return q;
}

}  // namespace qmeter::quant
