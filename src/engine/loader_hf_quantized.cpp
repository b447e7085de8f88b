// AutoGPTQ and AutoAWQ checkpoints in a Hugging Face folder, imported without re-quantizing:
// every quantized linear becomes a kQ4Group matrix (packed_formats.h) holding exactly the
// checkpoint's integer codes, f16 scales and zero points, so the existing kQ4Group kernels run it.
//
// AutoGPTQ ("quant_method": "gptq"), per linear <base>:
//   qweight  I32 [in * bits / 32, out]  codes packed along the input dimension: a little-endian
//            bit stream down each column, input k at bits [bits*k, bits*k + bits) (4-bit: 8 per
//            word, value j of a word at bits 4j; 3-bit: 32 values in 3 words, values straddle
//            word boundaries exactly as the stream says)
//   qzeros   I32 [n_groups, out * bits / 32]  zero points packed the same way along the output
//   scales   F16 [n_groups, out]
//   g_idx    I32 [in]  the group of each input column (absent in old checkpoints: c / group_size)
//   w[o][i] = scales[g][o] * (q[i][o] - zero[g][o]),  g = g_idx[i]
// Zero points: the v1 format ("checkpoint_format": "gptq", the default, what AutoGPTQ writes)
// stores zero - 1, truncated to `bits` bits; like AutoGPTQ's reference dequantization we read
// zero = (stored + 1) mod 2^bits. That equals exllama-style kernels' stored + 1 except for a
// stored 2^bits - 1, which only a true zero of 0 produces (AutoGPTQ's packer writes -1 there);
// we read 0, the value that was quantized. "gptq_v2" (GPTQModel) stores the zero as is.
// Act-order (desc_act): g_idx is not c / group_size. Sorting the input columns by group (stable)
// makes every group a run of group_size columns again, so the matrix is stored as kQ4Group with
// its columns in that order plus the permutation (kQ4ColumnPermutation); matmul gathers the
// activations through it once per call, as exllama does. Exact, and the kernels stay the fast
// contiguous-group ones (a per-column group index would cost a lookup per weight).
//
// AutoAWQ GEMM ("quant_method": "awq", "version": "gemm"), per linear:
//   qweight  I32 [in, out / 8]  8 outputs per word along the output dimension, in AutoAWQ's
//            interleaved order: nibble n of word j holds output 8j + [0, 2, 4, 6, 1, 3, 5, 7][n]
//   qzeros   I32 [n_groups, out / 8]  the same order; zero points as they are
//   scales   F16 [n_groups, out];  groups are contiguous input columns (no g_idx)
#include "loader_hf_quantized.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/engine/packed_formats.h"

namespace qmeter::engine {

namespace fs = std::filesystem;
using nlohmann::json;

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

json read_json_file(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(fmt::format("'{}': malformed JSON: {}", path, e.what()));
  }
}

std::string HfQuantConfig::label() const {
  const std::string group = group_size > 0 ? fmt::format("group {}", group_size) : std::string("per-channel");
  if (method == "awq") return fmt::format("awq (imported AutoAWQ GEMM, {}-bit, {})", bits, group);
  return fmt::format("gptq (imported AutoGPTQ, {}-bit, {}{})", bits, group, desc_act ? ", act-order" : "");
}

