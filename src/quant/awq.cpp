// AWQ for one decoder layer (see awq.h).
#include "awq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "layer_access.h"
#include "qmeter/quant/linear_quant.h"

namespace qmeter::quant {

namespace {

constexpr int kGrid = 20;              // exponent grid over [0, 1)
constexpr int kMaxSearchTokens = 2048; // activations used by the scale search
constexpr int kClipTokens = 512;       // ... and by the clipping search
constexpr int kClipSteps = 10;         // max shrink 0.5 in steps of 1/20

struct Linear {
  engine::Matrix* m;
  float* w;  // owned f32, [rows][cols]
};

// Every `step`-th row of x (n x cols), at most `limit` rows.
std::vector<float> subsample(const std::vector<float>& x, int cols, int limit) {
  const int n = static_cast<int>(x.size() / cols);
  const int step = std::max(1, n / limit);
  std::vector<float> out;
  for (int t = 0; t < n && static_cast<int>(out.size() / cols) < limit; t += step)
    out.insert(out.end(), x.begin() + static_cast<std::size_t>(t) * cols, x.begin() + static_cast<std::size_t>(t + 1) * cols);
  return out;
}

double output_error(const std::vector<Linear>& lins, const std::vector<float>& x, const std::vector<std::vector<float>>& ref,
                    const std::vector<float>& col_scale, int bits, int group_size, engine::ThreadPool* pool) {
  const int cols = lins[0].m->cols, n = static_cast<int>(x.size() / cols);
  double err = 0.0;
  for (std::size_t i = 0; i < lins.size(); ++i) {
    const int rows = lins[i].m->rows;
    std::vector<float> ws(static_cast<std::size_t>(rows) * cols);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) ws[static_cast<std::size_t>(r) * cols + c] = lins[i].w[static_cast<std::size_t>(r) * cols + c] * col_scale[c];
    std::vector<float> dq = quantize_rtn_groups(ws.data(), rows, cols, bits, effective_group_size(group_size, cols), false).dequantized();
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) dq[static_cast<std::size_t>(r) * cols + c] /= col_scale[c];
    std::vector<float> y(static_cast<std::size_t>(n) * rows);
    engine::matmul(engine::Matrix{engine::DType::kF32, rows, cols, dq.data()}, x.data(), n, y.data(), pool);
    for (std::size_t j = 0; j < y.size(); ++j) {
      const double d = static_cast<double>(y[j]) - ref[i][j];
      err += d * d;
    }
  }
  return err;
}

// The grid search of s = mean|x|^alpha; returns the best per-column scales (all 1 when alpha = 0 wins).
std::vector<float> search_scales(const std::vector<Linear>& lins, const std::vector<float>& x_all,
                                 const std::vector<int>& col_to_channel, int channels, int bits, int group_size,
                                 engine::ThreadPool* pool) {
  const int cols = lins[0].m->cols;
  const std::vector<float> x = subsample(x_all, cols, kMaxSearchTokens);
  const int n = static_cast<int>(x.size() / cols);
  // Mean |x| per channel (a channel of the preceding op may feed several columns under GQA).
  std::vector<double> mean(channels, 0.0);
  std::vector<int> count(channels, 0);
  for (int t = 0; t < n; ++t)
    for (int c = 0; c < cols; ++c) mean[col_to_channel[c]] += std::fabs(x[static_cast<std::size_t>(t) * cols + c]);
  for (int c = 0; c < cols; ++c) count[col_to_channel[c]] += n;
  for (int ch = 0; ch < channels; ++ch) mean[ch] /= std::max(count[ch], 1);
  std::vector<std::vector<float>> ref(lins.size());
  for (std::size_t i = 0; i < lins.size(); ++i) {
    ref[i].resize(static_cast<std::size_t>(n) * lins[i].m->rows);
    engine::matmul(engine::Matrix{engine::DType::kF32, lins[i].m->rows, cols, lins[i].w}, x.data(), n, ref[i].data(), pool);
  }
  double best = std::numeric_limits<double>::infinity();
  std::vector<float> best_scale(channels, 1.0f), col_scale(cols);
  for (int k = 0; k < kGrid; ++k) {
    const double alpha = static_cast<double>(k) / kGrid;
    std::vector<float> s(channels);
    double lo = std::numeric_limits<double>::infinity(), hi = 0.0;
    for (int ch = 0; ch < channels; ++ch) {
      s[ch] = static_cast<float>(std::max(std::pow(std::max(mean[ch], 1e-8), alpha), 1e-4));
      lo = std::min(lo, static_cast<double>(s[ch]));
      hi = std::max(hi, static_cast<double>(s[ch]));
    }
    const float norm = static_cast<float>(std::sqrt(lo * hi));  // keep the scales centred around 1
    for (float& v : s) v /= norm;
    for (int c = 0; c < cols; ++c) col_scale[c] = s[col_to_channel[c]];
    const double err = output_error(lins, x, ref, col_scale, bits, group_size, pool);
    if (err < best) {
      best = err;
      best_scale = s;
    }
  }
  return best_scale;
}

