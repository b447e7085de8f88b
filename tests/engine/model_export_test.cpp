// stories260K exported by the tests into a Hugging Face folder (safetensors + config.json, one
// file or sharded, F32 or BF16) and into GGUF must give the llama2.c load's logits; and every
// loader rejects corrupt files with an error naming the file and the tensor or field.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model_test_util.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/thread_pool.h"
#include "test_support.h"

namespace qmeter::engine {
namespace {

using namespace qmeter::engine::testing;
namespace fs = std::filesystem;

constexpr const char* kStoriesBin = "models/stories260K/stories260K.bin";
constexpr const char* kTokBin = "models/stories260K/tok512.bin";
const std::vector<int> kTokens = {1, 403, 407, 261, 378, 429, 271, 270, 1, 282, 45, 300, 511, 259, 3, 330};

std::string load_error(const std::string& spec) {
  try {
    load_model(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(HfModel, ExportedSafetensorsFolderGivesLlama2cLogits) {
  QMETER_REQUIRE_SHARED_DATA(path, kStoriesBin);
  auto ref = load_model(path);
  const std::string dir = qmeter::testing::test_output_dir("hf_export");
  export_hf(*ref, dir);
  auto hf = load_model(dir);
  EXPECT_EQ(hf->format, "hf");
  // q/k rows are un-permuted at load (as llama.cpp's converter does): interleaved RoPE, and
  // every row computes exactly what the llama2.c load computes.
  EXPECT_EQ(hf->config.rope_style, RopeStyle::kInterleaved);
  EXPECT_TRUE(hf->config.tied_embeddings);
  EXPECT_EQ(hf->tokenizer, nullptr);  // the export carries no tokenizer
  const auto a = all_logits(*ref, kTokens), b = all_logits(*hf, kTokens);
  EXPECT_LT(max_abs_diff(a, b), 1e-5f);
  EXPECT_EQ(a, b);
  // The q/k permutation matters: loading the unpermuted weights must not match.
  auto tensors = hf_tensors(*ref);
  for (auto& t : tensors)
    if (t.name.find("q_proj") != std::string::npos)
      t.values = matrix_f32(ref->weights.layers[static_cast<std::size_t>(std::stoi(t.name.substr(13)))].wq);
  write_safetensors(dir + "/model.safetensors", tensors);
  EXPECT_GT(max_abs_diff(a, all_logits(*load_model(dir), kTokens)), 1e-2f);
}

TEST(HfModel, ShardedAndUntiedExportGivesLlama2cLogits) {
  QMETER_REQUIRE_SHARED_DATA(path, kStoriesBin);
  auto ref = load_model(path);
  const std::string dir = qmeter::testing::test_output_dir("hf_sharded");
  export_hf(*ref, dir, "F32", 3);
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  auto hf = load_model(dir);
  EXPECT_LT(max_abs_diff(all_logits(*ref, kTokens), all_logits(*hf, kTokens)), 1e-5f);
  // An untied checkpoint (explicit lm_head) with a Qwen2-style zero attention bias is the same model.
  auto tensors = hf_tensors(*ref);
  tensors.push_back({"lm_head.weight", {512, 64}, matrix_f32(ref->weights.token_embedding)});
  for (int l = 0; l < 5; ++l)
    for (auto [proj, n] : {std::pair{"q", 64}, {"k", 32}, {"v", 32}})
      tensors.push_back({fmt::format("model.layers.{}.self_attn.{}_proj.bias", l, proj), {n}, std::vector<float>(n, 0.0f)});
  const std::string qdir = qmeter::testing::test_output_dir("hf_qwen2");
  auto cfg = hf_config(*ref);
  cfg["architectures"] = {"Qwen2ForCausalLM"};
  cfg["model_type"] = "qwen2";
  cfg["tie_word_embeddings"] = false;
  std::ofstream(qdir + "/config.json") << cfg.dump();
  write_safetensors(qdir + "/model.safetensors", tensors);
  auto qwen = load_model(qdir);
  EXPECT_TRUE(qwen->config.attention_bias);
  EXPECT_FALSE(qwen->config.tied_embeddings);
  EXPECT_LT(max_abs_diff(all_logits(*ref, kTokens), all_logits(*qwen, kTokens)), 1e-5f);
}

TEST(HfModel, Bf16SafetensorsMatchBf16ConversionOfLlama2c) {
  QMETER_REQUIRE_SHARED_DATA(path, kStoriesBin);
  auto ref = load_model(path);
  const std::string dir = qmeter::testing::test_output_dir("hf_bf16");
  export_hf(*ref, dir, "BF16");
  auto hf = load_model(dir);
  EXPECT_EQ(hf->weight_dtype, DType::kBF16);
  LoadOptions o;
  o.weight_dtype = DType::kBF16;
  auto ref_bf16 = load_model(path, o);
  EXPECT_LT(max_abs_diff(all_logits(*ref_bf16, kTokens), all_logits(*hf, kTokens)), 1e-5f);
  // Converting the bf16 folder to f32 at load keeps the values: decoded one token at a time
  // (the exact f32-accumulation path for both; batched bf16 matmuls may round activations to
  // bf16, see kernels.h) the logits agree.
  LoadOptions f;
  f.weight_dtype = DType::kF32;
  auto widened = load_model(dir, f);
  EXPECT_EQ(widened->weight_dtype, DType::kF32);
  EXPECT_EQ(matrix_f32(widened->weights.layers[2].w_down), matrix_f32(hf->weights.layers[2].w_down));
  EXPECT_LT(max_abs_diff(stepwise_logits(*widened, kTokens), stepwise_logits(*hf, kTokens)), 1e-4f);
}

TEST(GgufModel, ExportedGgufGivesLlama2cLogitsAndTokenizer) {
  QMETER_REQUIRE_SHARED_DATA(path, kStoriesBin);
  QMETER_REQUIRE_SHARED_DATA(tok, kTokBin);
  auto ref = load_model(path);
  const std::string dir = qmeter::testing::test_output_dir("gguf_export");
  gguf_of(*ref, tok).write(dir + "/stories260K.gguf");
  auto g = load_model(dir + "/stories260K.gguf");
  EXPECT_EQ(g->format, "gguf");
  EXPECT_EQ(g->config.rope_style, RopeStyle::kInterleaved);
  EXPECT_TRUE(g->config.tied_embeddings);
  EXPECT_LT(max_abs_diff(all_logits(*ref, kTokens), all_logits(*g, kTokens)), 1e-5f);
  // f32 tensors are 32-byte aligned in the file and used in place (memory-mapped).
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(g->weights.layers[0].wq.data) % 32, 0u);
  ASSERT_NE(g->tokenizer, nullptr);
  const std::string text = "Once upon a time, Lily saw a big red ball. \xC3\xA9!";
  EXPECT_EQ(g->tokenizer->encode(text, true), ref->tokenizer->encode(text, true));
  EXPECT_EQ(g->tokenizer->bos_id(), 1);
  EXPECT_EQ(g->tokenizer->eos_id(), 2);
}

TEST(GgufModel, Qwen2ArchitectureRunsRotateHalfRopeWithBiases) {
  QMETER_REQUIRE_SHARED_DATA(path, kStoriesBin);
  auto ref = load_model(path);
  const std::string dir = qmeter::testing::test_output_dir("gguf_qwen2");
  gguf_of(*ref, "", "qwen2").write(dir + "/m.gguf");
  auto g = load_model(dir + "/m.gguf");
  EXPECT_EQ(g->config.rope_style, RopeStyle::kHalf);
  EXPECT_TRUE(g->config.attention_bias);
  ASSERT_EQ(g->weights.layers[0].bq.size(), 64u);
  // Same model; only the order of the q.k sums differs (rotate-half pairs dims differently).
  EXPECT_LT(max_abs_diff(all_logits(*ref, kTokens), all_logits(*g, kTokens)), 1e-4f);
}

// ---- corrupt files -------------------------------------------------------------------------

TEST(HfModel, CorruptFoldersGiveErrorsNamingFileAndTensor) {
  QMETER_REQUIRE_SHARED_DATA(path, kStoriesBin);
  auto ref = load_model(path);
  const std::string dir = qmeter::testing::test_output_dir("hf_corrupt");
  export_hf(*ref, dir);
  const std::string st = dir + "/model.safetensors";
  const std::string good = read_bytes(st);

  write_bytes(st, good.substr(0, 5));
  std::string e = load_error(dir);
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated safetensors header"), std::string::npos) << e;

  std::string huge = good;
  const std::uint64_t len = 1ull << 40;
  std::memcpy(huge.data(), &len, 8);
  write_bytes(st, huge);
  e = load_error(dir);
  EXPECT_NE(e.find("bad safetensors header length"), std::string::npos) << e;

  write_bytes(st, good.substr(0, good.size() - 100));  // the last tensor runs past the end
  e = load_error(dir);
  EXPECT_NE(e.find("model.norm.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("outside"), std::string::npos) << e;

  std::string junk = good;  // break the JSON
  junk[8] = 'X';
  write_bytes(st, junk);
  e = load_error(dir);
  EXPECT_NE(e.find("JSON"), std::string::npos) << e;

  write_bytes(st, good);
  auto cfg = hf_config(*ref);
  cfg["intermediate_size"] = 160;  // every MLP tensor now has the wrong shape
  std::ofstream(dir + "/config.json") << cfg.dump();
  e = load_error(dir);
  EXPECT_NE(e.find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[172, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("expected [160, 64]"), std::string::npos) << e;

  cfg = hf_config(*ref);
  cfg["architectures"] = {"GPT2LMHeadModel"};
  cfg["model_type"] = "gpt2";
  std::ofstream(dir + "/config.json") << cfg.dump();
  e = load_error(dir);
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos) << e;

  cfg = hf_config(*ref);
  cfg.erase("num_hidden_layers");
  std::ofstream(dir + "/config.json") << cfg.dump();
  e = load_error(dir);
  EXPECT_NE(e.find("'num_hidden_layers' missing"), std::string::npos) << e;

  std::ofstream(dir + "/config.json") << hf_config(*ref).dump();
  auto tensors = hf_tensors(*ref);
  tensors.erase(tensors.begin() + 3);  // model.layers.0.self_attn.k_proj.weight
  write_safetensors(st, tensors);
  e = load_error(dir);
  EXPECT_NE(e.find("tensor 'model.layers.0.self_attn.k_proj.weight' not found"), std::string::npos) << e;

  fs::remove(st);
  e = load_error(dir);
  EXPECT_NE(e.find("no model.safetensors"), std::string::npos) << e;
}

TEST(HfModel, UnsupportedDtypeNamesTheTensor) {
  const std::string dir = qmeter::testing::test_output_dir("hf_dtype");
  const std::string header = R"({"model.embed_tokens.weight":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
  std::string bytes(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  write_bytes(dir + "/model.safetensors", bytes + header + std::string(8, '\0'));
  std::ofstream(dir + "/config.json") << R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,
    "intermediate_size":172,"num_hidden_layers":1,"num_attention_heads":8,"vocab_size":512})";
  const std::string e = load_error(dir);
  EXPECT_NE(e.find("'model.embed_tokens.weight' has unsupported dtype I64"), std::string::npos) << e;
}

TEST(GgufModel, CorruptFilesGiveErrorsNamingFileAndTensor) {
  QMETER_REQUIRE_SHARED_DATA(path, kStoriesBin);
  auto ref = load_model(path);
  const std::string dir = qmeter::testing::test_output_dir("gguf_corrupt");
  const std::string good = gguf_of(*ref).bytes();
  const std::string f = dir + "/m.gguf";

  std::string magic = good;
  magic[0] = 'X';
  write_bytes(f, magic);
  std::string e = load_error(f);
  EXPECT_NE(e.find("m.gguf"), std::string::npos) << e;
  EXPECT_NE(e.find("bad magic"), std::string::npos) << e;

  write_bytes(f, good.substr(0, 100));
  e = load_error(f);
  EXPECT_NE(e.find("truncated GGUF file"), std::string::npos) << e;
  EXPECT_NE(e.find("metadata"), std::string::npos) << e;

  write_bytes(f, good.substr(0, good.size() - 100));
  e = load_error(f);
  EXPECT_NE(e.find("truncated GGUF file: tensor 'output_norm.weight'"), std::string::npos) << e;

  std::string version = good;
  const std::uint32_t v1 = 1;
  std::memcpy(version.data() + 4, &v1, 4);
  write_bytes(f, version);
  e = load_error(f);
  EXPECT_NE(e.find("unsupported GGUF version 1"), std::string::npos) << e;

  // Metadata that disagrees with the tensors.
  GgufWriter wrong;
  wrong.kv_string("general.architecture", "llama");
  for (auto [k, v] : {std::pair{"llama.embedding_length", 64u}, {"llama.block_count", 1u},
                      {"llama.feed_forward_length", 172u}, {"llama.attention.head_count", 8u}})
    wrong.kv_u32(k, v);
  wrong.tensor("token_embd.weight", {64, 512}, std::vector<float>(64 * 512));
  wrong.tensor("blk.0.attn_norm.weight", {64}, std::vector<float>(64));
  wrong.tensor("blk.0.attn_q.weight", {64, 32}, std::vector<float>(64 * 32));
  wrong.write(f);
  e = load_error(f);
  EXPECT_NE(e.find("tensor 'blk.0.attn_q.weight' has dims [64, 32], expected [64, 64]"), std::string::npos) << e;

  GgufWriter quant;
  quant.kv_string("general.architecture", "llama");
  for (auto [k, v] : {std::pair{"llama.embedding_length", 64u}, {"llama.block_count", 1u},
                      {"llama.feed_forward_length", 172u}, {"llama.attention.head_count", 8u}})
    quant.kv_u32(k, v);
  quant.tensor("token_embd.weight", {64, 512}, std::vector<float>(64 * 512), /*IQ2_XXS: no kernels*/ 16);
  quant.write(f);
  e = load_error(f);
  EXPECT_NE(e.find("tensor 'token_embd.weight' has ggml type IQ2_XXS (16), not supported"), std::string::npos) << e;

  GgufWriter arch;
  arch.kv_string("general.architecture", "gpt2");
  arch.write(f);
  e = load_error(f);
  EXPECT_NE(e.find("unsupported architecture 'gpt2'"), std::string::npos) << e;

  GgufWriter missing;
  missing.kv_string("general.architecture", "llama");
  missing.write(f);
  e = load_error(f);
  EXPECT_NE(e.find("metadata 'llama.embedding_length' is missing"), std::string::npos) << e;
}

}  // namespace
}  // namespace qmeter::engine
