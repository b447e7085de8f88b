#pragma once
// Post-training quantization methods: one registry table (name, bits, parameters, calibration,
// packed format), and the entry points the CLI and the embedded backend use.
//
// Method names: fp32, bf16, fp16 (plain dtypes), w8a16 (int8 per output channel, RTN),
// w4a16-rtn / w3a16-rtn (group-wise RTN), gptq (4 or 3 bits), awq (4 bits), nf4, fp8-w8a16,
// fp8-w8a8, smoothquant-w8a8.
// Options (map keys, also the `qmeter quantize` flags): bits, group-size (multiple of 32; default
// 128, capped to a layer's width unless given explicitly), sym (true/false; default false =
// asymmetric with a zero point), act-order (gptq), damp (gptq, default 0.01), calib-samples
// (default 128), calib-seq-len (default 512), double-quant (nf4: 8-bit absmax, default false),
// alpha (smoothquant-w8a8 migration strength in [0, 1], default 0.8), kv-cache-dtype (f32, int8
// or fp8: the KV cache at run time, any method). An option a method does not use is refused
// (e.g. --group-size for nf4, whose blocks are fixed at 64).
// The token embedding and the classifier are kept in bf16 by every quantized method (common
// practice for weight-only methods; they are not linear layers of the blocks).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qmeter/engine/kernels.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/thread_pool.h"

namespace qmeter::quant {

struct MethodInfo {
  std::string name;
  int default_bits;             // 32/16 for the plain dtypes
  std::vector<int> allowed_bits;
  bool needs_calibration;
  engine::DType packed_dtype;   // what the block linears become
  std::string description;
};

// The registry, in table order.
const std::vector<MethodInfo>& methods();
std::vector<std::string> method_names();
// Throws qmeter::UsageError listing the known names.
const MethodInfo& method_info(const std::string& name);

struct QuantOptions {
  int bits = 0;              // 0: the method's default
  int group_size = 128;
  bool group_size_given = false;  // explicit: a layer narrower than it is an error
  bool symmetric = false;
  bool act_order = false;
  double damp = 0.01;
  bool double_quant = false;  // nf4
  double alpha = 0.8;         // smoothquant-w8a8
  bool alpha_given = false;
  int calib_samples = 128;
  int calib_seq_len = 512;
  // Also quantize the classifier (and so the tied token embedding) with the method's format,
  // round-to-nearest (as llama.cpp quantizes output.weight; AutoGPTQ / AutoAWQ keep it 16-bit,
  // the default). On a LLaMA-1B shape the bf16 classifier is half of a 4-bit model's bytes.
  bool quantize_lm_head = false;
  // The KV cache's element type at run time (kv_cache.h), combinable with every method; not a
  // weight property, so `qmeter quantize` neither takes nor stores it (not in option_keys()).
  engine::KvDType kv_cache_dtype = engine::KvDType::kF32;
};

// Parses the option map (keys as above); UsageError naming the key for bad values or
// combinations the method does not support (e.g. awq with 5 bits).
QuantOptions parse_options(const std::string& method, const std::map<std::string, std::string>& options);

// Every option key parse_options accepts (the CLI's flags) except kv-cache-dtype, plus "calib"
// (the calibration file), with its help text; `flag`: boolean, "--key" alone means true.
struct OptionInfo {
  std::string key;
  std::string help;
  bool flag = false;
};
const std::vector<OptionInfo>& option_table();
const std::vector<std::string>& option_keys();

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
