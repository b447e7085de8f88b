// Quantized model folders: every method's in-memory result written by write_quantized_model()
// and loaded back by the engine's loader gives bit-identical logits; `qmeter quantize` end to
// end (then `qmeter generate` on its folder); bad flags and corrupt packed tensors are refused.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/engine/model.h"
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
  const CliRun q = run("quantize --model " + model_path + " --method w4a16-rtn --group-size 32 --out " + out, scratch);
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
  for (const Bad& b : {Bad{"--method awq --bits 5", "--bits 5: method awq supports 4"},
                       Bad{"--method int2-magic", "unknown quantization method 'int2-magic'"},
                       Bad{"--method w4a16-rtn --group-size 128", "--group-size 128 is larger than layer wq (64"},
                       Bad{"--method nf4 --group-size 64", "blocks are 64"},
                       Bad{"--method smoothquant-w8a8 --alpha 2", "--alpha 2: must be within [0, 1]"}}) {
    const CliRun r = run(base + b.args, scratch);
    EXPECT_EQ(r.exit_code, 2) << b.args << ": " << r.err;
    EXPECT_NE(r.err.find(b.message), std::string::npos) << b.args << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(scratch + "/x/model.safetensors"));
}
