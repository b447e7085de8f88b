// `qmeter serve --kv-cache-dtype int8|fp8`: the same --kv-cache-mb holds more tokens (as
// /metrics and the startup line say), and a streamed greedy reply equals the in-process engine
// with the same quantized KV cache.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qmeter/engine/kv_cache.h"
#include "qmeter/engine/session.h"
#include "serve_process.h"

using namespace qmeter;
using nlohmann::json;

namespace {

using qmeter::testing::http_fetch;

// The value of the metric line "NAME{...} VALUE", or -1.
double metric(const std::string& text, const std::string& name) {
  const auto pos = text.find("\n" + name + "{");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(text.find("} ", pos) + 2));
}

struct Capacity {
  double tokens = -1;
  std::string metrics, log;
};

Capacity capacity(const std::string& model, const std::string& dtype, const std::string& mib) {
  const auto dir = qmeter::testing::test_output_dir("kv_serve_capacity_" + dtype);
  std::string base;
  auto server = qmeter::testing::spawn_serve(dir, {"--model", model, "--kv-cache-mb", mib, "--kv-cache-dtype", dtype}, base);
  Capacity c;
  c.metrics = http_fetch(base + "/metrics").second;
  c.tokens = metric(c.metrics, "qmeter:kv_cache_capacity_tokens");
  server.stop(5);
  c.log = qmeter::read_file(dir + "/serve.log");
  return c;
}

}  // namespace

// Expected capacities are derived by hand from the row layout (kv_cache.h): blocks of 16
// positions, n_layers * 2 (K, V) rows per position; an f32 row is kv_dim * 4 bytes, an int8 /
// fp8 row kv_dim bytes of codes + 4 bytes of scale per kv head.
TEST(ServeKvQuant, SameMemoryHoldsMoreTokens) {
  // synthetic:small: 8 layers, kv_dim 512 = 8 heads x 64. f32 block 8*2*16*2048 = 512 KiB: 16 MiB
  // is 32 blocks = 512 tokens. int8 row 512 + 32 = 544 bytes, block 139264 bytes: 120 blocks =
  // 1920 tokens, 3.75x (the 4x of the element size less the scales' 6%).
  const Capacity f32 = capacity("synthetic:small", "f32", "16");
  const Capacity i8 = capacity("synthetic:small", "int8", "16");
  const Capacity f8 = capacity("synthetic:small", "fp8", "16");
  EXPECT_EQ(f32.tokens, 512) << f32.log << f32.metrics;
  EXPECT_EQ(i8.tokens, 1920) << i8.log << i8.metrics;
  EXPECT_EQ(f8.tokens, 1920) << f8.log << f8.metrics;
  EXPECT_NE(i8.metrics.find("vllm:cache_config_info{model_name=\"synthetic:small\",block_size=\"16\",cache_dtype=\"int8\","
                            "enable_prefix_caching=\"True\",num_gpu_blocks=\"120\"} 1"),
            std::string::npos)
      << i8.metrics;
  EXPECT_NE(i8.log.find("120 KV blocks = 1920 tokens (int8 KV cache)"), std::string::npos) << i8.log;
  EXPECT_NE(f8.log.find("kv-cache fp8"), std::string::npos) << f8.log;  // in the model description
  EXPECT_NE(f32.log.find("32 KV blocks = 512 tokens (f32 KV cache)"), std::string::npos) << f32.log;
}

TEST(ServeKvQuant, StreamedGreedyReplyEqualsTheInProcessInt8Engine) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto model = engine::load_model(model_path);
  engine::set_kv_cache_dtype(*model, engine::KvDType::kInt8);
  const auto dir = qmeter::testing::test_output_dir("kv_serve_stream");
  // stories260K: 5 layers, kv_dim 32 = 4 heads x 8. f32 block 5*2*16*128 = 20480 bytes: 1 MiB is
  // 51 blocks = 816 tokens. int8 row 32 + 16 = 48 bytes (the scales weigh much at head_dim 8),
  // block 7680 bytes: 136 blocks = 2176 tokens.
  std::string base;
  auto server = qmeter::testing::spawn_serve(dir, {"--model", model_path, "--kv-cache-mb", "1", "--kv-cache-dtype", "int8"}, base);
  ASSERT_EQ(http_fetch(base + "/health").first, 200) << qmeter::read_file(dir + "/serve.log");
  EXPECT_EQ(metric(http_fetch(base + "/metrics").second, "qmeter:kv_cache_capacity_tokens"), 2176);
  for (const char* prompt : {"Once upon a time", "Lily and Ben went to the park"}) {
    engine::Session session(*model, nullptr);
    engine::GenerateOptions go;
    go.max_tokens = 64;
    std::vector<int> ref;
    engine::generate(session, model->tokenizer->encode(prompt, true), go, model->tokenizer->stop_ids(),
                     [&](int t) { ref.push_back(t); });
    json req = {{"model", "stories260K.bin"}, {"prompt", prompt}, {"max_tokens", 64}, {"temperature", 0}, {"stream", true}};
    auto [code, body] = http_fetch(base + "/v1/completions", req.dump());
    ASSERT_EQ(code, 200) << body;
    std::string text;
    bool done = false;
    for (std::size_t pos = 0; (pos = body.find("data: ", pos)) != std::string::npos;) {
      const auto end = body.find("\n\n", pos);
      const std::string data = body.substr(pos + 6, end - pos - 6);
      pos = end;
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      const auto c = json::parse(data);
      if (!c["choices"].empty()) text += c["choices"][0]["text"].get<std::string>();
    }
    EXPECT_TRUE(done) << body;
    EXPECT_EQ(text, model->tokenizer->decode(ref)) << prompt;
  }
  server.stop(5);
}

TEST(ServeKvQuant, BadDtypeIsAUsageError) {
  const auto dir = qmeter::testing::test_output_dir("kv_serve_bad");
  SpawnOptions so;
  so.argv = {qmeter::testing::qmeter_bin(), "serve", "--model", "synthetic:tiny", "--port", "0", "--kv-cache-dtype", "int4"};
  so.log_path = dir + "/log.txt";
  auto p = ChildProcess::spawn(so);
  EXPECT_EQ(p.wait(60).value_or(-1), 2);
  const std::string log = qmeter::read_file(so.log_path);
  EXPECT_NE(log.find("--kv-cache-dtype: 'int4' is not a KV-cache dtype (expected f32, int8 or fp8)"), std::string::npos)
      << log;
}
