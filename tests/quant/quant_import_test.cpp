// Import of AutoGPTQ / AutoAWQ checkpoints: folders written here from known integer codes, zero
// points, f16 scales and group indices, packed the way AutoGPTQ (input-dimension bit stream,
// v1 zero - 1, act-order g_idx, 3-bit word straddling) and AutoAWQ GEMM (interleaved output
// order) pack them, by a writer independent of the loader; every imported weight must equal
// scale * (q - zero) exactly. Then stories260K quantized by our own gptq and exported in AutoGPTQ
// layout must give the in-memory model's logits bit for bit, and corrupt folders are refused
// with errors naming the file and tensor.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include "qmeter/core/error.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/engine/session.h"
#include "qmeter/quant/quantize.h"
#include "qmeter/quant/quantized_model.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;
namespace fs = std::filesystem;
using engine::f16_to_f32;
using engine::f32_to_f16;

namespace {

// ---- a raw safetensors writer (any dtype, bytes as given) ----
struct Raw {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::string bytes;
};
template <class T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
void write_safetensors(const std::string& path, const std::vector<Raw>& tensors) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}", data;
  for (const Raw& t : tensors) {
    std::string shape;
    for (std::size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
    header += fmt::format(",\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", t.name, t.dtype, shape,
                          data.size(), data.size() + t.bytes.size());
    data += t.bytes;
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');
  const std::uint64_t n = header.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

// ---- one quantized linear as known integers, HF orientation (out x in) ----
struct QLinear {
  int out = 0, in = 0, bits = 4, group = 32;
  std::vector<std::uint8_t> q;       // [in][out]
  std::vector<std::uint8_t> zero;    // [n_groups][out], the true zero points
  std::vector<std::uint16_t> scale;  // [n_groups][out], f16
  std::vector<std::int32_t> g_idx;   // [in]
  int groups() const { return (in + group - 1) / group; }
  float expected(int o, int i) const {
    const int g = g_idx[static_cast<std::size_t>(i)];
    return f16_to_f32(scale[static_cast<std::size_t>(g) * out + o]) *
           static_cast<float>(static_cast<int>(q[static_cast<std::size_t>(i) * out + o]) - zero[static_cast<std::size_t>(g) * out + o]);
  }
};

QLinear random_linear(int out, int in, int bits, int group, bool act_order, float max_scale, std::mt19937& rng) {
  QLinear l;
  l.out = out;
  l.in = in;
  l.bits = bits;
  l.group = group;
  const int levels = 1 << bits;
  std::uniform_int_distribution<int> code(0, levels - 1);
  l.q.resize(static_cast<std::size_t>(in) * out);
  for (auto& v : l.q) v = static_cast<std::uint8_t>(code(rng));
  l.zero.resize(static_cast<std::size_t>(l.groups()) * out);
  for (auto& v : l.zero) v = static_cast<std::uint8_t>(code(rng));
  l.zero[0] = 0;                                          // v1 stores -1 here: read back as 0
  l.zero[1] = static_cast<std::uint8_t>(levels - 1);      // the largest zero point
  std::uniform_real_distribution<float> s(max_scale / 50, max_scale);
  l.scale.resize(l.zero.size());
  for (auto& v : l.scale) v = f32_to_f16(s(rng));
  l.scale[2] = f32_to_f16(-0.0123f);  // nothing forbids a negative scale
  l.g_idx.resize(static_cast<std::size_t>(in));
  std::vector<int> order(static_cast<std::size_t>(in));
  for (int i = 0; i < in; ++i) order[static_cast<std::size_t>(i)] = i;
  if (act_order) std::shuffle(order.begin(), order.end(), rng);  // column order[p] is visited p-th
  for (int p = 0; p < in; ++p) l.g_idx[static_cast<std::size_t>(order[static_cast<std::size_t>(p)])] = p / group;
  return l;
}

// Value k of a little-endian bit stream of 32-bit words words[first + j * stride], j = 0, 1, ...
void put_stream(std::vector<std::uint32_t>& words, std::size_t first, std::size_t stride, std::size_t k, int bits, std::uint32_t v) {
  const std::size_t bit = k * static_cast<std::size_t>(bits), j = bit / 32, off = bit % 32;
  words[first + j * stride] |= v << off;
  if (off + static_cast<std::size_t>(bits) > 32) words[first + (j + 1) * stride] |= v >> (32 - off);
}

// AutoGPTQ: qweight [in * bits / 32][out] packed down the input dimension, qzeros
// [groups][out * bits / 32] along the output dimension, v1 storing zero - 1 (mod 2^bits).
void add_gptq(std::vector<Raw>& t, const std::string& base, const QLinear& l, bool v1) {
  const std::size_t wrows = static_cast<std::size_t>(l.in) * l.bits / 32, zcols = static_cast<std::size_t>(l.out) * l.bits / 32;
  std::vector<std::uint32_t> qw(wrows * l.out), qz(l.groups() * zcols);
  for (int o = 0; o < l.out; ++o)
    for (int i = 0; i < l.in; ++i) put_stream(qw, static_cast<std::size_t>(o), static_cast<std::size_t>(l.out), static_cast<std::size_t>(i), l.bits, l.q[static_cast<std::size_t>(i) * l.out + o]);
  const std::uint32_t mask = (1u << l.bits) - 1u;
  for (int g = 0; g < l.groups(); ++g)
    for (int o = 0; o < l.out; ++o) {
      const std::uint32_t z = l.zero[static_cast<std::size_t>(g) * l.out + o];
      put_stream(qz, g * zcols, 1, static_cast<std::size_t>(o), l.bits, v1 ? (z - 1u) & mask : z);
    }
  t.push_back({base + ".qweight", "I32", {static_cast<std::int64_t>(wrows), l.out}, bytes_of(qw)});
  t.push_back({base + ".qzeros", "I32", {l.groups(), static_cast<std::int64_t>(zcols)}, bytes_of(qz)});
  t.push_back({base + ".scales", "F16", {l.groups(), l.out}, bytes_of(l.scale)});
  t.push_back({base + ".g_idx", "I32", {l.in}, bytes_of(l.g_idx)});
}

// AutoAWQ GEMM: qweight [in][out / 8], nibble n of word j = output 8j + order[n]; qzeros alike.
void add_awq(std::vector<Raw>& t, const std::string& base, const QLinear& l) {
  static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  const int words = l.out / 8;
  std::vector<std::uint32_t> qw(static_cast<std::size_t>(l.in) * words), qz(static_cast<std::size_t>(l.groups()) * words);
  for (int j = 0; j < words; ++j)
    for (int n = 0; n < 8; ++n) {
      const int o = 8 * j + order[n];
      for (int i = 0; i < l.in; ++i) qw[static_cast<std::size_t>(i) * words + j] |= std::uint32_t{l.q[static_cast<std::size_t>(i) * l.out + o]} << (4 * n);
      for (int g = 0; g < l.groups(); ++g) qz[static_cast<std::size_t>(g) * words + j] |= std::uint32_t{l.zero[static_cast<std::size_t>(g) * l.out + o]} << (4 * n);
    }
  t.push_back({base + ".qweight", "I32", {l.in, words}, bytes_of(qw)});
  t.push_back({base + ".qzeros", "I32", {l.groups(), words}, bytes_of(qz)});
  t.push_back({base + ".scales", "F16", {l.groups(), l.out}, bytes_of(l.scale)});
}

std::string llama_config(int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int max_pos, bool tied,
                         const std::string& quant) {
  return fmt::format(R"({{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": {}, "intermediate_size": {},
 "num_hidden_layers": {}, "num_attention_heads": {}, "num_key_value_heads": {}, "vocab_size": {}, "max_position_embeddings": {},
 "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": {}{}}})",
                     dim, hidden, layers, heads, kv_heads, vocab, max_pos, tied ? "true" : "false",
                     quant.empty() ? "" : ", \"quantization_config\": " + quant);
}

