#pragma once
// Dense linear-algebra kernels of the embedded engine. Every kernel has a scalar reference and
// SIMD variants (AVX2, AVX-512, AVX-512 BF16) chosen once at run time from CPUID; tests check
// every variant against the reference. Weights are row-major [rows = out][cols = in].
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qmeter::engine {

class ThreadPool;

// kQ8Row .. kQ8RowA8: packed quantized layouts (quant module), see packed_formats.h; their
// dtype_size() is 0 (not a per-element size): use matrix_bytes().
// kGgufQ8_0 .. kGgufIQ4XS: llama.cpp's block layouts without a header (gguf_blocks.h, one traits
// table there).
enum class DType : std::uint8_t { kF32, kBF16, kF16, kQ8Row, kQ4Group, kNf4, kFp8Row, kFp8RowA8, kQ8RowA8,
                                  kGgufQ8_0, kGgufQ4_0, kGgufQ4K, kGgufQ4_1, kGgufQ5_0, kGgufQ5_1, kGgufQ2K,
                                  kGgufQ3K, kGgufQ5K, kGgufQ6K, kGgufIQ4NL, kGgufIQ4XS };
std::string_view dtype_name(DType d);
std::size_t dtype_size(DType d);

// A weight matrix view (not owning; the data may be memory-mapped).
struct Matrix {
  DType dtype = DType::kF32;
  int rows = 0;  // output features
  int cols = 0;  // input features
  const void* data = nullptr;
};

enum class Isa : std::uint8_t { kScalar, kAvx2, kAvx512, kAvx512Bf16, kAmxBf16 };
std::string_view isa_name(Isa isa);
// The ISA named `name` (as isa_name spells it), or nullopt.
std::optional<Isa> isa_from_name(std::string_view name);
// The best ISA this CPU supports (CPUID), capped by $QMETER_ISA (scalar|avx2|avx512|avx512bf16);
// an unknown $QMETER_ISA value throws qmeter::UsageError naming the variable. Read once.
Isa detected_isa();
// Whether this CPU (and OS) can run `isa`'s kernels. kAvx2 needs AVX2+FMA+F16C, kAvx512 needs
// AVX-512 F/BW/VL/DQ, kAvx512Bf16 additionally AVX512_BF16, kAmxBf16 additionally AMX-TILE and
// AMX-BF16 with the kernel's permission to use the tile data (arch_prctl, asked once).
bool isa_supported(Isa isa);

// y[b][r] = sum_c W[r][c] * x[b][c]   for b < batch; x is batch x cols, y is batch x rows (f32).
// batch == 1 is the decode matrix-vector path; batch > 1 the prefill / batched-decode path.
// `pool` may be null (single-threaded). `isa` defaults to detected_isa().
// Work is split over output rows only, never over `cols`, so y is bit-identical for any thread
// count. All paths accumulate in f32 from exact f32 weights and activations, and y[b] does not
// depend on the other rows of x, except: with isa kAvx512Bf16 or kAmxBf16, BF16 weights and
// batch > 1 the
// activations are rounded to bf16 once per call (relative error <= 2^-9 per activation, so
// |dy| <= 2^-9 * sum|w*x| + f32 accumulation error) to use the AVX512_BF16 dot-product
// instruction; the same holds for kQ4Group weights at any batch (kernels_quant_q4_bf16.cpp), and
// the w8a8 formats (kFp8RowA8, kQ8RowA8) quantize each activation row by design (packed_formats.h).
// QMETER_ISA=avx512 selects the exact path on such a CPU.
// matmul_isa throws qmeter::Error when the CPU lacks `isa` or the arguments are invalid.
void matmul(const Matrix& w, const float* x, int batch, float* y, ThreadPool* pool);
void matmul_isa(Isa isa, const Matrix& w, const float* x, int batch, float* y, ThreadPool* pool);

// bf16 <-> f32 conversion (round-to-nearest-even), and f16 -> f32.
std::uint16_t f32_to_bf16(float f);
float bf16_to_f32(std::uint16_t h);
float f16_to_f32(std::uint16_t h);
std::uint16_t f32_to_f16(float f);
// A row of weights (e.g. an embedding row) of any dtype to f32: out[i] = value of data[i].
void convert_to_f32(DType dtype, const void* data, std::size_t n, float* out);

// Vector helpers of the forward pass, one function table per ISA (scalar reference + SIMD;
// vector_ops() is the table of detected_isa()). Fetch the table once, call through it.
struct VectorOps {
  // sum_i a[i] * b[i]  (attention scores q.k)
  float (*dot)(const float* a, const float* b, int n);
  // y[i] += alpha * x[i]  (attention: weighted sum of values)
  void (*axpy)(float alpha, const float* x, float* y, int n);
  // out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]  (out may alias x)
  void (*rmsnorm)(const float* x, const float* weight, int n, float eps, float* out);
  // x = exp(x - max(x)) / sum  in place (attention weights, sampling)
  void (*softmax)(float* x, int n);
  // out[i] = gate[i] / (1 + exp(-gate[i])) * up[i]  (SwiGLU; out may alias gate or up)
  void (*silu_mul)(const float* gate, const float* up, int n, float* out);
};
const VectorOps& vector_ops(Isa isa);  // throws qmeter::Error when the CPU lacks `isa`
const VectorOps& vector_ops();

}  // namespace qmeter::engine