std::optional<HfQuantConfig> read_hf_quant_config(const std::string& dir, const json& config_json) {
  const fs::path d(dir);
  json q;
  std::string where, default_method;
  if (config_json.contains("quantization_config") && config_json["quantization_config"].is_object()) {
    q = config_json["quantization_config"];
    where = fmt::format("'{}': quantization_config", (d / "config.json").string());
  } else if (fs::exists(d / "quantize_config.json")) {  // AutoGPTQ's own file
    q = read_json_file((d / "quantize_config.json").string());
    where = fmt::format("'{}'", (d / "quantize_config.json").string());
    default_method = "gptq";
  } else if (fs::exists(d / "quant_config.json")) {  // older AutoAWQ
    q = read_json_file((d / "quant_config.json").string());
    where = fmt::format("'{}'", (d / "quant_config.json").string());
    default_method = "awq";
  } else {
    return std::nullopt;
  }
  if (!q.is_object()) throw Error(fmt::format("{}: not a JSON object", where));
  try {
    HfQuantConfig c;
    c.where = where;
    c.method = lowercase(q.value("quant_method", default_method));
    if (c.method == "qmeter") return std::nullopt;  // qmeter quantize's folders: packed tensors
    if (c.method != "gptq" && c.method != "awq")
      throw Error(fmt::format("{}: field 'quant_method' = '{}' cannot be imported (gptq and awq can)", where, c.method));
    const char* bits_key = q.contains("bits") ? "bits" : "w_bit";
    const char* group_key = q.contains("group_size") ? "group_size" : "q_group_size";
    if (!q.contains(bits_key) || !q[bits_key].is_number_integer())
      throw Error(fmt::format("{}: field 'bits' missing or not an integer", where));
    c.bits = q[bits_key].get<int>();
    if (c.method == "gptq" && c.bits != 4 && c.bits != 3)
      throw Error(fmt::format("{}: field '{}' = {}: AutoGPTQ import supports 4 and 3 bits", where, bits_key, c.bits));
    if (c.method == "awq" && c.bits != 4)
      throw Error(fmt::format("{}: field '{}' = {}: AutoAWQ import supports 4 bits", where, bits_key, c.bits));
    c.group_size = q.contains(group_key) ? q[group_key].get<int>() : 128;
    if (c.group_size != -1 && (c.group_size <= 0 || c.group_size % 32 != 0))
      throw Error(fmt::format("{}: field '{}' = {}: imported groups must be a positive multiple of 32 columns (or -1)",
                              where, group_key, c.group_size));
    if (c.method == "gptq") {
      c.desc_act = q.value("desc_act", false);
      const std::string format = lowercase(q.value("checkpoint_format", std::string("gptq")));
      if (format != "gptq" && format != "gptq_v2")
        throw Error(fmt::format("{}: field 'checkpoint_format' = '{}' is not supported (gptq and gptq_v2 are)", where, format));
      if (q.value("is_marlin_format", false))
        throw Error(fmt::format("{}: field 'is_marlin_format': Marlin-repacked weights are not supported", where));
      c.zero_plus_one = format == "gptq";
      if (q.contains("model_file_base_name") && q["model_file_base_name"].is_string())
        c.weights_file = q["model_file_base_name"].get<std::string>() + ".safetensors";
    } else {
      if (!q.value("zero_point", true))
        throw Error(fmt::format("{}: field 'zero_point' = false is not supported (AutoAWQ GEMM checkpoints have zeros)", where));
      const std::string version = lowercase(q.value("version", std::string("gemm")));
      if (version != "gemm")
        throw Error(fmt::format("{}: field 'version' = '{}' is not supported (only AutoAWQ's GEMM packing is)", where, version));
    }
    return c;
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: bad field type: {}", where, e.what()));
  }
}

namespace {

std::uint32_t word_at(const StoredTensor& t, std::size_t i) {
  std::uint32_t w;
  std::memcpy(&w, t.data + 4 * i, 4);  // mapped data need not be 4-byte aligned
  return w;
}

// Value k (`bits` wide) of the little-endian bit stream of 32-bit words word(0), word(1), ...
template <class Word>
unsigned stream_value(const Word& word, std::size_t k, int bits) {
  const std::size_t bit = k * static_cast<std::size_t>(bits);
  const unsigned off = static_cast<unsigned>(bit % 32);
  std::uint64_t v = word(bit / 32) >> off;
  if (off + static_cast<unsigned>(bits) > 32) v |= static_cast<std::uint64_t>(word(bit / 32 + 1)) << (32 - off);
  return static_cast<unsigned>(v & ((1u << bits) - 1u));
}

// AutoAWQ's GEMM order: nibble n of a word holds output 8j + kAwqOrder[n]; output 8j + k sits in
// nibble kAwqNibble[k] (the inverse).
constexpr int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};

const char* stored_dtype_name(const StoredTensor& t) {
  if (t.int32) return "I32";
  if (t.packed) return "U8";
  return t.dtype == DType::kF16 ? "F16" : t.dtype == DType::kBF16 ? "BF16" : "F32";
}

}  // namespace