// ---- a one-layer llama (dim 64, 2 heads of 32, hidden 128, vocab 32) with quantized linears ----
constexpr int kDim = 64, kHidden = 128, kHeads = 2, kHeadDim = 32, kVocab = 32;
const char* const kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

struct Tiny {
  std::string method = "gptq";  // or "awq"
  int bits = 4, group = 32;
  bool act_order = false, v1 = true;
  std::map<std::string, QLinear> linears;  // by "<base>"
  std::vector<Raw> tensors;
  std::string quant_config;
};

std::vector<float> seeded_floats(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 0.5f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Tiny make_tiny(const std::string& method, int bits, bool act_order, bool v1, unsigned seed, float max_scale = 0.05f) {
  Tiny t;
  t.method = method;
  t.bits = bits;
  t.act_order = act_order;
  t.v1 = v1;
  std::mt19937 rng(seed);
  t.tensors.push_back({"model.embed_tokens.weight", "F32", {kVocab, kDim}, bytes_of(seeded_floats(kVocab * kDim, rng))});
  t.tensors.push_back({"lm_head.weight", "F32", {kVocab, kDim}, bytes_of(seeded_floats(kVocab * kDim, rng))});
  t.tensors.push_back({"model.norm.weight", "F32", {kDim}, bytes_of(std::vector<float>(kDim, 1.0f))});
  t.tensors.push_back({"model.layers.0.input_layernorm.weight", "F32", {kDim}, bytes_of(std::vector<float>(kDim, 1.0f))});
  t.tensors.push_back({"model.layers.0.post_attention_layernorm.weight", "F32", {kDim}, bytes_of(std::vector<float>(kDim, 1.0f))});
  for (const char* name : kLinears) {
    const std::string base = std::string("model.layers.0.") + name;
    const bool down = std::string(name) == "mlp.down_proj", up = std::string(name).rfind("mlp.", 0) == 0 && !down;
    const int out = up ? kHidden : kDim, in = down ? kHidden : kDim;
    QLinear l = random_linear(out, in, bits, t.group, act_order, max_scale, rng);
    if (method == "gptq") add_gptq(t.tensors, base, l, v1);
    else add_awq(t.tensors, base, l);
    t.linears.emplace(base, std::move(l));
  }
  t.quant_config = method == "gptq"
                       ? fmt::format(R"({{"quant_method": "gptq", "bits": {}, "group_size": {}, "desc_act": {}, "sym": false, "checkpoint_format": "{}"}})",
                                     bits, t.group, act_order ? "true" : "false", v1 ? "gptq" : "gptq_v2")
                       : fmt::format(R"({{"quant_method": "awq", "bits": {}, "group_size": {}, "zero_point": true, "version": "gemm"}})", bits, t.group);
  return t;
}

void write_folder(const std::string& dir, const Tiny& t) {
  std::ofstream(dir + "/config.json") << llama_config(kDim, kHidden, 1, kHeads, kHeads, kVocab, 64, false, t.quant_config);
  write_safetensors(dir + "/model.safetensors", t.tensors);
}

std::unique_ptr<engine::Model> write_and_load(const Tiny& t, const std::string& name) {
  const std::string dir = qmeter::testing::test_output_dir(name);
  write_folder(dir, t);
  return engine::load_model(dir);
}

// HF row of engine row r of a q/k projection (the loader un-permutes HF's rotate-half order):
// engine row (h, 2i + j) is HF row (h, j * head_dim/2 + i).
int hf_row(int r, bool rope, int head_dim) {
  if (!rope) return r;
  const int h = r / head_dim, k = r % head_dim;
  return h * head_dim + (k % 2) * (head_dim / 2) + k / 2;
}

const engine::Matrix& linear_of(const engine::Model& m, const std::string& base) {
  const engine::LayerWeights& lw = m.weights.layers[0];
  const std::string n = base.substr(base.find('.', std::string("model.layers.").size()) + 1);
  if (n == "self_attn.q_proj") return lw.wq;
  if (n == "self_attn.k_proj") return lw.wk;
  if (n == "self_attn.v_proj") return lw.wv;
  if (n == "self_attn.o_proj") return lw.wo;
  if (n == "mlp.gate_proj") return lw.w_gate;
  if (n == "mlp.up_proj") return lw.w_up;
  return lw.w_down;
}

// Every dequantized weight of every linear equals scale * (q - zero): row by row, and through
// the matmul against the identity (batch = in) and a random vector (the act-order gather).
void expect_exact_weights(const engine::Model& m, const Tiny& t) {
  for (const auto& [base, l] : t.linears) {
    SCOPED_TRACE(base);
    const engine::Matrix& w = linear_of(m, base);
    ASSERT_EQ(w.dtype, engine::DType::kQ4Group);
    ASSERT_EQ(w.rows, l.out);
    ASSERT_EQ(w.cols, l.in);
    const bool rope = base.find("q_proj") != std::string::npos || base.find("k_proj") != std::string::npos;
    std::vector<float> row(static_cast<std::size_t>(l.in));
    int bad = 0;
    for (int r = 0; r < l.out; ++r) {
      engine::matrix_row_to_f32(w, r, row.data());
      for (int i = 0; i < l.in; ++i)
        if (row[static_cast<std::size_t>(i)] != l.expected(hf_row(r, rope, kHeadDim), i) && bad++ < 3)
          ADD_FAILURE() << "row " << r << " col " << i << ": " << row[static_cast<std::size_t>(i)] << " != " << l.expected(hf_row(r, rope, kHeadDim), i);
    }
    EXPECT_EQ(bad, 0);
    std::vector<float> eye(static_cast<std::size_t>(l.in) * l.in, 0.0f), y(static_cast<std::size_t>(l.in) * l.out);
    for (int b = 0; b < l.in; ++b) eye[static_cast<std::size_t>(b) * l.in + b] = 1.0f;
    engine::matmul(w, eye.data(), l.in, y.data(), nullptr);
    bad = 0;
    for (int b = 0; b < l.in; ++b)
      for (int r = 0; r < l.out; ++r)
        if (y[static_cast<std::size_t>(b) * l.out + r] != l.expected(hf_row(r, rope, kHeadDim), b)) ++bad;
    EXPECT_EQ(bad, 0) << "matmul with the identity differs from the dequantized weights";
    std::mt19937 rng(7);
    // A batch of 9 (8-row tiles plus one) against the scalar reference kernel.
    const int nb = 9;
    const std::vector<float> xb = seeded_floats(static_cast<std::size_t>(l.in) * nb, rng);
    std::vector<float> yb_ref(static_cast<std::size_t>(l.out) * nb), yb_isa(yb_ref.size());
    engine::matmul_isa(engine::Isa::kScalar, w, xb.data(), nb, yb_ref.data(), nullptr);
    engine::matmul(w, xb.data(), nb, yb_isa.data(), nullptr);
    for (int b = 0; b < nb; ++b)
      for (int r = 0; r < l.out; ++r) {
        double mag = 0.0;
        for (int i = 0; i < l.in; ++i)
          mag += std::fabs(static_cast<double>(l.expected(hf_row(r, rope, kHeadDim), i)) * xb[static_cast<std::size_t>(b) * l.in + i]);
        const std::size_t k = static_cast<std::size_t>(b) * l.out + r;
        EXPECT_NEAR(yb_isa[k], yb_ref[k], 0x1p-8 * mag + 1e-6) << "batch row " << b << ", row " << r;
      }
    const std::vector<float> x = seeded_floats(static_cast<std::size_t>(l.in), rng);
    // The scalar reference kernel is exact f32; the detected ISA may round the activations to
    // bf16 (kernels.h: relative error <= 2^-9 per activation).
    std::vector<float> y_ref(static_cast<std::size_t>(l.out)), y_isa(y_ref.size());
    engine::matmul_isa(engine::Isa::kScalar, w, x.data(), 1, y_ref.data(), nullptr);
    engine::matmul(w, x.data(), 1, y_isa.data(), nullptr);
    for (int r = 0; r < l.out; ++r) {
      double ref = 0.0, mag = 0.0;
      for (int i = 0; i < l.in; ++i) {
        const double p = static_cast<double>(l.expected(hf_row(r, rope, kHeadDim), i)) * x[static_cast<std::size_t>(i)];
        ref += p;
        mag += std::fabs(p);
      }
      EXPECT_NEAR(y_ref[static_cast<std::size_t>(r)], ref, 1e-5 * mag + 1e-7) << "row " << r;
      EXPECT_NEAR(y_isa[static_cast<std::size_t>(r)], ref, 0x1p-8 * mag + 1e-7) << "row " << r;
    }
  }
}

std::string load_error(const std::string& dir) {
  try {
    engine::load_model(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded without error)";
}

constexpr const char* kModel = "models/stories260K/stories260K.bin";
const std::vector<int> kTokens = {1, 403, 407, 261, 378, 429, 271, 270, 1, 282, 45, 300, 511, 259, 3, 330};

std::vector<float> logits(const engine::Model& m, const std::vector<int>& tokens) {
  engine::Session s(m, nullptr);
  auto l = s.feed_all(tokens);
  return {l.begin(), l.end()};
}

}  // namespace

TEST(GptqImport, FourBitDequantizesExactly) {
  const Tiny t = make_tiny("gptq", 4, false, true, 11);
  auto m = write_and_load(t, "gptq_4bit");
  EXPECT_NE(m->description.find("gptq (imported AutoGPTQ, 4-bit, group 32)"), std::string::npos) << m->description;
  EXPECT_EQ(m->weight_dtype, engine::DType::kQ4Group);
  EXPECT_EQ(engine::q4_column_permutation(m->weights.layers[0].wq), nullptr);  // trivial g_idx: plain kQ4Group
  expect_exact_weights(*m, t);
}

// AutoGPTQ's own layout: quantize_config.json beside a config.json without quantization_config,
// weights in "<model_file_base_name>.safetensors".
TEST(GptqImport, QuantizeConfigJsonAndModelFileBaseName) {
  Tiny t = make_tiny("gptq", 4, true, true, 17);
  const std::string dir = qmeter::testing::test_output_dir("gptq_quantize_config");
  std::ofstream(dir + "/config.json") << llama_config(kDim, kHidden, 1, kHeads, kHeads, kVocab, 64, false, "");
  std::ofstream(dir + "/quantize_config.json")
      << R"({"bits": 4, "group_size": 32, "desc_act": true, "sym": true, "model_file_base_name": "gptq_model-4bit-32g"})";
  write_safetensors(dir + "/gptq_model-4bit-32g.safetensors", t.tensors);
  auto m = engine::load_model(dir);
  EXPECT_NE(m->description.find("gptq (imported AutoGPTQ, 4-bit, group 32, act-order)"), std::string::npos) << m->description;
  expect_exact_weights(*m, t);
}

TEST(GptqImport, ActOrderDequantizesExactly) {
  for (bool v1 : {true, false}) {
    SCOPED_TRACE(v1 ? "checkpoint_format gptq (zero - 1)" : "checkpoint_format gptq_v2");
    const Tiny t = make_tiny("gptq", 4, true, v1, v1 ? 12 : 13);
    auto m = write_and_load(t, v1 ? "gptq_act_order" : "gptq_act_order_v2");
    EXPECT_NE(m->description.find("act-order"), std::string::npos) << m->description;
    EXPECT_NE(engine::q4_column_permutation(m->weights.layers[0].wq), nullptr);
    expect_exact_weights(*m, t);
  }
}

TEST(GptqImport, ThreeBitActOrderDequantizesExactly) {
  const Tiny t = make_tiny("gptq", 3, true, true, 14);
  auto m = write_and_load(t, "gptq_3bit");
  EXPECT_NE(m->description.find("3-bit"), std::string::npos) << m->description;
  expect_exact_weights(*m, t);
}

TEST(AwqImport, GemmOrderDequantizesExactly) {
  const Tiny t = make_tiny("awq", 4, false, false, 15);
  auto m = write_and_load(t, "awq_gemm");
  EXPECT_NE(m->description.find("awq (imported AutoAWQ GEMM, 4-bit, group 32)"), std::string::npos) << m->description;
  expect_exact_weights(*m, t);
}

// The whole forward pass of an act-order import equals the same weights stored dense (f32), up
// to summation order; and the imported model saved by qmeter quantize's writer (packed blob with
// its permutation) loads back bit-identical.
TEST(GptqImport, ActOrderModelMatchesDenseAndRoundTrips) {
  const Tiny t = make_tiny("gptq", 4, true, true, 16, 0.01f);  // small weights: a well-conditioned forward
  const std::string dir = qmeter::testing::test_output_dir("gptq_act_order_model");
  write_folder(dir, t);
  auto imported = engine::load_model(dir);

  Tiny dense = t;
  dense.tensors.erase(std::remove_if(dense.tensors.begin(), dense.tensors.end(),
                                     [](const Raw& r) { return r.dtype == "I32" || r.dtype == "F16"; }),
                      dense.tensors.end());
  for (const auto& [base, l] : t.linears) {
    std::vector<float> w(static_cast<std::size_t>(l.out) * l.in);
    for (int o = 0; o < l.out; ++o)
      for (int i = 0; i < l.in; ++i) w[static_cast<std::size_t>(o) * l.in + i] = l.expected(o, i);
    dense.tensors.push_back({base + ".weight", "F32", {l.out, l.in}, bytes_of(w)});
  }
  dense.quant_config.clear();
  const std::string ddir = qmeter::testing::test_output_dir("gptq_act_order_dense");
  write_folder(ddir, dense);
  auto reference = engine::load_model(ddir);
  const std::vector<int> tokens = {1, 5, 9, 30, 2, 17, 4, 4, 22};
  const std::vector<float> a = logits(*imported, tokens), b = logits(*reference, tokens);
  ASSERT_EQ(a.size(), b.size());
  // From AVX512_BF16 up the kQ4Group kernels round activations to bf16 (kernels.h), ~2^-9 relative
  // per layer input; elsewhere they are exact f32 and only the summation order differs. (A wrong
  // column order is off by O(1).)
  const double tol = engine::detected_isa() >= engine::Isa::kAvx512Bf16 ? 2e-2 : 1e-4;
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol * (1.0 + std::fabs(b[i]))) << i;

  const std::string qdir = qmeter::testing::test_output_dir("gptq_act_order_resaved");
  quant::write_quantized_model(*imported, dir, qdir, "gptq", {});
  auto back = engine::load_model(qdir);
  EXPECT_NE(engine::q4_column_permutation(back->weights.layers[0].w_down), nullptr);
  EXPECT_EQ(logits(*back, tokens), a);
}

