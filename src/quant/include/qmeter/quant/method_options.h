#pragma once
// The options of the quantization methods, written once (method_options.cpp): their types,
// defaults, ranges and help (the CLI's flags, the spec parser's checks), how they parse into
// QuantOptions, and what a configuration (method + options) derives from the registry: its bits
// per weight and its short label ("gptq-w4g128").
//
// Keys: bits, group_size (multiple of 32; default 128, capped to a layer's width unless given
// explicitly), sym, act_order (gptq), damp (gptq), calib_samples, calib_seq_len, double_quant
// (nf4), alpha (smoothquant-w8a8), quantize_lm_head, kv_cache_dtype (the KV cache at run time,
// any method), calib (the calibration file; load_quantized_from_options). Either spelling,
// `group-size` or `group_size`, names the same option (canonical: '_'; CLI flags: '-'). An
// option a method does not use is refused (e.g. group_size for nf4, whose blocks are 64).
#include <map>
#include <string>
#include <vector>

#include "qmeter/core/option_schema.h"
#include "qmeter/engine/model_config.h"

namespace qmeter::quant {

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
  // weight property, so `qmeter quantize` neither takes nor stores it (not in option_table()).
  engine::KvDType kv_cache_dtype = engine::KvDType::kF32;
};

// Every method option, canonical keys ('_'), "calib" and "kv_cache_dtype" included.
const std::vector<OptionSpec>& method_option_schema();

// Parses the option map (either spelling of each key); OptionError naming the field as `names`
// gives it (default: the CLI's --flags) for an unknown key, a bad value, or a combination the
// method does not support (e.g. awq with 5 bits). "calib" is not taken here (a file, read later).
QuantOptions parse_options(const std::string& method, const std::map<std::string, std::string>& options,
                           const FieldNames& names = {});

// The CLI's flags: every option except kv-cache-dtype, keys in the flag spelling ("group-size"),
// with help text (default included); `flag`: boolean, "--key" alone means true.
struct OptionInfo {
  std::string key;
  std::string help;
  bool flag = false;
};
const std::vector<OptionInfo>& option_table();
const std::vector<std::string>& option_keys();

// What the registry derives from a configuration. A method name that is not in the registry
// (a command backend's own label) or options it cannot parse give bits_per_weight -1 and the
// name as label; options the registry does not know (a server's own flags) are ignored.
struct ConfigurationProperties {
  // Stored bits per weight of the block linear layers: code bits plus their scales / zero points
  // / absmax amortized over the weights (per-output-row scales at a nominal width of 4096); for a
  // GGUF preset, its main block type's. -1: unknown.
  double bits_per_weight = -1;
  std::string label;  // short, stable: "gptq-w4g128", "rtn-w8", "fp8", "nf4-dq", "q4_k_m"
  // As stored with a run ({"bits_per_weight": .., "label": ..}); from_json throws qmeter::Error.
  std::string to_json() const;
  static ConfigurationProperties from_json(const std::string& json);
};
ConfigurationProperties configuration_properties(const std::string& method,
                                                 const std::map<std::string, std::string>& options);

// Short labels for the configurations of one study, unique within it: configurations whose
// short labels collide get the options that differ between them appended ("gptq-w4g128
// calib=kjv.txt"; a path shows its file name). Same order as `configs`.
struct MethodConfiguration {
  std::string method;
  std::map<std::string, std::string> options;
  std::string label;  // its short label when already known (stored with a run); "" = from the registry
};
std::vector<std::string> unique_labels(const std::vector<MethodConfiguration>& configs);

}  // namespace qmeter::quant
