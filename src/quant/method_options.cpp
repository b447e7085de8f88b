// The method options' table, their parsing into QuantOptions, and what the registry derives from a
// configuration: bits per weight and the short label (method_options.h).
#include "qmeter/quant/method_options.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/quant/quantize.h"

namespace qmeter::quant {

using engine::DType;

namespace {

// One option: its schema, whether quantize / serve take it as a flag, and the piece it adds to the
// short label when set away from its default ("{}": the value; nullptr: shown only to tell two
// configurations of one study apart).
struct MethodOption {
  OptionSpec spec;
  bool cli = true;
  const char* label_piece = nullptr;
};

const std::vector<MethodOption>& option_rows() {
  const double inf = std::numeric_limits<double>::infinity();
  using O = OptionSpec;
  static const std::vector<MethodOption> rows = {
      {O::integer("bits", "", "weight bits (w4a16-rtn: 4, gptq: 4 or 3, ...)", 1, 32), true, nullptr},
      {O::integer("group_size", "128", "columns per quantization group, a multiple of 32", 32, inf, 32), true, nullptr},
      {O::boolean("sym", "symmetric groups, no zero point (default: asymmetric)"), true, "sym"},
      {O::boolean("act_order", "gptq: quantize columns in order of decreasing activation"), true, "act"},
      {O::number("damp", "0.01", "gptq: Hessian dampening, a fraction of its mean diagonal", 0, 1, true), true, nullptr},
      {O::number("alpha", "0.8", "smoothquant-w8a8: migration strength in [0, 1]", 0, 1), true, "a{}"},
      {O::boolean("double_quant", "nf4: quantize the absmax values too (8-bit, blocks of 256)"), true, "dq"},
      {O::boolean("quantize_lm_head", "also quantize the classifier / tied embedding, round-to-nearest (default: kept bf16)"),
       true, "lmhead"},
      {O::integer("calib_samples", "128", "calibration sequences (gptq, awq, smoothquant)", 1), true, nullptr},
      {O::integer("calib_seq_len", "512", "tokens per calibration sequence", 2), true, nullptr},
      {O::text("calib", "calibration text file (default: the built-in TinyStories half)"), true, nullptr},
      // The KV cache at run time: a study's method option (serve has its own --kv-cache-dtype flag).
      {O::choice("kv_cache_dtype", "f32", {"f32", "int8", "fp8"}, "KV-cache element type (any method)"), false, "kv{}"},
  };
  return rows;
}

const MethodOption* row_of(const std::string& canonical_key) {
  for (const MethodOption& r : option_rows())
    if (r.spec.key == canonical_key) return &r;
  return nullptr;
}

// Per-output-row scales are amortized over a nominal row of this many weights (a 7B model's width).
constexpr double kNominalWidth = 4096;

double bits_per_weight(const MethodInfo& info, const QuantOptions& o) {
  switch (info.packed_dtype) {
    case DType::kF32: return 32;
    case DType::kBF16:
    case DType::kF16: return 16;
    case DType::kQ8Row:
    case DType::kFp8Row:
    case DType::kFp8RowA8: return 8 + 32 / kNominalWidth;  // f32 scale per row
    case DType::kQ8RowA8: return 8 + 64 / kNominalWidth;   // f32 scale and i32 code sum per row
    case DType::kQ4Group: return o.bits + (16.0 + 8.0) / o.group_size;  // f16 scale, u8 zero per group
    case DType::kNf4:  // f32 absmax per 64, or u8 codes per 64 and an f32 absmax2 per 256 blocks
      return 4 + (o.double_quant ? 8.0 / engine::kNf4Block + 32.0 / (engine::kNf4Block * engine::kNf4DoubleBlock)
                                 : 32.0 / engine::kNf4Block);
    default:
      if (engine::is_gguf_block(info.packed_dtype))
        return 8.0 * engine::gguf_block_bytes(info.packed_dtype) / engine::gguf_block_elems(info.packed_dtype);
      return -1;
  }
}

std::string fill(const std::string& form, const std::string& value) {
  std::string s = form;
  if (auto at = s.find("{}"); at != std::string::npos) s.replace(at, 2, value);
  return s;
}

// The label's pieces from the options as given (canonical keys) and as parsed.
std::string short_label(const MethodInfo& info, const QuantOptions& o, const std::map<std::string, std::string>& given) {
  std::string s = info.label_form.empty() ? info.name : info.label_form;
  if (auto at = s.find("{bits}"); at != std::string::npos) s.replace(at, 6, std::to_string(o.bits));
  if (auto at = s.find("{group_size}"); at != std::string::npos) s.replace(at, 12, std::to_string(o.group_size));
  for (const MethodOption& r : option_rows()) {
    auto it = given.find(r.spec.key);
    if (!r.label_piece || it == given.end()) continue;
    if (r.spec.type == OptionType::kBool) {
      bool on = false;
      if (parse_option_bool(it->second, on) && on) s += std::string("-") + r.label_piece;
    } else if (it->second != r.spec.default_value) {
      s += "-" + fill(r.label_piece, it->second);
    }
  }
  return s;
}

}  // namespace

const std::vector<OptionSpec>& method_option_schema() {
  static const std::vector<OptionSpec> table = [] {
    std::vector<OptionSpec> t;
    for (const MethodOption& r : option_rows()) t.push_back(r.spec);
    return t;
  }();
  return table;
}

QuantOptions parse_options(const std::string& method, const std::map<std::string, std::string>& options,
                           const FieldNames& names) {
  const MethodInfo& info = method_info(method);
  const std::map<std::string, std::string> given = check_options(method_option_schema(), options, "quantization", names);
  auto has = [&](const char* key) { return given.count(key) > 0; };
  auto flag = [&](const char* key) {
    bool on = false;
    if (has(key)) parse_option_bool(given.at(key), on);
    return on;
  };
  QuantOptions o;
  o.bits = has("bits") ? std::stoi(given.at("bits")) : info.default_bits;
  o.group_size_given = has("group_size");
  if (o.group_size_given) o.group_size = std::stoi(given.at("group_size"));
  o.symmetric = flag("sym");
  o.act_order = flag("act_order");
  if (has("damp")) o.damp = std::stod(given.at("damp"));
  o.double_quant = flag("double_quant");
  o.quantize_lm_head = flag("quantize_lm_head");
  o.alpha_given = has("alpha");
  if (o.alpha_given) o.alpha = std::stod(given.at("alpha"));
  if (has("kv_cache_dtype")) o.kv_cache_dtype = engine::parse_kv_dtype(given.at("kv_cache_dtype"), names("kv_cache_dtype"));
  if (has("calib_samples")) o.calib_samples = std::stoi(given.at("calib_samples"));
  if (has("calib_seq_len")) o.calib_seq_len = std::stoi(given.at("calib_seq_len"));

  auto refuse = [&](const char* key, const std::string& why) { throw OptionError(names, key, why); };
  if (std::find(info.allowed_bits.begin(), info.allowed_bits.end(), o.bits) == info.allowed_bits.end())
    throw OptionError(names, "bits", fmt::format("method {} supports {}", method, fmt::join(info.allowed_bits, " or ")),
                      std::to_string(o.bits));
  if (o.act_order && method != "gptq") refuse("act_order", fmt::format("applies to gptq only, not {}", method));
  if (o.symmetric && method == "awq") refuse("sym", "awq uses asymmetric (zero-point) groups; symmetric is not supported");
  const bool grouped = info.packed_dtype == DType::kQ4Group;
  if (o.group_size_given && !grouped)
    refuse("group_size", fmt::format("applies to the group-wise methods (w4a16-rtn, w3a16-rtn, gptq, awq), not {}{}", method,
                                     method == "nf4" ? " (its blocks are 64 weights)" : ""));
  if (o.symmetric && !grouped) refuse("sym", fmt::format("applies to the group-wise methods, not {}", method));
  if (o.double_quant && method != "nf4") refuse("double_quant", fmt::format("applies to nf4 only, not {}", method));
  if (o.alpha_given && method != "smoothquant-w8a8")
    refuse("alpha", fmt::format("applies to smoothquant-w8a8 only, not {}", method));
  if (o.quantize_lm_head && (!engine::is_packed(info.packed_dtype) || engine::is_gguf_block(info.packed_dtype)))
    refuse("quantize_lm_head", fmt::format("applies to the packed methods written as safetensors (w8a16, w4a16-rtn, "
                                           "gptq, awq, nf4, fp8, smoothquant), not {}", method));
  return o;
}

const std::vector<OptionInfo>& option_table() {
  static const std::vector<OptionInfo> table = [] {
    const FieldNames flag_names{"", true};
    std::vector<OptionInfo> t;
    for (const MethodOption& r : option_rows()) {
      if (!r.cli) continue;
      std::string help = r.spec.help;
      if (!r.spec.default_value.empty() && r.spec.type != OptionType::kBool) help += " (default " + r.spec.default_value + ")";
      t.push_back({flag_names(r.spec.key), help, r.spec.type == OptionType::kBool});
    }
    return t;
  }();
  return table;
}

const std::vector<std::string>& option_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const OptionInfo& o : option_table()) k.push_back(o.key);
    return k;
  }();
  return keys;
}