TEST(GptqImport, StoriesQuantizedByOurGptqGivesIdenticalLogits) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kModel);
  auto q = quant::load_quantized(model_path, "gptq",
                                 {{"group-size", "32"}, {"act-order", "true"}, {"calib-samples", "4"}, {"calib-seq-len", "128"}}, "");
  const engine::ModelConfig& c = q->config;
  ASSERT_EQ(q->weights.token_embedding.dtype, engine::DType::kBF16);
  // AutoGPTQ packs 8 codes per word on both dimensions: the MLP (172 wide) stays unquantized in
  // the checkpoint, so the reference model holds those layers as dense f32 of the same values.
  std::vector<std::vector<float>> keep;
  for (engine::LayerWeights& lw : q->weights.layers)
    for (engine::Matrix* m : {&lw.w_gate, &lw.w_up, &lw.w_down}) {
      keep.emplace_back(static_cast<std::size_t>(m->rows) * m->cols);
      for (int r = 0; r < m->rows; ++r) engine::matrix_row_to_f32(*m, r, keep.back().data() + static_cast<std::size_t>(r) * m->cols);
      *m = engine::Matrix{engine::DType::kF32, m->rows, m->cols, keep.back().data()};
    }

  // The AutoGPTQ export, from the packed blobs' integers (layout of packed_formats.h).
  auto to_qlinear = [&](const engine::Matrix& m, bool rope) {
    const engine::PackedHeader& h = engine::packed_header(m);
    QLinear l;
    l.out = m.rows;
    l.in = m.cols;
    l.bits = static_cast<int>(h.bits);
    l.group = static_cast<int>(h.group_size);
    l.q.resize(static_cast<std::size_t>(m.rows) * m.cols);
    l.zero.resize(static_cast<std::size_t>(h.n_groups) * m.rows);
    l.scale.resize(l.zero.size());
    for (int i = 0; i < m.cols; ++i) l.g_idx.push_back(i / l.group);
    const auto* base = static_cast<const std::uint8_t*>(m.data) + sizeof(engine::PackedHeader);
    for (int r = 0; r < m.rows; ++r) {
      const std::uint8_t* row = base + static_cast<std::size_t>(r) * h.row_stride;
      // HF row of engine row r (inverse of the loader's un-permutation for q/k).
      const int hd = c.head_dim, o = rope ? (r / hd) * hd + (r % hd % 2) * (hd / 2) + (r % hd) / 2 : r;
      for (int i = 0; i < m.cols; ++i) {
        const std::uint8_t byte = row[16 * (i / 32) + (i % 32) % 16];
        l.q[static_cast<std::size_t>(i) * m.rows + o] = (i % 32) < 16 ? byte & 0xF : byte >> 4;
      }
      for (std::uint32_t g = 0; g < h.n_groups; ++g) {
        std::memcpy(&l.scale[g * m.rows + o], row + h.codes_bytes + 2 * g, 2);
        l.zero[g * m.rows + o] = row[h.codes_bytes + 2 * h.n_groups + g];
      }
    }
    return l;
  };
  std::vector<Raw> t;
  auto f32_tensor = [&](const std::string& name, const float* v, std::vector<std::int64_t> shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    t.push_back({name, "F32", shape, std::string(reinterpret_cast<const char*>(v), n * 4)});
  };
  const engine::Matrix& emb = q->weights.token_embedding;
  t.push_back({"model.embed_tokens.weight", "BF16", {emb.rows, emb.cols},
               std::string(static_cast<const char*>(emb.data), static_cast<std::size_t>(emb.rows) * emb.cols * 2)});
  for (int li = 0; li < c.n_layers; ++li) {
    const engine::LayerWeights& lw = q->weights.layers[static_cast<std::size_t>(li)];
    const std::string p = fmt::format("model.layers.{}.", li);
    f32_tensor(p + "input_layernorm.weight", lw.attn_norm.data(), {c.dim});
    f32_tensor(p + "post_attention_layernorm.weight", lw.ffn_norm.data(), {c.dim});
    ASSERT_EQ(lw.wq.dtype, engine::DType::kQ4Group);
    add_gptq(t, p + "self_attn.q_proj", to_qlinear(lw.wq, true), true);
    add_gptq(t, p + "self_attn.k_proj", to_qlinear(lw.wk, true), true);
    add_gptq(t, p + "self_attn.v_proj", to_qlinear(lw.wv, false), true);
    add_gptq(t, p + "self_attn.o_proj", to_qlinear(lw.wo, false), true);
    f32_tensor(p + "mlp.gate_proj.weight", static_cast<const float*>(lw.w_gate.data), {lw.w_gate.rows, lw.w_gate.cols});
    f32_tensor(p + "mlp.up_proj.weight", static_cast<const float*>(lw.w_up.data), {lw.w_up.rows, lw.w_up.cols});
    f32_tensor(p + "mlp.down_proj.weight", static_cast<const float*>(lw.w_down.data), {lw.w_down.rows, lw.w_down.cols});
  }
  f32_tensor("model.norm.weight", q->weights.final_norm.data(), {c.dim});
  ASSERT_TRUE(c.tied_embeddings);
  const std::string dir = qmeter::testing::test_output_dir("stories_autogptq");
  {
    std::ofstream cfg(dir + "/config.json");
    cfg << llama_config(c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len, true,
                        R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": true, "sym": false})");
  }
  write_safetensors(dir + "/model.safetensors", t);
  fs::copy_file(fs::path(model_path).parent_path() / "tok512.bin", dir + "/tokenizer.bin");

  auto imported = engine::load_model(dir);
  EXPECT_NE(imported->description.find("imported AutoGPTQ"), std::string::npos) << imported->description;
  for (int li = 0; li < c.n_layers; ++li) {
    const engine::LayerWeights &a = imported->weights.layers[static_cast<std::size_t>(li)], &b = q->weights.layers[static_cast<std::size_t>(li)];
    for (auto [x, y] : {std::pair{&a.wq, &b.wq}, {&a.wk, &b.wk}, {&a.wv, &b.wv}, {&a.wo, &b.wo}}) {
      ASSERT_EQ(engine::matrix_bytes(*x), engine::matrix_bytes(*y));
      EXPECT_EQ(std::memcmp(x->data, y->data, engine::matrix_bytes(*x)), 0) << "layer " << li << ": packed blobs differ";
    }
  }
  EXPECT_EQ(logits(*imported, kTokens), logits(*q, kTokens));

  // The CLI runs it as is.
  const std::string log = dir + "/generate.log";
  ASSERT_EQ(qmeter::testing::run_qmeter({"generate", "--model", dir, "--prompt", "Once upon a time", "--max-tokens", "8", "--threads", "1"}, log, 120), 0);
  std::ifstream in(log);
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(out.find("gptq (imported AutoGPTQ, 4-bit, group 32, act-order)"), std::string::npos) << out;
  const std::string text = qmeter::testing::shared_data_file("eval/tinystories_val.txt");
  if (!text.empty()) {  // and `qmeter eval --model` scores it in-process
    const std::string elog = dir + "/eval.log";
    EXPECT_EQ(qmeter::testing::run_qmeter({"eval", "--model", dir, "--task", "perplexity:" + text, "--limit", "2",
                                           "--output-json", dir + "/eval.json"}, elog, 120), 0);
    std::ifstream ein(elog);
    const std::string eout((std::istreambuf_iterator<char>(ein)), std::istreambuf_iterator<char>());
    EXPECT_NE(eout.find("imported AutoGPTQ"), std::string::npos) << eout;
    EXPECT_TRUE(fs::exists(dir + "/eval.json")) << eout;
  }
}

