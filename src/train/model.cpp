// The transformer's forward and backward passes, composed from layers.h and gemm.h.
#include "qmeter/train/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "qmeter/core/error.h"
#include "qmeter/train/gemm.h"
#include "qmeter/train/layers.h"

namespace qmeter::train {

using std::size_t;

void ModelConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw UsageError("model config: " + what);
  };
  need(vocab_size >= 8, fmt::format("vocab_size {} must be >= 8", vocab_size));
  need(dim >= 2 && n_heads >= 1 && dim % n_heads == 0, fmt::format("dim {} must be a multiple of n_heads {}", dim, n_heads));
  need(head_dim() % 2 == 0, fmt::format("head_dim {} must be even (RoPE pairs)", head_dim()));
  need(n_kv_heads >= 1 && n_heads % n_kv_heads == 0,
       fmt::format("n_heads {} must be a multiple of n_kv_heads {}", n_heads, n_kv_heads));
  need(n_layers >= 1, fmt::format("n_layers {} must be >= 1", n_layers));
  need(ffn_dim >= 1, fmt::format("ffn_dim {} must be >= 1", ffn_dim));
  need(max_seq_len >= 2, fmt::format("max_seq_len {} must be >= 2", max_seq_len));
  need(rope_theta > 0 && norm_eps > 0, "rope_theta and norm_eps must be positive");
}

ParamLayout::ParamLayout(const ModelConfig& c) {
  auto add = [&](std::string name, std::vector<int> shape, bool decay) {
    size_t n = 1;
    for (int d : shape) n *= static_cast<size_t>(d);
    tensors_.push_back(ParamTensor{std::move(name), std::move(shape), total_, n, decay});
    total_ += n;
  };
  const int hd = c.head_dim();
  add("model.embed_tokens.weight", {c.vocab_size, c.dim}, true);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    add(p + "input_layernorm.weight", {c.dim}, false);
    add(p + "self_attn.q_proj.weight", {c.n_heads * hd, c.dim}, true);
    add(p + "self_attn.k_proj.weight", {c.n_kv_heads * hd, c.dim}, true);
    add(p + "self_attn.v_proj.weight", {c.n_kv_heads * hd, c.dim}, true);
    add(p + "self_attn.o_proj.weight", {c.dim, c.n_heads * hd}, true);
    add(p + "post_attention_layernorm.weight", {c.dim}, false);
    add(p + "mlp.gate_proj.weight", {c.ffn_dim, c.dim}, true);
    add(p + "mlp.up_proj.weight", {c.ffn_dim, c.dim}, true);
    add(p + "mlp.down_proj.weight", {c.dim, c.ffn_dim}, true);
  }
  add("model.norm.weight", {c.dim}, false);
}

const ParamTensor& ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  throw Error("no parameter tensor named " + name);
}

// Everything the backward pass reads, kept from the forward pass (one set per layer).
template <typename T>
struct Transformer<T>::Activations {
  struct Layer {
    std::vector<T> x_in, inv_rms1, h1, q, k, v, probs, att, x_mid, inv_rms2, h2, gate, up, act;
  };
  std::vector<Layer> layers;
  std::vector<T> x_final, inv_rms_final, h_final, logits;
  std::vector<std::int32_t> targets;
  // Backward scratch.
  std::vector<T> dx, dh, d_att, dq, dk, dv, d_act, d_gate, d_up;
};

template <typename T>
Transformer<T>::Transformer(const ModelConfig& config)
    : config_(config), layout_((config.validate(), config)), acts_(std::make_unique<Activations>()) {
  params_.assign(layout_.total(), T(0));
  grads_.assign(layout_.total(), T(0));
}
template <typename T>
Transformer<T>::~Transformer() = default;
template <typename T>
Transformer<T>::Transformer(Transformer&&) noexcept = default;

template <typename T>
void Transformer<T>::init_random(std::uint64_t seed) {
  SplitMix64 rng(seed);
  const double out_scale = 1.0 / std::sqrt(2.0 * config_.n_layers);
  for (const auto& t : layout_.tensors()) {
    T* p = params_.data() + t.offset;
    if (t.shape.size() == 1) {
      std::fill_n(p, t.size, T(1));
      continue;
    }
    const bool residual_out = t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight");
    const double std_dev = 0.02 * (residual_out ? out_scale : 1.0);
    for (size_t i = 0; i < t.size; ++i) p[i] = static_cast<T>(rng.normal() * std_dev);
  }
}

template <typename T>
const std::vector<T>& Transformer<T>::logits() const {
  return acts_->logits;
}

namespace {
// y (rows x out) = x (rows x in) W^T, W is out x in.
template <typename T>
void linear(const T* x, const T* w, int rows, int in, int out, T* y) {
  gemm(GemmShape{rows, out, in, false, true, false}, x, in, w, in, y, out);
}
// dx (rows x in) (+)= dy (rows x out) W ; dW (out x in) += dy^T x.
template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, int rows, int in, int out, T* dx, bool accumulate_dx, T* dw) {
  gemm(GemmShape{rows, in, out, false, false, accumulate_dx}, dy, out, w, in, dx, in);
  gemm(GemmShape{out, in, rows, true, false, true}, dy, out, x, in, dw, in);
}
template <typename T>
void add_into(T* dst, const T* src, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 15))
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}
}  // namespace

