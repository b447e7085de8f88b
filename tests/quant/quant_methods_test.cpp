// Methods on the real stories260K model: the calibration forward against the engine's own
// forward pass, GPTQ on a layer with known statistics, bad input, and the perplexity table.
#include <gtest/gtest.h>
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <random>

#include "../../src/quant/calibration.h"
#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/engine/forward.h"
#include "qmeter/engine/kv_cache.h"
#include "qmeter/quant/linear_quant.h"
#include "qmeter/quant/quantize.h"
#include "test_support.h"

using namespace qmeter;
using namespace qmeter::quant;

namespace {

constexpr const char* kModel = "models/stories260K/stories260K.bin";
constexpr const char* kText = "eval/tinystories_val.txt";
// The protocol names 500 paragraphs; 100 keep this binary to seconds on 2 loaded cores.
constexpr int kParagraphs = 100;

std::vector<std::string> eval_paragraphs(const std::string& path, int count) {
  const std::string text = read_file(path);
  std::size_t pos = text.find("\n\n", text.size() / 2);  // second half, from a paragraph boundary
  std::vector<std::string> out;
  while (pos != std::string::npos && static_cast<int>(out.size()) < count) {
    pos += 2;
    const std::size_t end = text.find("\n\n", pos);
    const std::string para = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (para.find_first_not_of(" \n\r\t") != std::string::npos) out.push_back(para);
    pos = end;
  }
  return out;
}

// Perplexity with every paragraph from a fresh BOS context (data README protocol).
double perplexity(const engine::Model& model, const std::vector<std::string>& paras) {
  engine::ThreadPool pool(2);
  engine::ForwardPass fp(model, &pool);
  double nll = 0.0;
  long n = 0;
  for (const std::string& p : paras) {
    std::vector<int> ids = model.tokenizer->encode(p, true);
    if (ids.size() > 512) ids.resize(512);
    if (ids.size() < 2) continue;
    engine::KvCache kv(engine::KvLayout::for_model(model.config), static_cast<int>(ids.size()));
    const engine::SequenceInput in{&kv, ids, engine::LogitsWanted::kAll};
    fp.run({&in, 1});
    const auto logits = fp.logits(0);
    const int V = model.config.vocab_size;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
      const float* row = logits.data() + i * V;
      double mx = row[0];
      for (int v = 1; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      double sum = 0.0;
      for (int v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
      nll += mx + std::log(sum) - row[ids[i + 1]];
      ++n;
    }
  }
  return std::exp(nll / n);
}

}  // namespace

TEST(QuantCalibration, LayerwiseForwardMatchesEngineForward) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  engine::LoadOptions lo;
  lo.weight_dtype = engine::DType::kF32;
  auto model = engine::load_model(model_path, lo);
  std::vector<std::vector<int>> seqs = {{1, 20, 30, 40, 50, 60, 70, 80}, {1, 5, 6, 7, 8, 9, 10, 11}};
  CalibState st = calibration_start(*model, seqs);
  for (int l = 0; l < model->config.n_layers; ++l) st.hidden = layer_forward(*model, l, st, Stage::kOutput, nullptr);
  const std::vector<float> logits = final_logits(*model, st, nullptr);
  engine::ForwardPass fp(*model, nullptr);
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    engine::KvCache kv(engine::KvLayout::for_model(model->config), 16);
    const engine::SequenceInput in{&kv, seqs[s], engine::LogitsWanted::kAll};
    fp.run({&in, 1});
    const auto ref = fp.logits(0);
    const std::size_t V = model->config.vocab_size;
    for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(logits[s * 8 * V + i], ref[i], 1e-4f) << i;
  }
}