TEST(GptqImport, CorruptCheckpointsNameFileAndTensor) {
  struct Case {
    std::string what;
    std::function<void(Tiny&)> corrupt;
    std::vector<std::string> expect;  // substrings of the error
  };
  auto find = [](Tiny& t, const std::string& name) -> Raw& {
    for (Raw& r : t.tensors)
      if (r.name == name) return r;
    throw std::runtime_error("no tensor " + name);
  };
  const std::string v = "model.layers.0.self_attn.v_proj";
  const std::vector<Case> cases = {
      {"qweight shape", [&](Tiny& t) { find(t, v + ".qweight").shape = {4, 128}; },
       {"model.safetensors", v + ".qweight", "has shape [4, 128], expected [8, 64]"}},
      {"missing scales", [&](Tiny& t) {
         t.tensors.erase(std::remove_if(t.tensors.begin(), t.tensors.end(), [&](const Raw& r) { return r.name == "model.layers.0.mlp.up_proj.scales"; }),
                         t.tensors.end());
       },
       {"model.safetensors", "model.layers.0.mlp.up_proj.scales", "not found"}},
      {"bits 5", [](Tiny& t) { t.quant_config = R"({"quant_method": "gptq", "bits": 5, "group_size": 32})"; },
       {"config.json", "quantization_config", "'bits' = 5", "4 and 3 bits"}},
      {"group size 16", [](Tiny& t) { t.quant_config = R"({"quant_method": "gptq", "bits": 4, "group_size": 16})"; },
       {"config.json", "'group_size' = 16"}},
      {"scales dtype", [&](Tiny& t) {
         Raw& s = find(t, v + ".scales");
         std::vector<float> f(s.bytes.size() / 2, 0.01f);
         s.dtype = "F32";
         s.bytes = bytes_of(f);
       },
       {"model.safetensors", v + ".scales", "dtype F32, expected F16"}},
      {"g_idx out of range", [&](Tiny& t) { std::memcpy(find(t, v + ".g_idx").bytes.data() + 12, "\x63\0\0\0", 4); },
       {"model.safetensors", v + ".g_idx", "group 99 at input column 3"}},
      {"uneven groups", [&](Tiny& t) { std::memset(find(t, v + ".g_idx").bytes.data(), 0, 4 * 33); },
       {"model.safetensors", v + ".g_idx", "gives group 0 33 columns"}},
      {"awq gemv", [](Tiny& t) { t.quant_config = R"({"quant_method": "awq", "bits": 4, "group_size": 32, "version": "gemv"})"; },
       {"config.json", "'version' = 'gemv'"}},
      {"unknown method", [](Tiny& t) { t.quant_config = R"({"quant_method": "bitsandbytes"})"; },
       {"config.json", "'quant_method' = 'bitsandbytes'"}},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    Tiny t = make_tiny("gptq", 4, false, true, 21);
    k.corrupt(t);
    const std::string dir = qmeter::testing::test_output_dir("gptq_corrupt");
    write_folder(dir, t);
    const std::string e = load_error(dir);
    for (const std::string& s : k.expect) EXPECT_NE(e.find(s), std::string::npos) << "missing '" << s << "' in: " << e;
  }
}
