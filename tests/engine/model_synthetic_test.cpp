// synthetic:SHAPE models, LLaMA-3 RoPE scaling, and `qmeter generate` end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "model_test_util.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/model.h"
#include "test_support.h"

namespace qmeter::engine {
namespace {

using namespace qmeter::engine::testing;

TEST(SyntheticModel, SeededShapesAreLabelledAndReproducible) {
  auto a = load_model("synthetic:tiny:f32:7");
  auto b = load_model("synthetic:tiny:f32:7");
  auto c = load_model("synthetic:tiny:f32:8");
  EXPECT_TRUE(a->synthetic);
  EXPECT_EQ(a->format, "synthetic");
  EXPECT_EQ(a->description.rfind("SYNTHETIC", 0), 0u) << a->description;
  EXPECT_NE(a->description.find("seed 7"), std::string::npos);
  EXPECT_EQ(a->config.dim, 64);
  EXPECT_EQ(a->weight_dtype, DType::kF32);
  const std::vector<int> ids = {1, 5, 300, 9};
  const auto la = all_logits(*a, ids);
  EXPECT_EQ(la, all_logits(*b, ids));
  EXPECT_GT(max_abs_diff(la, all_logits(*c, ids)), 1e-3f);
  for (float v : la) ASSERT_TRUE(std::isfinite(v));
  // Default dtype bf16, and LoadOptions picks it when the spec does not.
  EXPECT_EQ(load_model("synthetic:tiny")->weight_dtype, DType::kBF16);
  LoadOptions f16;
  f16.weight_dtype = DType::kF16;
  EXPECT_EQ(load_model("synthetic:tiny", f16)->weights.layers[0].w_up.dtype, DType::kF16);
}

TEST(SyntheticModel, SmallShapeHasItsParameterCountAndBytes) {
  // synthetic:small: dim 512, hidden 1376, 8 layers, 8 heads (no GQA), vocab 32000, untied.
  auto m = load_model("synthetic:small:bf16");
  const std::size_t matrices = 2ull * 32000 * 512 + 8ull * (4 * 512 * 512 + 3 * 512 * 1376);
  const std::size_t norms = 8ull * 2 * 512 + 512;
  EXPECT_EQ(m->weight_bytes(), 2 * matrices + 4 * norms);
  // A decode step reads every layer matrix and the classifier, not the embedding table.
  EXPECT_EQ(m->decode_weight_bytes(), 2 * (matrices - 32000ull * 512));
  EXPECT_FALSE(m->config.tied_embeddings);
  EXPECT_NE(m->description.find("58.07M params"), std::string::npos) << m->description;
}

TEST(SyntheticModel, BadSpecsAreUsageErrors) {
  EXPECT_THROW(load_model("synthetic:nope"), UsageError);
  EXPECT_THROW(load_model("synthetic:tiny:f8"), UsageError);
  EXPECT_THROW(load_model("synthetic:tiny:f32:x"), UsageError);
  EXPECT_THROW(load_model("synthetic:tiny:f32:1:extra"), UsageError);
}

TEST(RopeScaling, Llama3FrequenciesFollowTheThreeBands) {
  // LLaMA-3.1 settings: theta 500000, factor 8, low 1, high 4, original context 8192, head_dim 128.
  auto m = load_model("synthetic:tiny:f32");
  // An HF folder whose config.json asks for llama3 scaling (head_dim 128, one head).
  const std::string dir = qmeter::testing::test_output_dir("rope_llama3");
  auto cfg = hf_config(*m);
  cfg["num_attention_heads"] = 1;
  cfg["num_key_value_heads"] = 1;
  cfg["hidden_size"] = 128;
  cfg["rope_theta"] = 500000.0;
  cfg["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  std::ofstream(dir + "/config.json") << cfg.dump();
  std::vector<NamedTensor> tensors;
  const int d = 128, h = 172, v = 512;
  tensors.push_back({"model.embed_tokens.weight", {v, d}, std::vector<float>(v * d, 0.01f)});
  for (int l = 0; l < 5; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    for (const char* n : {"input_layernorm.weight", "post_attention_layernorm.weight"})
      tensors.push_back({p + n, {d}, std::vector<float>(d, 1.0f)});
    for (const char* n : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                          "self_attn.o_proj.weight"})
      tensors.push_back({p + n, {d, d}, std::vector<float>(d * d, 0.01f)});
    tensors.push_back({p + "mlp.gate_proj.weight", {h, d}, std::vector<float>(h * d, 0.01f)});
    tensors.push_back({p + "mlp.up_proj.weight", {h, d}, std::vector<float>(h * d, 0.01f)});
    tensors.push_back({p + "mlp.down_proj.weight", {d, h}, std::vector<float>(h * d, 0.01f)});
  }
  tensors.push_back({"model.norm.weight", {d}, std::vector<float>(d, 1.0f)});
  write_safetensors(dir + "/model.safetensors", tensors);
  auto hf = load_model(dir);
  const auto& inv = hf->weights.rope_inv_freq;
  ASSERT_EQ(inv.size(), 64u);
  for (int i = 0; i < 64; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 128);
    const double wavelen = 2 * std::numbers::pi / base;
    double expected;
    if (wavelen < 8192.0 / 4) expected = base;          // high frequency: kept
    else if (wavelen > 8192.0 / 1) expected = base / 8;  // low frequency: divided by the factor
    else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1 - smooth) * base / 8 + smooth * base;
    }
    EXPECT_NEAR(inv[static_cast<std::size_t>(i)], expected, 1e-6 * base + 1e-12) << "pair " << i;
  }
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_NEAR(inv[63], std::pow(500000.0, -126.0 / 128) / 8, 1e-12);
}

