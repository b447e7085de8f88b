// The quantized KV cache's row format and attention (kv_kernels.h): per-head quantization when a
// token's K/V are written, the scalar reference of the code loops, and the per-head attention
// the forward pass calls for every dtype.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "kernels_kv.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/packed_formats.h"

namespace qmeter::engine {

namespace kernels::scalar {
namespace {

// E4M3 values of all 256 codes (e4m3_to_f32 goes through ldexp: far too slow per element).
const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = e4m3_to_f32(static_cast<std::uint8_t>(c));
    return t;
  }();
  return table;
}

float code_value(KvDType d, std::uint8_t c) {
  return d == KvDType::kInt8 ? static_cast<float>(static_cast<std::int8_t>(c)) : e4m3_table()[c];
}

// The value of code c: the int8 number, or table[c] (E4M3).
template <KvDType D>
float value(const float* table, std::uint8_t c) {
  if constexpr (D == KvDType::kInt8) return static_cast<float>(static_cast<std::int8_t>(c));
  return table[c];
}

template <KvDType D>
float dot(const float* q, const std::uint8_t* codes, int n) {
  const float* table = e4m3_table().data();
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += q[i] * value<D>(table, codes[i]);
  return s;
}

template <KvDType D>
void axpy(float alpha, const std::uint8_t* codes, float* y, int n) {
  const float* table = e4m3_table().data();
  for (int i = 0; i < n; ++i) y[i] += alpha * value<D>(table, codes[i]);
}

}  // namespace

const KvCodeOps kKvInt8Ops = {dot<KvDType::kInt8>, axpy<KvDType::kInt8>};
const KvCodeOps kKvFp8Ops = {dot<KvDType::kFp8>, axpy<KvDType::kFp8>};
}  // namespace kernels::scalar

const KvCodeOps& kv_code_ops(KvDType dtype, Isa isa) {
  if (dtype == KvDType::kF32) throw Error("kv_code_ops: an f32 KV cache has no codes");
  if (!isa_supported(isa)) throw Error(fmt::format("kv_code_ops: this CPU cannot run the {} kernels", isa_name(isa)));
  const bool i8 = dtype == KvDType::kInt8;
  // ISAs are ordered by capability: every level from AVX-512 up (BF16, AMX) has AVX-512's loops.
  if (isa >= Isa::kAvx512) return i8 ? kernels::avx512::kKvInt8Ops : kernels::avx512::kKvFp8Ops;
  if (isa == Isa::kAvx2) return i8 ? kernels::avx2::kKvInt8Ops : kernels::avx2::kKvFp8Ops;
  return i8 ? kernels::scalar::kKvInt8Ops : kernels::scalar::kKvFp8Ops;
}

void kv_quantize_row(const KvLayout& l, const float* x, std::byte* row) {
  if (l.dtype == KvDType::kF32) {
    std::memcpy(row, x, static_cast<std::size_t>(l.kv_dim) * sizeof(float));
    return;
  }
  const int heads = l.heads(), hd = l.head_width();
  auto* codes = reinterpret_cast<std::uint8_t*>(row + l.scale_bytes());
  const float qmax = l.dtype == KvDType::kInt8 ? 127.0f : kE4m3Max;
  for (int h = 0; h < heads; ++h) {
    const float* xh = x + static_cast<std::size_t>(h) * hd;
    std::uint8_t* ch = codes + static_cast<std::size_t>(h) * hd;
    float amax = 0.0f;
    for (int i = 0; i < hd; ++i) amax = std::max(amax, std::fabs(xh[i]));
    const float scale = amax / qmax;
    std::memcpy(row + h * sizeof(float), &scale, sizeof scale);  // rows are only 4-byte aligned
    if (scale == 0.0f) {  // all zero (or amax underflowed): codes 0 decode to 0 for both dtypes
      std::memset(ch, 0, static_cast<std::size_t>(hd));
      continue;
    }
    for (int i = 0; i < hd; ++i) {
      const float v = xh[i] / scale;
      if (l.dtype == KvDType::kInt8) {
        ch[i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::clamp(std::nearbyint(v), -127.0f, 127.0f)));
      } else {
        ch[i] = f32_to_e4m3(v);  // saturates at +-448 (v can exceed it by an ulp)
      }
    }
  }
}

void kv_dequantize_row(const KvLayout& l, const std::byte* row, float* out) {
  if (l.dtype == KvDType::kF32) {
    std::memcpy(out, row, static_cast<std::size_t>(l.kv_dim) * sizeof(float));
    return;
  }
  const int heads = l.heads(), hd = l.head_width();
  const auto* codes = reinterpret_cast<const std::uint8_t*>(row + l.scale_bytes());
  for (int h = 0; h < heads; ++h) {
    float scale;
    std::memcpy(&scale, row + h * sizeof(float), sizeof scale);
    for (int i = 0; i < hd; ++i) {
      const std::size_t k = static_cast<std::size_t>(h) * hd + i;
      out[k] = scale * kernels::scalar::code_value(l.dtype, codes[k]);
    }
  }
}

void kv_attend(const KvCache& kv, int layer, int kv_head, const float* q, int n, float scale, float* scores,
               float* out, Isa isa) {
  const KvLayout& l = kv.layout();
  const int hd = l.head_width();
  const VectorOps& ops = vector_ops(isa);
  std::fill(out, out + hd, 0.0f);
  if (l.dtype == KvDType::kF32) {
    const std::size_t off = static_cast<std::size_t>(kv_head) * hd;
    for (int j = 0; j < n; ++j)
      scores[j] = ops.dot(q, reinterpret_cast<const float*>(kv.key_row(layer, j)) + off, hd) * scale;
    ops.softmax(scores, n);
    for (int j = 0; j < n; ++j) ops.axpy(scores[j], reinterpret_cast<const float*>(kv.value_row(layer, j)) + off, out, hd);
    return;
  }
  // Quantized: the head's scale multiplies each score and each softmax weight; codes are
  // widened in registers by the dot / axpy loops.
  const KvCodeOps& cops = kv_code_ops(l.dtype, isa);
  const std::size_t scale_off = static_cast<std::size_t>(kv_head) * sizeof(float);
  const std::size_t code_off = l.scale_bytes() + static_cast<std::size_t>(kv_head) * hd;
  auto row_scale = [&](const std::byte* row) {
    float s;
    std::memcpy(&s, row + scale_off, sizeof s);
    return s;
  };
  for (int j = 0; j < n; ++j) {
    const std::byte* row = kv.key_row(layer, j);
    scores[j] = cops.dot(q, reinterpret_cast<const std::uint8_t*>(row + code_off), hd) * (row_scale(row) * scale);
  }
  ops.softmax(scores, n);
  for (int j = 0; j < n; ++j) {
    const std::byte* row = kv.value_row(layer, j);
    cops.axpy(scores[j] * row_scale(row), reinterpret_cast<const std::uint8_t*>(row + code_off), out, hd);
  }
}

}  // namespace qmeter::engine
