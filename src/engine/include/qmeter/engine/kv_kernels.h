#pragma once
// Kernels of the quantized KV cache (layouts in kv_cache.h): quantizing a K/V row when it is
// written, and attention that reads int8 / E4M3 codes directly (scalar reference + AVX2 +
// AVX-512 variants of the two inner loops, chosen at run time like kernels.h; tests check every
// variant against the scalar one).
#include <cstdint>

#include "qmeter/engine/kernels.h"
#include "qmeter/engine/kv_cache.h"

namespace qmeter::engine {

// Inner loops over the codes of one head (n values). The f32 sum of q[i] * value(code[i]), where
// value is the int8 number or the E4M3 value; the caller applies the row's head scale.
struct KvCodeOps {
  float (*dot)(const float* q, const std::uint8_t* codes, int n);
  // y[i] += alpha * value(code[i])
  void (*axpy)(float alpha, const std::uint8_t* codes, float* y, int n);
};
// The table of a quantized dtype for `isa` (kAvx512Bf16 uses the AVX-512 one). Throws
// qmeter::Error for kF32 (no codes) or when the CPU lacks `isa`.
const KvCodeOps& kv_code_ops(KvDType dtype, Isa isa);

// Quantizes one row of `layout` (kv_dim floats) into `row` (layout.row_bytes() bytes); for f32 a
// copy. Per head: scale = amax / 127 (int8) or amax / 448 (fp8); an all-zero head gets scale 0.
void kv_quantize_row(const KvLayout& layout, const float* x, std::byte* row);
// The inverse (dequantized values, kv_dim floats).
void kv_dequantize_row(const KvLayout& layout, const std::byte* row, float* out);

// One query head's attention over positions [0, n) of `layer`, reading kv head `kv_head`:
// out[0, head_dim) = sum_j softmax_j(scale * q . k_j) v_j. `scores` holds at least n floats
// (scratch). Uses the kernels of `isa` (detected_isa() for the forward pass).
void kv_attend(const KvCache& kv, int layer, int kv_head, const float* q, int n, float scale, float* scores,
               float* out, Isa isa);

}  // namespace qmeter::engine