// ---- qmeter generate ------------------------------------------------------------------------

TEST(GenerateVerb, StreamsReferenceTextAndReportsTokensPerSecond) {
  QMETER_REQUIRE_SHARED_DATA(path, "models/stories260K/stories260K.bin");
  const std::string dir = qmeter::testing::test_output_dir("generate_verb");
  auto r = run_command(qmeter::testing::qmeter_bin() + " generate --model " + path + " --max-tokens 40 --threads 2", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", 0), 0u)
      << r.out;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("generated: 40 tokens"), std::string::npos) << r.err;

  // A prompt is echoed and continued; sampling with a seed is reproducible.
  const std::string cmd = qmeter::testing::qmeter_bin() + " generate --model " + path +
                          " --prompt 'Tom had a' --max-tokens 30 --temperature 0.9 --top-p 0.9 --seed 5";
  auto s1 = run_command(cmd, dir), s2 = run_command(cmd, dir);
  ASSERT_EQ(s1.exit_code, 0) << s1.err;
  EXPECT_EQ(s1.out.rfind("Tom had a", 0), 0u) << s1.out;
  EXPECT_EQ(s1.out, s2.out);
  EXPECT_GT(s1.out.size(), std::string("Tom had a").size() + 20);
}

TEST(GenerateVerb, SyntheticModelIsLabelled) {
  const std::string dir = qmeter::testing::test_output_dir("generate_synthetic");
  auto r = run_command(qmeter::testing::qmeter_bin() + " generate --model synthetic:tiny --prompt hi --max-tokens 5", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("SYNTHETIC"), std::string::npos) << r.err;
}

TEST(GenerateVerb, BadInputsExitWithUsageErrors) {
  const std::string dir = qmeter::testing::test_output_dir("generate_bad");
  const std::string bin = qmeter::testing::qmeter_bin();
  auto r = run_command(bin + " generate --model /nonexistent/model.bin", dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/nonexistent/model.bin"), std::string::npos) << r.err;
  r = run_command(bin + " generate --model synthetic:tiny --dtype q9", dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--dtype"), std::string::npos) << r.err;
  r = run_command(bin + " generate --model synthetic:tiny --top-p 2", dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--top-p"), std::string::npos) << r.err;
  r = run_command(bin + " generate", dir);
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace qmeter::engine
