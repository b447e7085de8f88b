// Quantized model folders: every method's in-memory result written by write_quantized_model()
// and loaded back by the engine's loader gives bit-identical logits; `qmeter quantize` end to
// end (then `qmeter generate` on its folder); bad flags and corrupt packed tensors are refused.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/engine/session.h"
#include "qmeter/quant/quantize.h"
#include "qmeter/quant/quantized_model.h"
#include "test_support.h"

using namespace qmeter;
namespace fs = std::filesystem;

namespace {

constexpr const char* kModel = "models/stories260K/stories260K.bin";
const std::vector<int> kTokens = {1, 403, 407, 261, 378, 429, 271, 270, 1, 282, 45, 300, 511, 259, 3, 330};

std::vector<float> logits(const engine::Model& m) {
  engine::Session s(m, nullptr);
  auto l = s.feed_all(kTokens);
  return {l.begin(), l.end()};
}

struct CliRun {
  int exit_code = -1;
  std::string out, err;
};
CliRun run(const std::string& args, const std::string& scratch) {
  CliRun r;
  const std::string err_file = scratch + "/stderr.txt";
  FILE* p = ::popen((qmeter::testing::qmeter_bin() + " " + args + " 2>" + err_file).c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_file);
  r.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return r;
}

}  // namespace

TEST(QuantizedModelFolder, EveryMethodRoundTripsBitIdentical) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  const std::map<std::string, std::string> calib = {{"calib-samples", "4"}, {"calib-seq-len", "128"}};
  const std::vector<std::pair<std::string, std::map<std::string, std::string>>> cases = {
      {"bf16", {}},
      {"w8a16", {}},
      {"w4a16-rtn", {{"group-size", "32"}, {"sym", "true"}}},
      {"gptq", [&] { auto o = calib; o["group-size"] = "32"; o["act-order"] = "true"; return o; }()},
      {"awq", [&] { auto o = calib; o["group-size"] = "32"; return o; }()},
      {"nf4", {{"double-quant", "true"}}},
      {"fp8-w8a16", {}},
      {"fp8-w8a8", {}},
      {"smoothquant-w8a8", calib},
  };
  for (const auto& [method, opts] : cases) {
    SCOPED_TRACE(method);
    auto q = quant::load_quantized(model_path, method, opts, "");
    const std::string dir = qmeter::testing::test_output_dir("quantized_" + method);
    const quant::WrittenModel w = quant::write_quantized_model(*q, model_path, dir, method, opts);
    EXPECT_TRUE(w.tokenizer);
    auto back = engine::load_model(dir);
    EXPECT_EQ(back->format, "hf");
    EXPECT_EQ(back->weight_dtype, q->weight_dtype);
    EXPECT_EQ(back->weights.layers[1].wk.dtype, q->weights.layers[1].wk.dtype);
    EXPECT_EQ(back->weight_bytes(), q->weight_bytes());
    EXPECT_NE(back->description.find("quantized: " + method), std::string::npos) << back->description;
    ASSERT_NE(back->tokenizer, nullptr);
    EXPECT_EQ(back->tokenizer->encode("Once upon a time", true), q->tokenizer->encode("Once upon a time", true));
    EXPECT_EQ(logits(*back), logits(*q));
  }
}