std::optional<Matrix> import_quantized_linear(const HfQuantConfig& q, const TensorIndex& tensors, const std::string& base,
                                              int rows, int cols, const std::vector<int>& src_row, WeightBuilder& wb) {
  const auto qw_it = tensors.find(base + ".qweight");
  if (qw_it == tensors.end()) return std::nullopt;
  const StoredTensor& qweight = qw_it->second;
  const std::string& file = qweight.file->path();
  const bool gptq = q.method == "gptq";
  const int bits = q.bits;
  const int per_word = 32 / bits;  // 3-bit: the stream packs 32 values in 3 words
  const int align = bits == 3 ? 32 : per_word;
  if (cols % align != 0 || rows % align != 0)
    throw Error(fmt::format("'{}': tensor '{}.qweight': a {}x{} linear (out x in) cannot be packed as {} {}-bit "
                            "(both dimensions must be multiples of {})",
                            file, base, rows, cols, gptq ? "AutoGPTQ" : "AutoAWQ", bits, align));
  const int gs = q.group_size > 0 ? q.group_size : cols;  // the checkpoint's groups
  const int ng = (cols + gs - 1) / gs;
  const int packed_group = q.group_size > 0 ? q.group_size : (cols + 31) / 32 * 32;  // kQ4Group's (one group)

  auto tensor = [&](const std::string& suffix, bool required) -> const StoredTensor* {
    const auto it = tensors.find(base + suffix);
    if (it != tensors.end()) return &it->second;
    if (required) throw Error(fmt::format("'{}': tensor '{}{}' not found (needed with '{}.qweight')", file, base, suffix, base));
    return nullptr;
  };
  auto check = [&](const StoredTensor& t, const std::string& suffix, bool int32, std::vector<std::int64_t> shape,
                   const char* layout) {
    if (t.int32 != int32 || (!int32 && t.dtype != DType::kF16) || t.packed)
      throw Error(fmt::format("'{}': tensor '{}{}' has dtype {}, expected {}", t.file->path(), base, suffix,
                              stored_dtype_name(t), int32 ? "I32" : "F16"));
    if (t.shape != shape)
      throw Error(fmt::format("'{}': tensor '{}{}' has shape {}, expected {} ({} for a {}x{} linear)", t.file->path(), base,
                              suffix, shape_str(t.shape), shape_str(shape), layout, rows, cols));
  };
  const StoredTensor& qzeros = *tensor(".qzeros", true);
  const StoredTensor& scales = *tensor(".scales", true);
  const StoredTensor* g_idx = gptq ? tensor(".g_idx", false) : nullptr;
  if (gptq) {
    check(qweight, ".qweight", true, {static_cast<std::int64_t>(cols) * bits / 32, rows}, "[in * bits / 32, out]");
  } else {
    check(qweight, ".qweight", true, {cols, rows / 8}, "[in, out / 8]");
  }
  check(qzeros, ".qzeros", true, {ng, gptq ? static_cast<std::int64_t>(rows) * bits / 32 : rows / 8},
        gptq ? "[n_groups, out * bits / 32]" : "[n_groups, out / 8]");
  check(scales, ".scales", false, {ng, rows}, "[n_groups, out]");
  if (g_idx) check(*g_idx, ".g_idx", true, {cols}, "[in]");

  // Group of each input column, then the stable order of the columns by group.
  std::vector<int> group(static_cast<std::size_t>(cols));
  for (int c = 0; c < cols; ++c) {
    const int g = g_idx ? static_cast<std::int32_t>(word_at(*g_idx, static_cast<std::size_t>(c))) : c / gs;
    if (g < 0 || g >= ng)
      throw Error(fmt::format("'{}': tensor '{}.g_idx' has group {} at input column {}, outside [0, {})", g_idx->file->path(),
                              base, g, c, ng));
    group[static_cast<std::size_t>(c)] = g;
  }
  // Sorted by group, the columns must form runs of gs (AutoGPTQ's act-order groups do: each is
  // gs consecutive columns of the visiting order).
  std::vector<int> count(static_cast<std::size_t>(ng));
  for (int g : group) ++count[static_cast<std::size_t>(g)];
  for (int g = 0; g < ng; ++g)
    if (count[static_cast<std::size_t>(g)] != std::min(gs, cols - g * gs))
      throw Error(fmt::format("'{}': tensor '{}.g_idx' gives group {} {} columns; imported groups must have {} columns "
                              "(the last may be shorter)", g_idx->file->path(), base, g, count[static_cast<std::size_t>(g)],
                              std::min(gs, cols - g * gs)));
  std::vector<std::int32_t> perm(static_cast<std::size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return group[static_cast<std::size_t>(a)] < group[static_cast<std::size_t>(b)]; });
  bool identity = true;
  for (int p = 0; p < cols; ++p) identity = identity && perm[static_cast<std::size_t>(p)] == p;

  // Zero points [ng][rows] and scales, in the checkpoint's output order.
  const unsigned mask = (1u << bits) - 1u;
  auto zero = [&](int g, int o) -> std::uint8_t {
    const std::size_t words = gptq ? static_cast<std::size_t>(rows) * bits / 32 : static_cast<std::size_t>(rows) / 8;
    const std::size_t row0 = static_cast<std::size_t>(g) * words;
    if (!gptq) return static_cast<std::uint8_t>((word_at(qzeros, row0 + o / 8) >> (4 * kAwqNibble[o % 8])) & 0xFu);
    const unsigned z = stream_value([&](std::size_t i) { return word_at(qzeros, row0 + i); }, static_cast<std::size_t>(o), bits);
    return static_cast<std::uint8_t>(q.zero_plus_one ? (z + 1u) & mask : z);
  };

  // The checkpoint's codes as [out][in], decoded in one pass over the words in memory order.
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  std::vector<std::uint8_t> q_oi(n);
  if (!gptq) {
    const std::size_t words = static_cast<std::size_t>(rows) / 8;
    for (std::size_t i = 0; i < static_cast<std::size_t>(cols); ++i)
      for (std::size_t j = 0; j < words; ++j) {
        const std::uint32_t w = word_at(qweight, i * words + j);
        for (std::size_t k = 0; k < 8; ++k) q_oi[(8 * j + k) * cols + i] = static_cast<std::uint8_t>((w >> (4 * kAwqNibble[k])) & 0xFu);
      }
  } else if (bits == 4) {
    for (std::size_t wr = 0; wr < static_cast<std::size_t>(cols) / 8; ++wr)
      for (std::size_t o = 0; o < static_cast<std::size_t>(rows); ++o) {
        const std::uint32_t w = word_at(qweight, wr * rows + o);
        for (std::size_t k = 0; k < 8; ++k) q_oi[o * cols + 8 * wr + k] = static_cast<std::uint8_t>((w >> (4 * k)) & 0xFu);
      }
  } else {  // 3 bits: values straddle words, read through the bit stream
    for (std::size_t o = 0; o < static_cast<std::size_t>(rows); ++o)
      for (std::size_t i = 0; i < static_cast<std::size_t>(cols); ++i)
        q_oi[o * cols + i] = static_cast<std::uint8_t>(
            stream_value([&](std::size_t j) { return word_at(qweight, j * static_cast<std::size_t>(rows) + o); }, i, bits));
  }

  std::vector<std::uint8_t> codes(n), zeros(static_cast<std::size_t>(rows) * ng);
  std::vector<float> scale(zeros.size());
  for (int r = 0; r < rows; ++r) {
    const int o = src_row.empty() ? r : src_row[static_cast<std::size_t>(r)];
    const std::uint8_t* from = q_oi.data() + static_cast<std::size_t>(o) * cols;
    std::uint8_t* to = codes.data() + static_cast<std::size_t>(r) * cols;
    if (identity) std::memcpy(to, from, static_cast<std::size_t>(cols));
    else
      for (int p = 0; p < cols; ++p) to[p] = from[perm[static_cast<std::size_t>(p)]];
    for (int g = 0; g < ng; ++g) {
      std::uint16_t s16;
      std::memcpy(&s16, scales.data + 2 * (static_cast<std::size_t>(g) * rows + o), 2);
      scale[static_cast<std::size_t>(r) * ng + g] = f16_to_f32(s16);  // pack_q4_group stores it back as the same f16
      zeros[static_cast<std::size_t>(r) * ng + g] = zero(g, o);
    }
  }
  const std::vector<std::byte> blob =
      identity ? pack_q4_group(rows, cols, bits, packed_group, codes.data(), scale.data(), zeros.data())
               : pack_q4_group_permuted(rows, cols, bits, packed_group, codes.data(), scale.data(), zeros.data(), perm.data());
  std::byte* owned = wb.allocate(blob.size());
  std::memcpy(owned, blob.data(), blob.size());
  return packed_matrix(DType::kQ4Group, rows, cols, owned);
}

}  // namespace qmeter::engine