template <typename T>
double Transformer<T>::run_forward(const std::int32_t* inputs, const std::int32_t* targets, int batch, int seq_len,
                                   std::int64_t* counted, bool gradient) {
  if (seq_len > config_.max_seq_len)
    throw Error(fmt::format("sequence length {} exceeds max_seq_len {}", seq_len, config_.max_seq_len));
  const ModelConfig& c = config_;
  const int rows = batch * seq_len, D = c.dim, hd = c.head_dim();
  const int qw = c.n_heads * hd, kw = c.n_kv_heads * hd, F = c.ffn_dim;
  for (int r = 0; r < rows; ++r)
    if (inputs[r] < 0 || inputs[r] >= c.vocab_size || targets[r] >= c.vocab_size)
      throw Error(fmt::format("token id out of range at row {}", r));
  Activations& a = *acts_;
  a.layers.resize(c.n_layers);
  std::vector<T> x(static_cast<size_t>(rows) * D);
  embedding_forward(inputs, rows, tensor(layout_.embed_index()), D, x.data());
  const AttentionShape shape{batch, seq_len, c.n_heads, c.n_kv_heads, hd};
  for (int l = 0; l < c.n_layers; ++l) {
    auto& L = a.layers[l];
    auto W = [&](ParamLayout::LayerTensor t) { return tensor(layout_.layer_index(l, t)); };
    L.x_in = x;
    L.inv_rms1.resize(rows);
    L.h1.resize(x.size());
    rmsnorm_forward(x.data(), W(ParamLayout::kAttnNorm), rows, D, c.norm_eps, L.h1.data(), L.inv_rms1.data());
    L.q.resize(static_cast<size_t>(rows) * qw);
    L.k.resize(static_cast<size_t>(rows) * kw);
    L.v.resize(static_cast<size_t>(rows) * kw);
    linear(L.h1.data(), W(ParamLayout::kWq), rows, D, qw, L.q.data());
    linear(L.h1.data(), W(ParamLayout::kWk), rows, D, kw, L.k.data());
    linear(L.h1.data(), W(ParamLayout::kWv), rows, D, kw, L.v.data());
    rope_apply(L.q.data(), rows, seq_len, c.n_heads, hd, c.rope_theta, false);
    rope_apply(L.k.data(), rows, seq_len, c.n_kv_heads, hd, c.rope_theta, false);
    L.probs.resize(static_cast<size_t>(batch) * c.n_heads * seq_len * seq_len);
    L.att.resize(static_cast<size_t>(rows) * qw);
    attention_forward(shape, L.q.data(), L.k.data(), L.v.data(), L.probs.data(), L.att.data());
    std::vector<T> o(x.size());
    linear(L.att.data(), W(ParamLayout::kWo), rows, qw, D, o.data());
    add_into(x.data(), o.data(), x.size());
    L.x_mid = x;
    L.inv_rms2.resize(rows);
    L.h2.resize(x.size());
    rmsnorm_forward(x.data(), W(ParamLayout::kMlpNorm), rows, D, c.norm_eps, L.h2.data(), L.inv_rms2.data());
    L.gate.resize(static_cast<size_t>(rows) * F);
    L.up.resize(L.gate.size());
    L.act.resize(L.gate.size());
    linear(L.h2.data(), W(ParamLayout::kWGate), rows, D, F, L.gate.data());
    linear(L.h2.data(), W(ParamLayout::kWUp), rows, D, F, L.up.data());
    swiglu_forward(L.gate.data(), L.up.data(), static_cast<std::int64_t>(L.gate.size()), L.act.data());
    linear(L.act.data(), W(ParamLayout::kWDown), rows, F, D, o.data());
    add_into(x.data(), o.data(), x.size());
  }
  a.x_final = x;
  a.inv_rms_final.resize(rows);
  a.h_final.resize(x.size());
  rmsnorm_forward(x.data(), tensor(layout_.final_norm_index()), rows, D, c.norm_eps, a.h_final.data(),
                  a.inv_rms_final.data());
  a.logits.resize(static_cast<size_t>(rows) * c.vocab_size);
  linear(a.h_final.data(), tensor(layout_.embed_index()), rows, D, c.vocab_size, a.logits.data());
  a.targets.assign(targets, targets + rows);
  return cross_entropy(a.logits.data(), targets, rows, c.vocab_size, gradient, counted);
}