ConfigurationProperties configuration_properties(const std::string& method,
                                                 const std::map<std::string, std::string>& options) {
  ConfigurationProperties p;
  p.label = method;
  const auto& names = methods();
  auto info = std::find_if(names.begin(), names.end(), [&](const MethodInfo& m) { return m.name == method; });
  if (info == names.end()) return p;
  std::map<std::string, std::string> known;  // a command backend's own option keys are not the registry's
  for (const auto& [k, v] : options)
    if (row_of(canonical_option_key(k))) known[canonical_option_key(k)] = v;
  try {
    const QuantOptions o = parse_options(method, known);
    p.bits_per_weight = bits_per_weight(*info, o);
    p.label = short_label(*info, o, known);
  } catch (const UsageError&) {
  }
  return p;
}

std::string ConfigurationProperties::to_json() const {
  return nlohmann::json{{"bits_per_weight", bits_per_weight}, {"label", label}}.dump();
}

ConfigurationProperties ConfigurationProperties::from_json(const std::string& text) {
  try {
    const auto j = nlohmann::json::parse(text);
    return {j.at("bits_per_weight").get<double>(), j.at("label").get<std::string>()};
  } catch (const std::exception& e) {
    throw Error("stored configuration properties '" + text + "': " + e.what());
  }
}

