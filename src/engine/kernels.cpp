// Public entry points of the dense kernels: dtype / ISA names, run-time ISA choice, the kernel
// table and its lookup, threading of matmul over output rows, scalar conversions.
#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "kernels_dispatch.h"
#include "kernels_quant.h"  // packed formats (quant issue)
#include "kernels_gguf_int8.h"  // integer-activation path
#include "kernels_quant_gguf.h"  // GGUF block formats
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/packed_formats.h"  // kQ4Group's column permutation
#include "qmeter/engine/thread_pool.h"

namespace qmeter::engine {
namespace kernels {
namespace {

// One row per (ISA, weight format, smallest batch served). See kernels_dispatch.h.
const MatmulKernel kMatmulKernels[] = {
    {Isa::kScalar, DType::kF32, 1, scalar::matmul_f32},
    {Isa::kScalar, DType::kBF16, 1, scalar::matmul_bf16},
    {Isa::kScalar, DType::kF16, 1, scalar::matmul_f16},
    {Isa::kAvx2, DType::kF32, 1, avx2::matmul_f32},
    {Isa::kAvx2, DType::kBF16, 1, avx2::matmul_bf16},
    {Isa::kAvx2, DType::kF16, 1, avx2::matmul_f16},
    {Isa::kAvx512, DType::kF32, 1, avx512::matmul_f32},
    {Isa::kAvx512, DType::kBF16, 1, avx512::matmul_bf16},
    {Isa::kAvx512, DType::kF16, 1, avx512::matmul_f16},
    // Decode (batch 1) is memory-bound: it keeps the exact f32 path of kAvx512 (fallback).
    {Isa::kAvx512Bf16, DType::kBF16, 2, avx512bf16::matmul_bf16_dp, avx512bf16::prepared_bytes_bf16,
     avx512bf16::prepare_bf16},
    // Prefill and batched decode on AMX tiles (same bf16 activations, ~30x the multiply-adds per
    // instruction); every batch >= 2, so a sequence's numbers do not change with the batch size.
    {Isa::kAmxBf16, DType::kBF16, 2, amx::matmul_bf16, amx::prepared_bytes_bf16, amx::prepare_bf16},
    // Packed quantized formats (quant issue; kernels_quant_*.cpp).
    {Isa::kScalar, DType::kQ8Row, 1, scalar::matmul_q8_row},
    {Isa::kScalar, DType::kQ4Group, 1, scalar::matmul_q4_group},
    {Isa::kAvx512, DType::kQ8Row, 1, avx512::matmul_q8_row},
    {Isa::kAvx512, DType::kQ4Group, 1, avx512::matmul_q4_group},
    QMETER_QUANT_KERNEL_ROWS  // nf4 / fp8 / int8 x int8 (kernels_quant.h)
    QMETER_INT8_ACT_PACKED_ROWS  // w8a16 / w4a16 at batch >= 2 with int8 activations (kernels_gguf_int8.h)
    // llama.cpp's blocks: their rows come from the GGUF traits table (gguf_matmul_kernels()).
};

}  // namespace

const MatmulKernel* find_matmul_kernel(Isa isa, DType dtype, int batch) {
  const std::span<const MatmulKernel> table = is_gguf_block(dtype) ? gguf_matmul_kernels() : std::span(kMatmulKernels);
  for (int level = static_cast<int>(isa); level >= 0; --level) {
    const MatmulKernel* best = nullptr;
    for (const MatmulKernel& k : table) {
      if (static_cast<int>(k.isa) == level && k.weights == dtype && k.min_batch <= batch &&
          (!best || k.min_batch > best->min_batch)) {
        best = &k;
      }
    }
    if (best) return best;
  }
  return nullptr;
}

}  // namespace kernels

std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kQ8Row: return "q8_row";
    case DType::kQ4Group: return "q4_group";
    case DType::kNf4: return "nf4";
    case DType::kFp8Row: return "fp8_row";
    case DType::kFp8RowA8: return "fp8_row_a8";
    case DType::kQ8RowA8: return "q8_row_a8";
    case DType::kGgufQ8_0:
    case DType::kGgufQ4_0:
    case DType::kGgufQ4K:
    case DType::kGgufQ4_1:
    case DType::kGgufQ5_0:
    case DType::kGgufQ5_1:
    case DType::kGgufQ2K:
    case DType::kGgufQ3K:
    case DType::kGgufQ5K:
    case DType::kGgufQ6K:
    case DType::kGgufIQ4NL:
    case DType::kGgufIQ4XS: return gguf_block_traits(d).dtype_name;  // the traits table (gguf_blocks.h)
  }
  return "unknown";
}