template <typename T>
void Transformer<T>::run_backward(const std::int32_t* inputs, int batch, int seq_len) {
  const ModelConfig& c = config_;
  const int rows = batch * seq_len, D = c.dim, hd = c.head_dim();
  const int qw = c.n_heads * hd, kw = c.n_kv_heads * hd, F = c.ffn_dim;
  Activations& a = *acts_;
  std::fill(grads_.begin(), grads_.end(), T(0));
  auto G = [&](size_t index) { return grads_.data() + layout_.tensors()[index].offset; };
  const size_t n = static_cast<size_t>(rows) * D;
  a.dx.resize(n);
  a.dh.resize(n);
  // logits = h_final E^T (tied embedding); a.logits now holds d(loss)/d(logits).
  linear_backward(a.h_final.data(), tensor(layout_.embed_index()), a.logits.data(), rows, D, c.vocab_size,
                  a.dh.data(), false, G(layout_.embed_index()));
  rmsnorm_backward(a.x_final.data(), tensor(layout_.final_norm_index()), a.inv_rms_final.data(), a.dh.data(), rows,
                   D, a.dx.data(), G(layout_.final_norm_index()), false);
  const AttentionShape shape{batch, seq_len, c.n_heads, c.n_kv_heads, hd};
  for (int l = c.n_layers - 1; l >= 0; --l) {
    auto& L = a.layers[l];
    auto W = [&](ParamLayout::LayerTensor t) { return tensor(layout_.layer_index(l, t)); };
    auto GW = [&](ParamLayout::LayerTensor t) { return G(layout_.layer_index(l, t)); };
    // MLP block: x_out = x_mid + down(swiglu(gate(h2), up(h2))).
    a.d_act.resize(static_cast<size_t>(rows) * F);
    a.d_gate.resize(a.d_act.size());
    a.d_up.resize(a.d_act.size());
    linear_backward(L.act.data(), W(ParamLayout::kWDown), a.dx.data(), rows, F, D, a.d_act.data(), false,
                    GW(ParamLayout::kWDown));
    swiglu_backward(L.gate.data(), L.up.data(), a.d_act.data(), static_cast<std::int64_t>(a.d_act.size()),
                    a.d_gate.data(), a.d_up.data());
    linear_backward(L.h2.data(), W(ParamLayout::kWGate), a.d_gate.data(), rows, D, F, a.dh.data(), false,
                    GW(ParamLayout::kWGate));
    linear_backward(L.h2.data(), W(ParamLayout::kWUp), a.d_up.data(), rows, D, F, a.dh.data(), true,
                    GW(ParamLayout::kWUp));
    rmsnorm_backward(L.x_mid.data(), W(ParamLayout::kMlpNorm), L.inv_rms2.data(), a.dh.data(), rows, D, a.dx.data(),
                     GW(ParamLayout::kMlpNorm), true);
    // Attention block: x_mid = x_in + o_proj(attention(rope(q(h1)), rope(k(h1)), v(h1))).
    a.d_att.resize(static_cast<size_t>(rows) * qw);
    linear_backward(L.att.data(), W(ParamLayout::kWo), a.dx.data(), rows, qw, D, a.d_att.data(), false,
                    GW(ParamLayout::kWo));
    a.dq.resize(static_cast<size_t>(rows) * qw);
    a.dk.resize(static_cast<size_t>(rows) * kw);
    a.dv.resize(static_cast<size_t>(rows) * kw);
    attention_backward(shape, L.q.data(), L.k.data(), L.v.data(), L.probs.data(), a.d_att.data(), a.dq.data(),
                       a.dk.data(), a.dv.data());
    rope_apply(a.dq.data(), rows, seq_len, c.n_heads, hd, c.rope_theta, true);
    rope_apply(a.dk.data(), rows, seq_len, c.n_kv_heads, hd, c.rope_theta, true);
    linear_backward(L.h1.data(), W(ParamLayout::kWq), a.dq.data(), rows, D, qw, a.dh.data(), false,
                    GW(ParamLayout::kWq));
    linear_backward(L.h1.data(), W(ParamLayout::kWk), a.dk.data(), rows, D, kw, a.dh.data(), true,
                    GW(ParamLayout::kWk));
    linear_backward(L.h1.data(), W(ParamLayout::kWv), a.dv.data(), rows, D, kw, a.dh.data(), true,
                    GW(ParamLayout::kWv));
    rmsnorm_backward(L.x_in.data(), W(ParamLayout::kAttnNorm), L.inv_rms1.data(), a.dh.data(), rows, D, a.dx.data(),
                     GW(ParamLayout::kAttnNorm), true);
  }
  embedding_backward(inputs, rows, a.dx.data(), D, G(layout_.embed_index()));
}

template <typename T>
double Transformer<T>::forward(const std::int32_t* inputs, const std::int32_t* targets, int batch, int seq_len,
                               std::int64_t* counted) {
  return run_forward(inputs, targets, batch, seq_len, counted, false);
}

template <typename T>
double Transformer<T>::forward_backward(const std::int32_t* inputs, const std::int32_t* targets, int batch,
                                        int seq_len, std::int64_t* counted) {
  const double nll = run_forward(inputs, targets, batch, seq_len, counted, true);
  run_backward(inputs, batch, seq_len);
  return nll;
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace qmeter::train
