#pragma once
// Pieces shared by the model loaders (private to the engine).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/engine/model.h"

namespace qmeter::engine {

// Turns stored tensors into the model's weights: views in place (memory-mapped) when the caller
// asked for no dtype conversion and the data is aligned for its type; otherwise converted or
// copied into buffers the model owns.
class WeightBuilder {
 public:
  WeightBuilder(Model& model, const LoadOptions& options) : model_(model), options_(options) {}
  Matrix matrix(DType stored, const std::byte* data, int rows, int cols);
  // A converted copy whose row r is stored row src_row[r] (src_row empty: identity).
  Matrix matrix_permuted_rows(DType stored, const std::byte* data, int rows, int cols, const std::vector<int>& src_row);
  // Small tensors (norms, biases, rope factors) are always widened to f32 copies.
  std::vector<float> vector(DType stored, const std::byte* data, std::size_t n);
  // A zero-initialised owned buffer of `bytes` bytes, 64-byte aligned.
  std::byte* allocate(std::size_t bytes);

 private:
  Model& model_;
  const LoadOptions& options_;
};

// Bytes `n` elements of `dtype` take (for the dense types a loader may meet).
std::size_t dense_bytes(DType dtype, std::size_t n);

// Completes a loaded model: validates the config (naming `source`), ties the classifier when
// the config says so, computes the RoPE frequencies (times 1/freq_factors when given, GGUF's
// rope_freqs), sets weight_dtype and the description.
void finalize_model(Model& model, const std::string& source, const std::vector<float>& rope_freq_factors = {});

std::string lowercase(std::string_view s);
bool ends_with(std::string_view s, std::string_view suffix);

}  // namespace qmeter::engine