void apply_scales(const std::vector<Linear>& lins, const std::vector<int>& col_to_channel, const std::vector<float>& s) {
  for (const Linear& l : lins)
    for (int r = 0; r < l.m->rows; ++r)
      for (int c = 0; c < l.m->cols; ++c) l.w[static_cast<std::size_t>(r) * l.m->cols + c] *= s[col_to_channel[c]];
}

// Clipping search: per row and group, the max |w| (shrunk by up to 50%) minimising the group's
// output error on kClipTokens tokens; the weights are clamped to the best range.
void clip_search(const Linear& l, const std::vector<float>& x_all, int bits, int group_size) {
  const int rows = l.m->rows, cols = l.m->cols, gs = effective_group_size(group_size, cols);
  const std::vector<float> x = subsample(x_all, cols, kClipTokens);
  const int n = static_cast<int>(x.size() / cols);
  std::vector<float> cand(gs), diff(gs);
  for (int r = 0; r < rows; ++r) {
    float* wr = l.w + static_cast<std::size_t>(r) * cols;
    for (int c0 = 0; c0 < cols; c0 += gs) {
      const int len = std::min(cols, c0 + gs) - c0;
      float org_max = 0.0f;
      for (int i = 0; i < len; ++i) org_max = std::max(org_max, std::fabs(wr[c0 + i]));
      if (org_max == 0.0f) continue;
      double best = std::numeric_limits<double>::infinity();
      float best_max = org_max;
      for (int step = 0; step < kClipSteps; ++step) {
        const float mx = org_max * (1.0f - static_cast<float>(step) / kGrid);
        for (int i = 0; i < len; ++i) cand[i] = std::clamp(wr[c0 + i], -mx, mx);
        float scale;
        std::uint8_t zero;
        group_params(cand.data(), len, 1, bits, false, scale, zero);
        for (int i = 0; i < len; ++i)
          diff[i] = scale * (static_cast<int>(quantize_value(cand[i], scale, zero, bits)) - zero) - wr[c0 + i];
        double err = 0.0;
        for (int t = 0; t < n; ++t) {
          const float* xt = x.data() + static_cast<std::size_t>(t) * cols + c0;
          double d = 0.0;
          for (int i = 0; i < len; ++i) d += static_cast<double>(xt[i]) * diff[i];
          err += d * d;
        }
        if (err < best) {
          best = err;
          best_max = mx;
        }
      }
      for (int i = 0; i < len; ++i) wr[c0 + i] = std::clamp(wr[c0 + i], -best_max, best_max);
    }
  }
}

std::vector<int> identity_map(int n) {
  std::vector<int> m(n);
  for (int i = 0; i < n; ++i) m[i] = i;
  return m;
}

}  // namespace