std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kQ8Row:
    case DType::kQ4Group:
    case DType::kNf4:
    case DType::kFp8Row:
    case DType::kFp8RowA8:
    case DType::kQ8RowA8:
    case DType::kGgufQ8_0:
    case DType::kGgufQ4_0:
    case DType::kGgufQ4K:
    case DType::kGgufQ4_1:
    case DType::kGgufQ5_0:
    case DType::kGgufQ5_1:
    case DType::kGgufQ2K:
    case DType::kGgufQ3K:
    case DType::kGgufQ5K:
    case DType::kGgufQ6K:
    case DType::kGgufIQ4NL:
    case DType::kGgufIQ4XS: return 0;  // packed: see matrix_bytes()
  }
  return 0;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Bf16: return "avx512bf16";
    case Isa::kAmxBf16: return "amx";
  }
  return "unknown";
}

std::optional<Isa> isa_from_name(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmxBf16}) {
    if (isa_name(isa) == name) return isa;
  }
  return std::nullopt;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return avx2;
    case Isa::kAvx512: return avx512;
    case Isa::kAvx512Bf16: return avx512 && f.avx512bf16;
    case Isa::kAmxBf16: return avx512 && f.avx512bf16 && f.amx_bf16;
  }
  return false;
}

namespace {

Isa best_supported_isa() {
  for (Isa isa : {Isa::kAmxBf16, Isa::kAvx512Bf16, Isa::kAvx512, Isa::kAvx2}) {
    if (isa_supported(isa)) return isa;
  }
  return Isa::kScalar;
}

Isa choose_isa() {
  const Isa best = best_supported_isa();
  const char* env = std::getenv("QMETER_ISA");
  if (!env || !*env) return best;
  if (const auto isa = isa_from_name(env)) return std::min(*isa, best);  // a cap, never above the CPU
  throw UsageError(std::string("QMETER_ISA='") + env +
                   "' is not an instruction set; expected scalar, avx2, avx512 or avx512bf16");
}

void check_isa(Isa isa, const char* what) {
  if (!isa_supported(isa)) {
    throw Error(std::string(what) + ": this CPU cannot run the " + std::string(isa_name(isa)) +
                " kernels");
  }
}

// Below this many multiply-adds a matmul runs on the caller alone: waking the workers costs
// more than the work (stories260K's 64x64 layers, for example).
constexpr long kMinParallelMacs = 1L << 15;
// Thread ranges are multiples of 16 rows: one 64-byte line of f32 outputs, so two threads never
// write the same cache line of y, and a multiple of every kernel's row tile.
constexpr int kRowGrain = 16;

}  // namespace

Isa detected_isa() {
  static const Isa isa = choose_isa();
  return isa;
}

void matmul(const Matrix& w, const float* x, int batch, float* y, ThreadPool* pool) {
  matmul_isa(detected_isa(), w, x, batch, y, pool);
}

void matmul_isa(Isa isa, const Matrix& w, const float* x, int batch, float* y, ThreadPool* pool) {
  if (w.rows <= 0 || w.cols <= 0 || batch <= 0 || !w.data || !x || !y) {
    throw Error("matmul: invalid arguments (rows " + std::to_string(w.rows) + ", cols " +
                std::to_string(w.cols) + ", batch " + std::to_string(batch) +
                ", null pointers are not allowed)");
  }
  check_isa(isa, "matmul");
  const kernels::MatmulKernel* k = kernels::find_matmul_kernel(isa, w.dtype, batch);
  if (!k) throw Error("matmul: no kernel for weight type " + std::string(dtype_name(w.dtype)));

  // Act-order kQ4Group (imported GPTQ): its stored columns are a permutation of the inputs, so
  // the activations are gathered into that order once (O(batch * cols), small beside the matmul).
  if (const std::int32_t* perm = q4_column_permutation(w)) {
    thread_local std::vector<float> gathered;
    gathered.resize(static_cast<std::size_t>(batch) * w.cols);
    for (int b = 0; b < batch; ++b) {
      const float* xb = x + static_cast<std::size_t>(b) * w.cols;
      float* gb = gathered.data() + static_cast<std::size_t>(b) * w.cols;
      for (int c = 0; c < w.cols; ++c) gb[c] = xb[perm[c]];
    }
    x = gathered.data();
  }
  const void* prepared = nullptr;
  thread_local std::vector<unsigned char> scratch;  // reused across calls: no allocation per token
  if (k->prepare) {
    scratch.resize(k->prepared_bytes(batch, w.cols) + 64);
    // 64-byte aligned start so the kernel's full-width loads never split a cache line.
    auto* base = scratch.data();
    auto* aligned = base + ((64 - reinterpret_cast<std::uintptr_t>(base) % 64) % 64);
    k->prepare(x, batch, w.cols, aligned);
    prepared = aligned;
  }
  const long macs = static_cast<long>(w.rows) * w.cols * batch;
  if (!pool || pool->size() == 1 || macs < kMinParallelMacs || w.rows < 2 * kRowGrain) {
    k->rows(w, x, prepared, batch, y, 0, w.rows);
    return;
  }
  pool->parallel_for(
      w.rows, [&](int begin, int end) { k->rows(w, x, prepared, batch, y, begin, end); }, kRowGrain);
}