namespace {

// The options as the method sees them, for comparing two configurations: canonical keys, booleans
// spelled one way, and the registry's options that are not given at their defaults (so
// `double_quant: false` is the same configuration as no double_quant).
std::map<std::string, std::string> effective_options(const MethodConfiguration& c) {
  std::map<std::string, std::string> m;
  for (const auto& [k, v] : c.options) m[canonical_option_key(k)] = v;
  const auto& all = methods();
  auto info = std::find_if(all.begin(), all.end(), [&](const MethodInfo& x) { return x.name == c.method; });
  if (info == all.end()) return m;
  for (const MethodOption& r : option_rows()) {
    auto it = m.find(r.spec.key);
    if (it == m.end()) {
      m[r.spec.key] = r.spec.key == "bits" ? std::to_string(info->default_bits) : r.spec.default_value;
    } else if (bool on = false; r.spec.type == OptionType::kBool && parse_option_bool(it->second, on)) {
      it->second = on ? "true" : "false";
    }
  }
  return m;
}

std::string shown_value(const std::string& v, bool file_names) {
  if (!file_names) return v;
  const auto slash = v.find_last_of('/');
  return slash == std::string::npos || slash + 1 == v.size() ? v : v.substr(slash + 1);
}

}  // namespace

std::vector<std::string> unique_labels(const std::vector<MethodConfiguration>& configs) {
  std::vector<std::string> labels;
  std::vector<std::map<std::string, std::string>> canon;
  for (const MethodConfiguration& c : configs) {
    labels.push_back(c.label.empty() ? configuration_properties(c.method, c.options).label : c.label);
    canon.push_back(effective_options(c));
  }
  std::vector<std::string> out = labels;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    std::vector<std::size_t> group;  // every configuration sharing i's short label
    for (std::size_t j = 0; j < configs.size(); ++j)
      if (labels[j] == labels[i]) group.push_back(j);
    std::set<std::string> keys, differing;
    for (std::size_t j : group)
      for (const auto& [k, v] : canon[j]) keys.insert(k);
    for (std::size_t j : group)
      for (const std::string& k : keys) canon[j].emplace(k, "");  // absent: ""
    for (const std::string& k : keys) {
      std::set<std::string> values;
      for (std::size_t j : group) values.insert(canon[j].at(k));
      if (values.size() > 1) differing.insert(k);
    }
    if (differing.empty()) continue;  // the same configuration (or the same label by name only)
    // File names first (short); full values when two files share a name.
    for (bool file_names : {true, false}) {
      std::map<std::string, std::pair<std::string, std::map<std::string, std::string>>> seen;  // label -> configuration
      bool distinct = true;
      for (std::size_t j : group) {
        std::string suffix;
        // Only the values set away from the method's defaults: two configurations that differ
        // nowhere else would be the same one.
        const std::map<std::string, std::string> defaults = effective_options({configs[j].method, {}, ""});
        for (const std::string& k : differing) {
          const std::string& v = canon[j].at(k);
          if (v.empty() || (defaults.count(k) && defaults.at(k) == v)) continue;
          suffix += (suffix.empty() ? "" : ",") + k + "=" + shown_value(v, file_names);
        }
        const std::string l = suffix.empty() ? labels[j] : labels[j] + " " + suffix;
        if (j == i) out[i] = l;
        const auto [at, fresh] = seen.emplace(l, std::make_pair(configs[j].method, canon[j]));
        if (!fresh && at->second != std::make_pair(configs[j].method, canon[j])) distinct = false;
      }
      if (distinct) break;
    }
  }
  return out;
}

}  // namespace qmeter::quant
