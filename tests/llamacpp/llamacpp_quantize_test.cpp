// qmeter's llama-quantize presets against llama.cpp itself (llamacpp_lib.h): from one F16 GGUF
// file, llama.cpp's llama_model_quantize (what `llama-quantize in.gguf out.gguf <preset> 2` runs,
// no importance matrix) and qmeter's quantizer (the library path of `qmeter quantize
// --quantization <preset>`: load_quantized + write_quantized_model) must write, tensor by tensor,
// the same ggml type (the mixture) and the same bytes.
//
// Two sources: stories260K (dim 64, ffn 172: every K-quant falls back per tensor, ffn_down's 172
// columns are not even whole 32-blocks, the classifier is tied) and a random model whose widths
// are whole 256-weight super-blocks (8 layers, so use_more_bits picks some layers and not others;
// 4 query heads on 1 kv head, so the n_gqa >= 4 rules apply), where every K-quant and IQ4 block
// quantizer runs. All of llama.cpp's importance-free quantizers are deterministic (no random
// numbers, no thread-count dependence: rows are independent), so every byte must match.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "gguf_tensors.h"
#include "llamacpp_lib.h"
#include "qmeter/engine/gguf_writer.h"
#include "qmeter/engine/model.h"
#include "qmeter/quant/quantize.h"
#include "qmeter/quant/quantized_model.h"
#include "quant/gguf_test_model.h"
#include "test_support.h"

using namespace qmeter;
namespace qt = qmeter::testing;
using qmeter::testing::GgufStoredTensor;

namespace {

struct Preset {
  const char* name;  // qmeter's method name
  int ftype;         // llama.cpp's llama_ftype
};
const Preset kPresets[] = {
    {"q8_0", qt::llama_ftype::kQ8_0},     {"q4_0", qt::llama_ftype::kQ4_0},
    {"q4_1", qt::llama_ftype::kQ4_1},     {"q5_0", qt::llama_ftype::kQ5_0},
    {"q5_1", qt::llama_ftype::kQ5_1},     {"q2_k", qt::llama_ftype::kQ2_K},
    {"q3_k_m", qt::llama_ftype::kQ3_K_M}, {"q4_k_m", qt::llama_ftype::kQ4_K_M},
    {"q5_k_m", qt::llama_ftype::kQ5_K_M}, {"q6_k", qt::llama_ftype::kQ6_K},
    {"iq4_nl", qt::llama_ftype::kIQ4_NL}, {"iq4_xs", qt::llama_ftype::kIQ4_XS},
};

// Writes `model` (loaded with f16 weights) as an F16 GGUF file with the source's tokenizer.
std::string write_f16(const engine::Model& model, const std::string& source_spec, const std::string& path) {
  const auto vocab = engine::gguf_vocab_for_source(model, source_spec);
  engine::GgufWriteOptions o;
  o.name = "f16 source";
  o.vocab = vocab ? &*vocab : nullptr;
  o.file_type = qt::llama_ftype::kF16;
  engine::write_gguf_model(model, path, o);
  return path;
}

engine::LoadOptions f16() {
  engine::LoadOptions o;
  o.weight_dtype = engine::DType::kF16;
  return o;
}

// Quantizes `src` with llama.cpp and with qmeter and compares every tensor. Returns one line per
// preset for the log ("q4_k_m: 47/47 tensors identical").
void expect_same_files(const qt::LlamaCpp& l, const std::string& src, const std::string& dir, const Preset& p) {
  const std::string theirs = dir + "/llamacpp-" + p.name + ".gguf", ours = dir + "/qmeter-" + p.name + ".gguf";
  const std::string err = qt::llamacpp_quantize(l, src, theirs, p.ftype);
  ASSERT_EQ(err, "") << p.name;
  auto model = quant::load_quantized(src, p.name, {}, "");
  quant::write_quantized_model(*model, src, ours, p.name, {});

  const auto a = qt::read_gguf_tensors(theirs), b = qt::read_gguf_tensors(ours);
  std::vector<std::string> names_a, names_b;
  for (const auto& [n, t] : a) names_a.push_back(n);
  for (const auto& [n, t] : b) names_b.push_back(n);
  ASSERT_EQ(names_b, names_a) << p.name << ": the two files hold different tensors";
  int same = 0;
  std::string mixture;
  for (const auto& [name, ta] : a) {
    const GgufStoredTensor& tb = b.at(name);
    mixture += " " + name + "=" + qt::ggml_type_label(ta.ggml_type);
    EXPECT_EQ(tb.dims, ta.dims) << p.name << " " << name;
    if (tb.ggml_type != ta.ggml_type) {
      ADD_FAILURE() << p.name << " " << name << ": llama.cpp stores " << qt::ggml_type_label(ta.ggml_type)
                    << ", qmeter " << qt::ggml_type_label(tb.ggml_type);
      continue;
    }
    if (tb.bytes != ta.bytes) {
      std::size_t at = 0;
      while (at < ta.bytes.size() && at < tb.bytes.size() && ta.bytes[at] == tb.bytes[at]) ++at;
      std::size_t n_diff = 0;
      for (std::size_t i = 0; i < std::min(ta.bytes.size(), tb.bytes.size()); ++i) n_diff += ta.bytes[i] != tb.bytes[i];
      ADD_FAILURE() << p.name << " " << name << " (" << qt::ggml_type_label(ta.ggml_type) << ", "
                    << ta.bytes.size() << " bytes): first differing byte at " << at << ", " << n_diff
                    << " bytes differ";
      continue;
    }
    ++same;
  }
  std::printf("[ llama.cpp ] %s: %d/%zu tensors identical (type and bytes);%s\n", p.name, same, a.size(),
              mixture.c_str());
}

// gtest prints the parameter into the ctest name: the preset's name, not its bytes.
void PrintTo(const Preset& p, std::ostream* os) { *os << p.name; }

class LlamaCppQuantize : public ::testing::TestWithParam<Preset> {};

}  // namespace

TEST_P(LlamaCppQuantize, Stories260KSameMixtureAndBytesAsLlamaQuantize) {
  QMETER_REQUIRE_LLAMACPP(l);
  QMETER_REQUIRE_SHARED_DATA(bin, "models/stories260K/stories260K.bin");
  const std::string dir = qt::test_output_dir("llamacpp_quantize");
  const std::string src = write_f16(*engine::load_model(bin, f16()), bin, dir + "/stories260K-f16.gguf");
  expect_same_files(l, src, dir, GetParam());
}

TEST_P(LlamaCppQuantize, WholeSuperBlockShapeSameMixtureAndBytesAsLlamaQuantize) {
  QMETER_REQUIRE_LLAMACPP(l);
  const std::string dir = qt::test_output_dir("llamacpp_quantize");
  const std::string f32 = qt::random_f32_gguf(dir, /*n_layers=*/8, /*n_kv_heads=*/1, /*seed=*/17);
  const std::string src = write_f16(*engine::load_model(f32, f16()), f32, dir + "/random-256-f16.gguf");
  expect_same_files(l, src, dir, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Presets, LlamaCppQuantize, ::testing::ValuesIn(kPresets),
                         [](const ::testing::TestParamInfo<Preset>& i) { return std::string(i.param.name); });
