#pragma once
// The tensors of a GGUF file as stored (name -> ggml type id, dims, raw bytes), read independently
// of qmeter's loader so a comparison of two files does not depend on the code under test. Only
// what the comparison needs: metadata values are skipped, except general.alignment.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace qmeter::testing {

struct GgufStoredTensor {
  std::uint32_t ggml_type = 0;
  std::vector<std::uint64_t> dims;  // ne[0] (the row width) first
  std::vector<std::uint8_t> bytes;  // exactly the tensor's data (no alignment padding)
};

// Throws std::runtime_error naming the file on a malformed file or a type without a known size.
std::map<std::string, GgufStoredTensor> read_gguf_tensors(const std::string& path);

// ggml's name of a type id ("Q4_K"), or the number for ids qmeter does not know.
std::string ggml_type_label(std::uint32_t ggml_type);

}  // namespace qmeter::testing
