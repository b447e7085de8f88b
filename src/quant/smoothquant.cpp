// SmoothQuant W8A8 for one decoder layer (see smoothquant.h).
#include "smoothquant.h"

#include <algorithm>
#include <cmath>

#include "layer_access.h"
#include "qmeter/quant/linear_quant.h"

namespace qmeter::quant {

std::vector<float> smoothing_factors(const std::vector<float>& act_max, const std::vector<float>& weight_max, double alpha) {
  std::vector<float> s(act_max.size());
  for (std::size_t j = 0; j < s.size(); ++j) {
    const double a = std::max(static_cast<double>(act_max[j]), 1e-5);
    const double w = std::max(static_cast<double>(weight_max[j]), 1e-5);
    s[j] = static_cast<float>(std::max(std::pow(a, alpha) / std::pow(w, 1.0 - alpha), 1e-5));
  }
  return s;
}

namespace {

std::vector<float> column_absmax(const std::vector<float>& x, int cols) {
  std::vector<float> m(static_cast<std::size_t>(cols), 0.0f);
  for (std::size_t i = 0; i < x.size(); ++i) m[i % cols] = std::max(m[i % cols], std::fabs(x[i]));
  return m;
}

void quantize_a8(engine::Model& model, engine::Matrix& m, const float* w) {
  install_packed(model, m, engine::DType::kQ8RowA8, quantize_rtn_rows8(w, m.rows, m.cols).pack_a8());
}

// Smooths the linears after `norm` with the activations x (their common input), then quantizes them.
void smooth_and_quantize(engine::Model& model, std::vector<float>& norm, const std::vector<engine::Matrix*>& mats,
                         const std::vector<float>& x, double alpha) {
  const int cols = mats[0]->cols;
  std::vector<float*> ws;
  std::vector<float> wmax(static_cast<std::size_t>(cols), 0.0f);
  for (engine::Matrix* m : mats) {
    float* w = make_owned_f32(model, *m);
    ws.push_back(w);
    for (std::size_t i = 0; i < static_cast<std::size_t>(m->rows) * cols; ++i)
      wmax[i % cols] = std::max(wmax[i % cols], std::fabs(w[i]));
  }
  const std::vector<float> s = smoothing_factors(column_absmax(x, cols), wmax, alpha);
  for (int j = 0; j < cols; ++j) norm[static_cast<std::size_t>(j)] /= s[static_cast<std::size_t>(j)];
  for (std::size_t k = 0; k < mats.size(); ++k) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(mats[k]->rows) * cols; ++i) ws[k][i] *= s[i % cols];
    quantize_a8(model, *mats[k], ws[k]);
  }
}

void quantize_plain(engine::Model& model, engine::Matrix& m) {
  const float* w = make_owned_f32(model, m);
  quantize_a8(model, m, w);
}

}  // namespace

void smoothquant_layer(engine::Model& model, int l, const CalibState& st, double alpha, engine::ThreadPool* pool) {
  engine::LayerWeights& lw = model.weights.layers[static_cast<std::size_t>(l)];
  smooth_and_quantize(model, lw.attn_norm, {&lw.wq, &lw.wk, &lw.wv}, layer_forward(model, l, st, Stage::kAttnIn, pool), alpha);
  quantize_plain(model, lw.wo);
  // The FFN statistics come from the layer whose attention is already quantized.
  smooth_and_quantize(model, lw.ffn_norm, {&lw.w_gate, &lw.w_up}, layer_forward(model, l, st, Stage::kFfnIn, pool), alpha);
  quantize_plain(model, lw.w_down);
}

}  // namespace qmeter::quant