TEST(QuantGptq, BeatsRtnOnLayerOutputErrorAndIsExactWithIdentityHessianOrder) {
  // Correlated inputs: GPTQ's error compensation must lower ||X W^T - X Q^T|| below RTN's.
  const int rows = 32, cols = 96, n = 512;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(rows * cols), x(n * cols);
  for (float& v : w) v = nd(rng) * 0.05f;
  for (int t = 0; t < n; ++t) {
    const float common = nd(rng);
    for (int c = 0; c < cols; ++c) x[t * cols + c] = common + 0.3f * nd(rng) * (1.0f + (c % 5));
  }
  auto out_err = [&](const std::vector<float>& q) {
    double e = 0.0;
    for (int t = 0; t < n; ++t)
      for (int r = 0; r < rows; ++r) {
        double d = 0.0;
        for (int c = 0; c < cols; ++c) d += (static_cast<double>(q[r * cols + c]) - w[r * cols + c]) * x[t * cols + c];
        e += d * d;
      }
    return e;
  };
  const auto h = hessian_from_inputs(x.data(), n, cols, nullptr);
  const double rtn = out_err(quantize_rtn_groups(w.data(), rows, cols, 4, 32, false).dequantized());
  GptqOptions o;
  o.group_size = 32;
  o.block = 40;  // not a multiple of the group size: the lazy-block boundary must not matter
  const double gptq = out_err(gptq_quantize(w.data(), rows, cols, h, o, nullptr).dequantized());
  o.act_order = true;
  const double gptq_act = out_err(gptq_quantize(w.data(), rows, cols, h, o, nullptr).dequantized());
  std::cout << fmt::format("layer output error: rtn {:.4g} gptq {:.4g} gptq+act-order {:.4g}\n", rtn, gptq, gptq_act);
  EXPECT_LT(gptq, 0.7 * rtn);
  EXPECT_LT(gptq_act, 0.7 * rtn);
  // Block size must not change the result (lazy updates are exact algebra).
  o.act_order = false;
  o.block = 128;
  const auto a = gptq_quantize(w.data(), rows, cols, h, o, nullptr);
  o.block = 7;
  const auto b = gptq_quantize(w.data(), rows, cols, h, o, nullptr);
  int differ = 0;
  for (std::size_t i = 0; i < a.codes.size(); ++i) differ += a.codes[i] != b.codes[i];
  EXPECT_LE(differ, static_cast<int>(a.codes.size() / 50)) << "float rounding may flip a few near-ties only";
  EXPECT_NEAR(out_err(a.dequantized()), out_err(b.dequantized()), 0.05 * out_err(a.dequantized()));
}

TEST(QuantUsage, BadMethodsAndOptionsAreUsageErrors) {
  EXPECT_THROW(method_info("int2-magic"), UsageError);
  try {
    parse_options("awq", {{"bits", "5"}});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--bits 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_options("gptq", {{"group-size", "48"}}), UsageError);
  EXPECT_THROW(parse_options("w4a16-rtn", {{"act-order", "true"}}), UsageError);
  EXPECT_THROW(parse_options("gptq", {{"damp", "x"}}), UsageError);
  EXPECT_THROW(parse_options("w8a16", {{"frobnicate", "1"}}), UsageError);
  const auto names = method_names();
  EXPECT_EQ(names.front(), "fp32");
  EXPECT_NE(std::find(names.begin(), names.end(), "gptq"), names.end());
}

TEST(QuantUsage, GroupSizeLargerThanLayerIsRefused) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  try {
    load_quantized(model_path, "w4a16-rtn", {{"group-size", "128"}}, "");
    FAIL() << "stories260K's 64-wide layers are narrower than 128";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--group-size 128 is larger than layer wq (64"), std::string::npos) << e.what();
  }
}

