#include "optimizer.h"

#include <algorithm>
#include <cmath>

namespace qmeter::train {

double learning_rate(const TrainPreset& p, int step, int total) {
  if (step < p.warmup_steps) return p.lr * (step + 1) / p.warmup_steps;
  const int decay_steps = std::max(1, total - p.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - p.warmup_steps) / decay_steps);
  const double min_lr = p.lr * p.min_lr_ratio;
  return min_lr + 0.5 * (p.lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

double l2_norm(const std::vector<float>& v) {
  constexpr std::size_t kChunk = 1 << 14;
  const std::size_t chunks = (v.size() + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::size_t c = 0; c < chunks; ++c) {
    double s = 0;
    const std::size_t end = std::min(v.size(), (c + 1) * kChunk);
    for (std::size_t i = c * kChunk; i < end; ++i) s += static_cast<double>(v[i]) * v[i];
    partial[c] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

AdamW::AdamW(const ParamLayout& layout, const TrainPreset& preset)
    : decay_(layout.total(), 0),
      m_(layout.total(), 0.f),
      v_(layout.total(), 0.f),
      beta1_(preset.beta1),
      beta2_(preset.beta2),
      eps_(preset.adam_eps),
      weight_decay_(preset.weight_decay),
      clip_(preset.grad_clip) {
  for (const auto& t : layout.tensors())
    if (t.weight_decay) std::fill_n(decay_.begin() + static_cast<std::ptrdiff_t>(t.offset), t.size, 1);
}

double AdamW::step(std::vector<float>& params, std::vector<float>& grads, double lr) {
  const double norm = l2_norm(grads);
  const float clip_scale = (clip_ > 0 && norm > clip_) ? static_cast<float>(clip_ / norm) : 1.f;
  ++t_;
  const float b1 = static_cast<float>(beta1_), b2 = static_cast<float>(beta2_);
  const float bc1 = static_cast<float>(1.0 - std::pow(beta1_, static_cast<double>(t_)));
  const float bc2 = static_cast<float>(1.0 - std::pow(beta2_, static_cast<double>(t_)));
  const float lr_f = static_cast<float>(lr), eps = static_cast<float>(eps_);
  const float decay = static_cast<float>(lr * weight_decay_);
  const std::size_t n = params.size();
#pragma omp parallel for schedule(static) if (n > (1u << 15))
  for (std::size_t i = 0; i < n; ++i) {
    const float g = grads[i] * clip_scale;
    m_[i] = b1 * m_[i] + (1 - b1) * g;
    v_[i] = b2 * v_[i] + (1 - b2) * g * g;
    const float mhat = m_[i] / bc1, vhat = v_[i] / bc2;
    float p = params[i];
    if (decay_[i]) p -= decay * p;
    params[i] = p - lr_f * mhat / (std::sqrt(vhat) + eps);
  }
  return norm;
}

}  // namespace qmeter::train
