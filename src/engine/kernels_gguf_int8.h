#pragma once
// Private: the integer-activation matmul path (issue #17) of the GGUF block types (every batch
// size, decode included: dot_vnni) and of qmeter's w8a16 / w4a16 formats (kQ8Row, kQ4Group; batch
// >= 2).
//
// Activations: each input token is quantized per block of 32 values (the GGUF types, as ggml's
// q8_0 activation blocks) or 128 (w8a16 / w4a16, whose scales span 128 columns or more) to int8:
// d = amax / 127 (f32), q = round-to-even(x / d), |q| <= 127 (an all-zero block gets d = 0,
// q = 0). Columns are zero-padded to a multiple of 64.
//
// Weights: every supported type is written, per weight i, as  w_i = A_i * u_i + M_i  with u_i an
// unsigned byte, A_i a scale shared by groups of 4 consecutive weights and M_i an offset shared
// by 16 consecutive weights (the block's min, or -zero_point * scale for symmetric codes):
//   q8_0   u = q + 128, A = d, M = -128 d        q4_0  u = q, A = d, M = -8 d
//   q4_K   u = q, A = d * sc_j, M = -dmin * m_j   q8_row (w8a16)  u = q + 128, A = s, M = -128 s
//   q4_group (w4a16)  u = q, A = s_g, M = -s_g * z_g
// so a dot product with a token is
//   sum_i w_i x_i ~= sum_lanes (A * dx) * sum4(u * xq)  +  sum_16-groups M * (dx * sum16(xq))
// The 4-product integer sums are VPDPBUSD lanes (u8 x s8 -> s32, exact: 4 * 255 * 127 < 2^24,
// so their conversion to f32 is exact too); the second sum uses the per-16 sums of xq computed
// once per token (ggml's "bsums"), so mins cost nothing per weight.
//
// Each weight row is first decoded to (u, A, M) in a per-thread scratch, then reused by every
// token of a batch block: the decoding is paid once per row and block, not once per token.
// Where A and d are the same for `span` consecutive 64-column chunks (w8a16: the whole row and
// 128-value activation blocks; w4a16: its 128-column groups), the VPDPBUSD sums of the span are
// added in int32 first (exact) and converted once, so a 64-column step costs one VPDPBUSD instead
// of VPDPBUSD + conversion + 2 f32 operations.
// Every output is computed by one fixed sequence of f32 operations (16 lane accumulators, one
// fixed reduction tree), so the scalar reference (scalar::matmul_int8_act) and the VNNI kernel
// give bit-identical results, whatever the thread split or batch size.
#include <cstddef>
#include <cstdint>
#include <span>

#include "kernels_dispatch.h"

