#pragma once
// Quantizers of one linear layer W [rows = out][cols = in] (row-major f32), shared by the
// methods: round-to-nearest group / channel quantization, GPTQ and the AWQ searches.
#include <cstdint>
#include <vector>

#include "qmeter/engine/kernels.h"
#include "qmeter/engine/thread_pool.h"

namespace qmeter::quant {

// Group-wise codes before packing (kQ4Group): w ~= scale[r][g] * (code - zero[r][g]).
struct GroupQuantized {
  int rows = 0, cols = 0, bits = 4, group_size = 128, n_groups = 0;
  std::vector<std::uint8_t> codes;  // [rows][cols]
  std::vector<float> scales;        // [rows][n_groups], already f16-representable
  std::vector<std::uint8_t> zeros;  // [rows][n_groups]
  std::vector<float> dequantized() const;  // [rows][cols]
  std::vector<std::byte> pack() const;
};

// Scale and zero of one group from its values (f16-rounded scale; symmetric: zero = 2^(bits-1),
// scale = max|w| / (2^(bits-1) - 1); asymmetric: the range [min(w,0), max(w,0)] over 2^bits - 1
// steps).
void group_params(const float* w, int n, int stride, int bits, bool symmetric, float& scale, std::uint8_t& zero);
std::uint8_t quantize_value(float w, float scale, std::uint8_t zero, int bits);

GroupQuantized quantize_rtn_groups(const float* w, int rows, int cols, int bits, int group_size, bool symmetric);

// kQ8Row: symmetric int8 per output channel, scale = max|w| / 127.
struct RowQuantized8 {
  int rows = 0, cols = 0;
  std::vector<std::int8_t> codes;
  std::vector<float> scales;
  std::vector<float> dequantized() const;
  std::vector<std::byte> pack() const;     // kQ8Row (w8a16)
  std::vector<std::byte> pack_a8() const;  // kQ8RowA8 (w8a8: int8 activations per token)
};
RowQuantized8 quantize_rtn_rows8(const float* w, int rows, int cols);

struct GptqOptions {
  int bits = 4;
  int group_size = 128;
  bool symmetric = false;
  bool act_order = false;
  double damp = 0.01;
  int block = 128;  // lazy batch of columns
};
// GPTQ (Frantar et al. 2022) of W given H = 2/n X^T X (cols x cols, double). With act_order the
// columns are visited by decreasing diag(H) and the group parameters are computed up front from
// the unquantized weights (static groups), so groups stay contiguous in the packed layout.
GroupQuantized gptq_quantize(const float* w, int rows, int cols, const std::vector<double>& hessian,
                             const GptqOptions& options, engine::ThreadPool* pool);

// H = 2/n sum_t x_t x_t^T over n rows of x (n x cols).
std::vector<double> hessian_from_inputs(const float* x, int n, int cols, engine::ThreadPool* pool);

}  // namespace qmeter::quant