TEST(QuantPerplexity, Stories260KTable) {
#if defined(__SANITIZE_ADDRESS__)
  // 15 quantized models x 100 paragraphs take ~8 minutes under ASan; the table checks numbers,
  // and every method's code runs under the sanitizers in QuantizedModelFolder.* already.
  GTEST_SKIP() << "perplexity table skipped under AddressSanitizer (runs in the release build)";
#endif
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  QMETER_REQUIRE_SHARED_DATA(text_path, kText);
  const auto paras = eval_paragraphs(text_path, kParagraphs);
  ASSERT_EQ(static_cast<int>(paras.size()), kParagraphs);
  // Group 32 (the layers are 64 and 172 wide); calibration: 16 x 256 tokens of the first half.
  const std::map<std::string, std::string> calib = {{"calib-samples", "16"}, {"calib-seq-len", "256"}, {"group-size", "32"}};
  struct Row {
    std::string label, method;
    std::map<std::string, std::string> opts;
    double ppl = 0;
  };
  std::vector<Row> rows = {
      {"fp32", "fp32", {}},
      {"bf16", "bf16", {}},
      {"fp16", "fp16", {}},
      {"w8a16", "w8a16", {}},
      {"w4a16-rtn g32", "w4a16-rtn", {{"group-size", "32"}}},
      {"gptq 4-bit g32", "gptq", calib},
      {"awq 4-bit g32", "awq", calib},
      {"w3a16-rtn g32", "w3a16-rtn", {{"group-size", "32"}}},
      {"gptq 3-bit g32", "gptq", [&] { auto o = calib; o["bits"] = "3"; return o; }()},
      {"nf4", "nf4", {}},
      {"nf4 double-quant", "nf4", {{"double-quant", "true"}}},
      {"fp8-w8a16", "fp8-w8a16", {}},
      {"fp8-w8a8", "fp8-w8a8", {}},
      {"smoothquant a0.8", "smoothquant-w8a8", {{"calib-samples", "16"}, {"calib-seq-len", "256"}}},
      {"smoothquant a0.5", "smoothquant-w8a8", {{"calib-samples", "16"}, {"calib-seq-len", "256"}, {"alpha", "0.5"}}},
      {"q8_0 (gguf)", "q8_0", {}},
      {"q4_0 (gguf)", "q4_0", {}},
      {"q4_k (gguf)", "q4_k", {}},
      {"w4a16 g32+head", "w4a16-rtn", {{"group-size", "32"}, {"quantize-lm-head", "true"}}},
      {"w8a16 int8 KV", "w8a16", {{"kv-cache-dtype", "int8"}}},
      {"w8a16 fp8 KV", "w8a16", {{"kv-cache-dtype", "fp8"}}},
  };
  for (Row& r : rows) {
    auto m = load_quantized(model_path, r.method, r.opts, "");
    r.ppl = perplexity(*m, paras);
    std::cout << fmt::format("{:<16} ppl {:.4f}  weight bytes {}\n", r.label, r.ppl, m->weight_bytes());
  }
  const double fp32 = rows[0].ppl;
  EXPECT_GT(fp32, 3.0);
  EXPECT_LT(fp32, 10.0);  // the second half scores ~7.1 (the README's 4.17 is the first 500 paragraphs)
  for (int i = 1; i <= 3; ++i) EXPECT_LT(std::fabs(rows[i].ppl / fp32 - 1.0), 0.01) << rows[i].label;
  const double rtn4 = rows[4].ppl, gptq4 = rows[5].ppl, awq4 = rows[6].ppl, rtn3 = rows[7].ppl, gptq3 = rows[8].ppl;
  EXPECT_LT(gptq4, rtn4);
  EXPECT_LT(awq4, rtn4);
  EXPECT_GT(rtn3, rtn4);
  EXPECT_GT(rtn3 - gptq3, rtn4 - gptq4) << "at 3 bits the gap to RTN is larger";
  const double nf4 = rows[9].ppl, nf4dq = rows[10].ppl;
  EXPECT_GT(nf4, fp32);
  EXPECT_LT(nf4, rtn3);
  EXPECT_LT(std::fabs(nf4dq / nf4 - 1.0), 0.02) << "8-bit absmax costs little";
  // FP8 E4M3 keeps 3 mantissa bits (relative step up to 1/8): on this 260K-parameter model it
  // measures +1.0..1.2% (int8 per channel: +0.05%), so its bound is 1.5%.
  for (int i = 11; i <= 12; ++i) EXPECT_LT(std::fabs(rows[i].ppl / fp32 - 1.0), 0.015) << rows[i].label;
  for (int i = 13; i <= 14; ++i) EXPECT_LT(std::fabs(rows[i].ppl / fp32 - 1.0), 0.01) << rows[i].label;
  // GGUF blocks: q8_0 is an 8-bit method (within 1%). Every stories260K matrix is 64 or 172 wide,
  // under q4_K's 256-weight super-block, so q4_k falls back per matrix as llama-quantize does, to
  // q5_0 (64) and f16 (172, not a multiple of 32), with bf16 embeddings: between q8_0 and the q4_0
  // preset (4-bit layers, its tied classifier q8_0 by the Q6_K rule's fallback).
  const double q80 = rows[15].ppl, q40 = rows[16].ppl, q4k = rows[17].ppl;
  EXPECT_LT(std::fabs(q80 / fp32 - 1.0), 0.01);
  EXPECT_GT(q4k, q80);
  EXPECT_LT(q4k, q40);
  EXPECT_GT(q40, q80);
  EXPECT_LT(q40, rtn3);
  // The classifier (tied embedding) in 4 bits too costs more than the layers alone, still far
  // less than dropping to 3 bits.
  const double head4 = rows[18].ppl;
  EXPECT_GT(head4, rtn4);
  EXPECT_LT(head4, rtn3);
  // KV cache in 8 bits on top of w8a16: int8 within 1% of w8a16, E4M3 (3 mantissa bits) within 3%.
  EXPECT_LT(std::fabs(rows[19].ppl / rows[3].ppl - 1.0), 0.01);
  EXPECT_LT(std::fabs(rows[20].ppl / rows[3].ppl - 1.0), 0.03);
}