namespace qmeter::engine::kernels {

// ---- prepared activations ----
// Layout (each array 64-byte aligned, `kpad` = cols rounded up to 64, `ngroups` = kpad rounded up
// to 256, / 16):  int8 xq[batch][kpad];  f32 dx[batch][kpad / 4] (the scale of each 4-value
// lane: d of its block);  f32 xs[batch][ngroups] (d * sum of the 16 xq of each group, 0 past cols).
struct Int8Activations {
  const std::int8_t* xq;
  const float* dx;
  const float* xs;
  int kpad, ngroups;
};
int int8_act_kpad(int cols);
int int8_act_groups(int cols);
std::size_t int8_act_prepared_bytes(int batch, int cols);
// The scalar conversion (ground truth of the SIMD one) and the dispatching one (a PrepareFn).
void int8_act_prepare_scalar(const float* x, int batch, int cols, int block, void* out);
void int8_act_prepare(const float* x, int batch, int cols, void* out);       // block 32
void int8_act_prepare_b128(const float* x, int batch, int cols, void* out);  // block 128
Int8Activations int8_act_view(const void* prepared, int batch, int cols);

// ---- decoded weights ----
// One row as (u, A, M): u[kpad], a[kpad / 4], m[ngroups]; zero past cols.
using Int8DecodeRowFn = void (*)(const Matrix& w, int row, std::uint8_t* u, float* a, float* m);

struct Int8WeightType {
  DType dtype;
  Int8DecodeRowFn decode_scalar;  // the reference
  Int8DecodeRowFn decode_avx512;  // nullptr: the scalar decoder serves (it is exact either way)
  MatmulRowsFn f32_fallback;      // the f32-activation kernel used where the CPU has no VNNI
  int act_block;                  // 32 or 128: the prepare function of its kernel-table rows
  int (*span)(const Matrix& w);   // chunks sharing A and d (nullptr: 1); divides 4
  // Batch 1 .. kGgufLanesMinBatch - 1 (decode, small batched decode) with VNNI: rows decoded in
  // registers, never stored, each 3-row tile against every token in turn (nullptr: batch 1 keeps
  // the f32-activation kernel, batch >= 2 the tiles). Bit-identical to scalar::matmul_int8_act.
  MatmulRowsFn dot_vnni = nullptr;
};
// The types with an integer path (nullptr for others).
const Int8WeightType* int8_weight_type(DType d);
std::span<const Int8WeightType> int8_weight_types();

// Columns that share one scale A in a GGUF type's decomposition: 16 (q2_K, q3_K, q6_K: per
// group) or 32 (the others: per block or sub-block).
int int8_scale_unit_cols(DType d);
// GGUF types at batch >= kGgufLanesMinBatch take the lanes kernel (kernels_gguf_int8_lanes_avx512.cpp:
// one output row per vector lane, int32 sums per scale unit); below it matmul_int8_act.
constexpr int kGgufLanesMinBatch = 10;

namespace scalar {
// Reference: decode_scalar + a lane-by-lane emulation of the VNNI kernel's f32 operations.
void matmul_int8_act(const Matrix&, const float*, const void*, int, float*, int, int);
// Reference of the GGUF lanes kernel (its f32 operations per output, in its order); reads the
// int8_lanes_prepare_b32 activations (their int8_act part).
void matmul_int8_lanes_gguf(const Matrix&, const float*, const void*, int, float*, int, int);
}  // namespace scalar
namespace avx512 {
bool has_vnni();  // kernels_quant_int8_avx512.cpp
// VPDPBUSD kernel (requires has_vnni()).
void matmul_int8_act_vnni(const Matrix&, const float*, const void*, int, float*, int, int);
// The table's row function: the VNNI kernel, or the type's f32-activation kernel without VNNI.
void matmul_int8_act(const Matrix&, const float*, const void*, int, float*, int, int);
void int8_act_prepare_avx512(const float* x, int batch, int cols, int block, void* out);
// kQ8Row / kQ4Group (groups a multiple of 128 columns) at batch >= 2: one output row per lane,
// 16 rows x up to 16 tokens per tile (kernels_quant_int8_lanes_avx512.cpp; requires has_vnni()).
// Not bit-identical to scalar::matmul_int8_act (another f32 summation order): within the bound of
// tests/engine/int8_lanes_test.cpp. matmul_int8_lanes is the table's row function: this kernel
// where it applies, else matmul_int8_act.
// Its activations: int8_act_prepare_b128's, then the tokens interleaved per tile of 16.
std::size_t int8_lanes_prepared_bytes(int batch, int cols);
void int8_lanes_prepare(const float* x, int batch, int cols, void* out);
void int8_lanes_prepare_b32(const float* x, int batch, int cols, void* out);  // the GGUF types' (blocks of 32)
// 64 bytes of each of 16 rows (src[i]) -> 16 vectors of 4 bytes x 16 rows at dst (1024 bytes).
void transpose16(const std::uint8_t* const* src, std::uint8_t* dst);
// The GGUF lanes kernel (requires has_vnni()), bit-identical to scalar::matmul_int8_lanes_gguf,
// and the table's row function (it, or the type's f32-activation kernel without VNNI).
void matmul_int8_lanes_gguf_vnni(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_int8_lanes_gguf(const Matrix&, const float*, const void*, int, float*, int, int);
const std::uint8_t* int8_lanes_tokens(const void* prepared, int batch, int cols);
bool int8_lanes_supported(const Matrix& w);
void matmul_int8_lanes_vnni(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_int8_lanes(const Matrix&, const float*, const void*, int, float*, int, int);
// w4a16's row where the CPU has AVX512_BF16: this kernel, else (groups not a multiple of 128, no
// VNNI) the VDPBF16PS kernel on bf16 activations that each call converts itself.
void matmul_int8_lanes_or_bf16(const Matrix&, const float*, const void*, int, float*, int, int);
// Per GGUF type (kernels_gguf_int8_dot_avx512.cpp, VNNI): int8_dot_<type>, the batch-1 kernel,
// and int8_decode_<type>_simd, the row decoder of the batched kernel.
#define QMETER_INT8_GGUF_TYPES(X) X(q8_0) X(q4_0) X(q4_1) X(q5_0) X(q5_1) X(iq4_nl) X(q2_k) X(q3_k) X(q4_k) X(q5_k) X(q6_k) X(iq4_xs)
#define QMETER_INT8_DECLARE(t)                                                            \
  void int8_dot_##t(const Matrix&, const float*, const void*, int, float*, int, int); \
  void int8_decode_##t##_simd(const Matrix&, int, std::uint8_t*, float*, float*);
QMETER_INT8_GGUF_TYPES(QMETER_INT8_DECLARE)
#undef QMETER_INT8_DECLARE
}  // namespace avx512

// Rows of the kernel table: batch >= 1 of every GGUF type in int8_weight_types() (appended to
// gguf_matmul_kernels()), and of kQ8Row / kQ4Group (QMETER_INT8_ACT_PACKED_ROWS in kMatmulKernels).
// kQ8Row / kQ4Group run the lanes kernel (matmul_int8_lanes); kQ4Group has a row at the
// kAvx512Bf16 level too, whose fallback for other group sizes is the VDPBF16PS kernel
// (decode_bench, tinyllama-1.1b at batch 16, medians of 3: w4a16 0.68x -> 1.25x, w8a16 0.62x ->
// 1.15x bf16).
std::span<const MatmulKernel> gguf_int8_act_kernel_rows();
#define QMETER_INT8_ACT_PACKED_ROWS                                                                                    \
  {Isa::kAvx512, DType::kQ8Row, 2, avx512::matmul_int8_lanes, avx512::int8_lanes_prepared_bytes, avx512::int8_lanes_prepare}, \
      {Isa::kAvx512, DType::kQ4Group, 2, avx512::matmul_int8_lanes, avx512::int8_lanes_prepared_bytes,  \
       avx512::int8_lanes_prepare},                                                                                   \
      {Isa::kAvx512Bf16, DType::kQ4Group, 2, avx512::matmul_int8_lanes_or_bf16, avx512::int8_lanes_prepared_bytes,     \
       avx512::int8_lanes_prepare},

}  // namespace qmeter::engine::kernels
