#pragma once
// Post-training quantization methods: one registry table (name, bits, parameters, calibration,
// packed format), and the entry points the CLI and the embedded backend use.
//
// Method names: fp32, bf16, fp16 (plain dtypes), w8a16 (int8 per output channel, RTN),
// w4a16-rtn / w3a16-rtn (group-wise RTN), gptq (4 or 3 bits), awq (4 bits), nf4, fp8-w8a16,
// fp8-w8a8, smoothquant-w8a8.
// Options: method_options.h (one table: types, defaults, ranges, help).
// The token embedding and the classifier are kept in bf16 by every quantized method (common
// practice for weight-only methods; they are not linear layers of the blocks).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qmeter/engine/kernels.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/thread_pool.h"
#include "qmeter/quant/method_options.h"

namespace qmeter::quant {

struct MethodInfo {
  std::string name;
  int default_bits;             // 32/16 for the plain dtypes
  std::vector<int> allowed_bits;
  bool needs_calibration;
  engine::DType packed_dtype;   // what the block linears become
  std::string description;
  // The short configuration label (tables, legends): {bits} and {group_size} are the parsed
  // options; "" = the method's name. Options set away from their default add their own piece
  // (method_options.cpp), e.g. "gptq-w4g128-sym".
  std::string label_form = "";
};

// The registry, in table order.
const std::vector<MethodInfo>& methods();
std::vector<std::string> method_names();
// Throws qmeter::UsageError listing the known names.
const MethodInfo& method_info(const std::string& name);

// QuantOptions, parse_options, the option table, labels and bits per weight: method_options.h.

// Calibration sequences: the text of `calib_path` (empty: the built-in default of the shared
// TinyStories file's first half, else an error), split on blank lines, tokenized with BOS,
// concatenated and cut into `samples` windows of `seq_len` tokens (fewer when the text is short).
std::vector<std::vector<int>> calibration_tokens(const engine::Model& model, const std::string& calib_path,
                                                 int samples, int seq_len);

// Quantizes `model` in place (it must have been loaded with f32 weights). `calib` is used by
// methods that need calibration. `pool` may be null.
void quantize_model(engine::Model& model, const std::string& method, const QuantOptions& options,
                    const std::vector<std::vector<int>>& calib, engine::ThreadPool* pool);

// Loads `model_spec` and applies `method` (fp32/bf16/fp16: the plain dtype at load).
std::shared_ptr<engine::Model> load_quantized(const std::string& model_spec, const std::string& method,
                                              const std::map<std::string, std::string>& options,
                                              const std::string& calib_path);

// load_quantized with the calibration file passed as the option "calib" (the form study specs and
// the serve flags use). Unknown methods and bad options fail before the (slow) load.
std::shared_ptr<engine::Model> load_quantized_from_options(const std::string& model_spec, const std::string& method,
                                                           std::map<std::string, std::string> options);

}  // namespace qmeter::quant