void awq_quantize_layer(engine::Model& model, int l, const CalibState& st, int bits, int group_size, engine::ThreadPool* pool) {
  const engine::ModelConfig& c = model.config;
  engine::LayerWeights& lw = model.weights.layers[l];
  auto own = [&](engine::Matrix& m) { return Linear{&m, make_owned_f32(model, m)}; };
  const Linear q = own(lw.wq), k = own(lw.wk), v = own(lw.wv), o = own(lw.wo), gate = own(lw.w_gate), up = own(lw.w_up),
               down = own(lw.w_down);

  // 1. q/k/v: scales folded into the attention RMSNorm weight.
  {
    const std::vector<Linear> lins = {q, k, v};
    const std::vector<int> map = identity_map(c.dim);
    const auto s = search_scales(lins, layer_forward(model, l, st, Stage::kAttnIn, pool), map, c.dim, bits, group_size, pool);
    apply_scales(lins, map, s);
    for (int i = 0; i < c.dim; ++i) lw.attn_norm[i] /= s[i];
  }
  // 2. o: scales per value channel, folded into wv's rows (a kv channel feeds group heads' columns).
  {
    const int group = c.n_heads / c.n_kv_heads;
    std::vector<int> map(c.q_dim());
    for (int col = 0; col < c.q_dim(); ++col) map[col] = (col / c.head_dim / group) * c.head_dim + col % c.head_dim;
    const auto s = search_scales({o}, layer_forward(model, l, st, Stage::kAttnOut, pool), map, c.kv_dim(), bits, group_size, pool);
    apply_scales({o}, map, s);
    for (int r = 0; r < c.kv_dim(); ++r)
      for (int col = 0; col < c.dim; ++col) v.w[static_cast<std::size_t>(r) * c.dim + col] /= s[r];
  }
  // 3. gate/up: scales folded into the FFN RMSNorm weight.
  {
    const std::vector<Linear> lins = {gate, up};
    const std::vector<int> map = identity_map(c.dim);
    const auto s = search_scales(lins, layer_forward(model, l, st, Stage::kFfnIn, pool), map, c.dim, bits, group_size, pool);
    apply_scales(lins, map, s);
    for (int i = 0; i < c.dim; ++i) lw.ffn_norm[i] /= s[i];
  }
  // 4. down: scales folded into up's rows (silu(gate) * up is linear in up).
  {
    const std::vector<int> map = identity_map(c.hidden_dim);
    const auto s = search_scales({down}, layer_forward(model, l, st, Stage::kDownIn, pool), map, c.hidden_dim, bits, group_size, pool);
    apply_scales({down}, map, s);
    for (int r = 0; r < c.hidden_dim; ++r)
      for (int col = 0; col < c.dim; ++col) up.w[static_cast<std::size_t>(r) * c.dim + col] /= s[r];
  }
  // 5. Clipping (not for q/k, as AWQ: their errors are amplified through the softmax), on the
  //    scaled model's activations.
  clip_search(v, layer_forward(model, l, st, Stage::kAttnIn, pool), bits, group_size);
  clip_search(o, layer_forward(model, l, st, Stage::kAttnOut, pool), bits, group_size);
  {
    const std::vector<float> x = layer_forward(model, l, st, Stage::kFfnIn, pool);
    clip_search(gate, x, bits, group_size);
    clip_search(up, x, bits, group_size);
  }
  clip_search(down, layer_forward(model, l, st, Stage::kDownIn, pool), bits, group_size);
  // 6. Group-wise asymmetric RTN of the scaled, clipped weights.
  for (const Linear& lin : {q, k, v, o, gate, up, down}) {
    const int gs = effective_group_size(group_size, lin.m->cols);
    install_packed(model, *lin.m, engine::DType::kQ4Group,
                   quantize_rtn_groups(lin.w, lin.m->rows, lin.m->cols, bits, gs, false).pack());
  }
}

}  // namespace qmeter::quant
