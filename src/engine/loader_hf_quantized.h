#pragma once
// Private to the engine: the safetensors tensor index of the HF folder loader, and the import of
// AutoGPTQ / AutoAWQ checkpoints (loader_hf_quantized.cpp) into kQ4Group matrices.
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "loader_common.h"
#include "mmap_file.h"

namespace qmeter::engine {

// One tensor of a .safetensors file, as the HF loader indexed it (data memory-mapped).
struct StoredTensor {
  const MappedFile* file = nullptr;
  DType dtype = DType::kF32;  // F32 / F16 / BF16; kF32 as a placeholder when int32 is set
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;
  std::uint64_t bytes = 0;
  bool packed = false;  // a qmeter packed blob (U8 "<linear>.qmeter_packed", packed_formats.h)
  bool int32 = false;   // I32: AutoGPTQ / AutoAWQ qweight, qzeros, g_idx (only the import reads them)
};
using TensorIndex = std::map<std::string, StoredTensor>;

std::string shape_str(const std::vector<std::int64_t>& s);
// Parses a JSON file (qmeter::Error naming it when malformed).
nlohmann::json read_json_file(const std::string& path);

// The quantization of an AutoGPTQ ("gptq") or AutoAWQ ("awq", GEMM packing) folder.
struct HfQuantConfig {
  std::string method;        // "gptq" or "awq"
  int bits = 4;              // 4, or 3 (gptq)
  int group_size = 128;      // -1: one group per row
  bool desc_act = false;     // gptq act-order, as declared (the g_idx tensors decide)
  bool zero_plus_one = false;  // gptq v1 ("checkpoint_format": "gptq"): stored zero = zero - 1
  std::string where;         // the file the config came from, for errors
  std::string weights_file;  // AutoGPTQ's model_file_base_name + ".safetensors", if named
  // For the model description, e.g. "gptq (imported AutoGPTQ, 4-bit, group 128, act-order)".
  std::string label() const;
};

// The quantization of folder `dir`: config.json's "quantization_config" (`config_json`), else
// quantize_config.json (AutoGPTQ) or quant_config.json (older AutoAWQ). nullopt when there is
// none or it is qmeter's own (quant_method "qmeter"). Throws qmeter::Error naming the file and
// field for a quantization this import cannot represent (another method, bits, version, ...).
std::optional<HfQuantConfig> read_hf_quant_config(const std::string& dir, const nlohmann::json& config_json);

// Imports the quantized linear `base` (e.g. "model.layers.0.self_attn.q_proj": its qweight,
// qzeros, scales and g_idx) as a kQ4Group matrix of [rows = out_features][cols = in_features]
// whose engine row r is the checkpoint's output row src_row[r] (src_row empty: identity).
// nullopt when `<base>.qweight` is absent (a linear the checkpoint left unquantized).
// Throws qmeter::Error naming the file and tensor for missing tensors, wrong shapes or dtypes,
// and values out of range.
std::optional<Matrix> import_quantized_linear(const HfQuantConfig& q, const TensorIndex& tensors, const std::string& base,
                                              int rows, int cols, const std::vector<int>& src_row, WeightBuilder& wb);

}  // namespace qmeter::engine