TEST(QuantizedModelFolder, QuantizedLmHeadIsPackedSharedWithTheEmbeddingAndRoundTrips) {
  // --quantize-lm-head: the tied classifier becomes the method's packed format, the embedding
  // lookup reads the same quantized rows, and the folder reloads bit-identically. Ground truth
  // for the values: each embedding row equals the round-to-nearest dequantization of the f32 row.
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  auto ref = engine::load_model(model_path);
  for (const std::string method : {"w8a16", "w4a16-rtn", "smoothquant-w8a8"}) {
    SCOPED_TRACE(method);
    std::map<std::string, std::string> opts = {{"quantize-lm-head", "true"}};
    if (method == "w4a16-rtn") opts["group-size"] = "32";
    if (method == "smoothquant-w8a8") opts.insert({{"calib-samples", "4"}, {"calib-seq-len", "128"}});
    auto q = quant::load_quantized(model_path, method, opts, "");
    const engine::ModelWeights& w = q->weights;
    EXPECT_TRUE(engine::is_packed(w.classifier.dtype)) << engine::dtype_name(w.classifier.dtype);
    EXPECT_EQ(w.token_embedding.data, w.classifier.data);  // tied: one quantized matrix
    EXPECT_NE(q->description.find("lm_head too"), std::string::npos) << q->description;
    // Row 7 of the embedding against its own quantization: within half a step of the row's scale.
    std::vector<float> got(static_cast<std::size_t>(w.classifier.cols)), exact(got.size());
    engine::matrix_row_to_f32(w.token_embedding, 7, got.data());
    engine::matrix_row_to_f32(ref->weights.token_embedding, 7, exact.data());
    float amax = 0;
    for (float v : exact) amax = std::max(amax, std::fabs(v));
    const float step = method == "w4a16-rtn" ? 2 * amax / 15 : amax / 127;
    for (std::size_t c = 0; c < got.size(); ++c) EXPECT_LE(std::fabs(got[c] - exact[c]), 0.5f * step + 1e-6f) << c;
    const std::string dir = qmeter::testing::test_output_dir("lm_head_" + method);
    quant::write_quantized_model(*q, model_path, dir, method, opts);
    auto back = engine::load_model(dir);
    EXPECT_EQ(back->weights.classifier.dtype, w.classifier.dtype);
    EXPECT_EQ(back->weight_bytes(), q->weight_bytes());
    EXPECT_EQ(logits(*back), logits(*q));
    // Quantizing the head costs a little, not everything: logits stay close to the head-in-bf16 model.
    opts.erase("quantize-lm-head");
    const std::vector<float> with_head = logits(*q), without = logits(*quant::load_quantized(model_path, method, opts, ""));
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < with_head.size(); ++i) diff += std::fabs(with_head[i] - without[i]), norm += std::fabs(without[i]);
    EXPECT_LT(diff / norm, method == "w4a16-rtn" ? 0.15 : 0.03);
  }
  EXPECT_THROW(quant::parse_options("bf16", {{"quantize-lm-head", "true"}}), UsageError);
  EXPECT_THROW(quant::parse_options("w8a16", {{"quantize-lm-head", "maybe"}}), UsageError);
}

TEST(QuantizedModelFolder, CorruptPackedTensorIsRefusedByName) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  auto q = quant::load_quantized(model_path, "w8a16", {}, "");
  const std::string dir = qmeter::testing::test_output_dir("quantized_corrupt");
  quant::write_quantized_model(*q, model_path, dir, "w8a16", {});
  const std::string st = dir + "/model.safetensors";
  std::string bytes;
  {
    std::ifstream in(st, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::size_t magic = bytes.find("PQCK");
  ASSERT_NE(magic, std::string::npos);
  bytes[magic] = 'X';
  std::ofstream(st, std::ios::binary) << bytes;
  try {
    engine::load_model(dir);
    FAIL() << "a packed tensor with a bad magic loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.q_proj.qmeter_packed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a qmeter packed tensor"), std::string::npos) << e.what();
  }
}

TEST(QuantizeCli, WritesAFolderThatGenerateLoads) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  const std::string scratch = qmeter::testing::test_output_dir("quantize_cli");
  const std::string out = scratch + "/stories-w4";
  const CliRun q = run("quantize --model " + model_path + " --quantization w4a16-rtn --group-size 32 --out " + out, scratch);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("wrote " + out), std::string::npos) << q.out;
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  // The folder is the same model as quantizing at load time.
  auto ref = quant::load_quantized(model_path, "w4a16-rtn", {{"group-size", "32"}}, "");
  EXPECT_EQ(logits(*engine::load_model(out)), logits(*ref));
  const CliRun g = run("generate --model " + out + " --prompt 'Once upon a time' --max-tokens 8 --threads 1", scratch);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(g.err.find("quantized: w4a16-rtn"), std::string::npos) << g.err;
  EXPECT_FALSE(g.out.empty());
}

TEST(QuantizeCli, InvalidCombinationsExitWithUsageErrors) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  const std::string scratch = qmeter::testing::test_output_dir("quantize_cli_bad");
  const std::string base = "quantize --model " + model_path + " --out " + scratch + "/x ";
  struct Bad {
    std::string args, message;
  };
  for (const Bad& b : {Bad{"--quantization awq --bits 5", "--bits 5: method awq supports 4"},
                       Bad{"--quantization int2-magic", "unknown quantization method 'int2-magic'"},
                       Bad{"--quantization w4a16-rtn --group-size 128", "--group-size 128 is larger than layer wq (64"},
                       Bad{"--quantization nf4 --group-size 64", "blocks are 64"},
                       Bad{"--quantization smoothquant-w8a8 --alpha 2", "--alpha: 2 must be at most 1"}}) {
    const CliRun r = run(base + b.args, scratch);
    EXPECT_EQ(r.exit_code, 2) << b.args << ": " << r.err;
    EXPECT_NE(r.err.find(b.message), std::string::npos) << b.args << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(scratch + "/x/model.safetensors"));
}
