#pragma once
// Dense linear-algebra kernels of the embedded engine. Every kernel has a scalar reference and
// SIMD variants (AVX2, AVX-512, AVX-512 BF16) chosen once at run time from CPUID; tests check
// every variant against the reference. Weights are row-major [rows = out][cols = in].
#include <cstdint>
#include <string_view>

namespace qmeter::engine {

class ThreadPool;

enum class DType : std::uint8_t { kF32, kBF16, kF16 };
std::string_view dtype_name(DType d);
std::size_t dtype_size(DType d);

// A weight matrix view (not owning; the data may be memory-mapped).
struct Matrix {
  DType dtype = DType::kF32;
  int rows = 0;  // output features
  int cols = 0;  // input features
  const void* data = nullptr;
};

enum class Isa : std::uint8_t { kScalar, kAvx2, kAvx512, kAvx512Bf16 };
std::string_view isa_name(Isa isa);
// The best ISA this CPU supports (CPUID), capped by $QMETER_ISA (scalar|avx2|avx512|avx512bf16).
Isa detected_isa();

// y[b][r] = sum_c W[r][c] * x[b][c]   for b < batch; x is batch x cols, y is batch x rows (f32).
// batch == 1 is the decode matrix-vector path; batch > 1 the prefill / batched-decode path.
// `pool` may be null (single-threaded). `isa` defaults to detected_isa().
void matmul(const Matrix& w, const float* x, int batch, float* y, ThreadPool* pool);
void matmul_isa(Isa isa, const Matrix& w, const float* x, int batch, float* y, ThreadPool* pool);

// bf16 <-> f32 conversion (round-to-nearest-even), and f16 -> f32.
std::uint16_t f32_to_bf16(float f);
float bf16_to_f32(std::uint16_t h);
float f16_to_f32(std::uint16_t h);
std::uint16_t f32_to_f16(float f);

}  // namespace qmeter::engine