// ---- conversions ----

std::uint16_t f32_to_bf16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // NaN stays NaN (quiet), sign kept
  }
  // Round to nearest, ties to even: add half an ulp of bf16 minus one, plus the kept lsb.
  const std::uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(rounded >> 16);
}

float bf16_to_f32(std::uint16_t h) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in f32.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (exp == 31) {  // inf, or NaN with its payload (made quiet)
    return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0u));
  }
  return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

std::uint16_t f32_to_f16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u | ((a >> 13) & 0x3ffu);  // quiet NaN
  // 65520 = 0x477ff000 is halfway between 65504 (largest f16, odd mantissa) and 65536: ties
  // to even round it up, so it and everything above become infinity.
  if (a >= 0x477ff000u) return sign | 0x7c00u;
  if (a < 0x38800000u) {           // below 2^-14: an f16 subnormal or zero
    if (a <= 0x33000000u) return sign;  // <= 2^-25 (half the smallest subnormal, a tie to 0)
    const int e = static_cast<int>(a >> 23);
    const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;  // value = m * 2^(e-150)
    const int shift = 126 - e;                            // value / 2^-24 = m >> shift
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<std::uint16_t>(sign | r);
  }
  std::uint32_t r = (a >> 13) - ((127u - 15u) << 10);
  const std::uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry moves into the exponent
  return static_cast<std::uint16_t>(sign | r);
}

void convert_to_f32(DType dtype, const void* data, std::size_t n, float* out) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, data, n * sizeof(float));
      return;
    case DType::kBF16: {
      const auto* h = static_cast<const std::uint16_t*>(data);
      for (std::size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::kF16: {
      const auto* h = static_cast<const std::uint16_t*>(data);
      for (std::size_t i = 0; i < n; ++i) out[i] = f16_to_f32(h[i]);
      return;
    }
    case DType::kQ8Row:
    case DType::kQ4Group:
    case DType::kNf4:
    case DType::kFp8Row:
    case DType::kFp8RowA8:
    case DType::kQ8RowA8:
    case DType::kGgufQ8_0:
    case DType::kGgufQ4_0:
    case DType::kGgufQ4K:
    case DType::kGgufQ4_1:
    case DType::kGgufQ5_0:
    case DType::kGgufQ5_1:
    case DType::kGgufQ2K:
    case DType::kGgufQ3K:
    case DType::kGgufQ5K:
    case DType::kGgufQ6K:
    case DType::kGgufIQ4NL:
    case DType::kGgufIQ4XS:  // packed rows need their matrix's scales: matrix_row_to_f32()
      throw Error("convert_to_f32: packed weight type " + std::string(dtype_name(dtype)) + " needs matrix_row_to_f32");
  }
}

// ---- vector helpers ----

const VectorOps& vector_ops(Isa isa) {
  check_isa(isa, "vector_ops");
  switch (isa) {
    case Isa::kScalar: return kernels::scalar::kVectorOps;
    case Isa::kAvx2: return kernels::avx2::kVectorOps;
    case Isa::kAvx512:
    case Isa::kAvx512Bf16:
    case Isa::kAmxBf16: return kernels::avx512::kVectorOps;
  }
  return kernels::scalar::kVectorOps;
}

const VectorOps& vector_ops() { return vector_ops(detected_isa()); }

}  // namespace qmeter::engine
