#pragma once
// AdamW with decoupled weight decay, global-norm gradient clipping and the warm-up + cosine
// learning-rate schedule. Reductions run over fixed-size chunks in a fixed order, so the
// result does not depend on the thread count.
#include <cstdint>
#include <vector>

#include "qmeter/train/model.h"
#include "qmeter/train/train.h"

namespace qmeter::train {

// Linear warm-up from lr/warmup to lr, then cosine from lr down to lr * min_lr_ratio at `total`.
double learning_rate(const TrainPreset& p, int step, int total);

// L2 norm of a vector (fixed-order chunked double sum).
double l2_norm(const std::vector<float>& v);

class AdamW {
 public:
  AdamW() = default;
  AdamW(const ParamLayout& layout, const TrainPreset& preset);
  // Clips grads to the preset's global norm (returns the norm before clipping), then updates.
  double step(std::vector<float>& params, std::vector<float>& grads, double lr);
  std::int64_t steps_taken() const { return t_; }

  // State for checkpoints.
  std::vector<float>& first_moment() { return m_; }
  std::vector<float>& second_moment() { return v_; }
  void set_steps_taken(std::int64_t t) { t_ = t; }

 private:
  std::vector<char> decay_;  // per element: 1 when weight decay applies
  std::vector<float> m_, v_;
  double beta1_ = 0.9, beta2_ = 0.95, eps_ = 1e-8, weight_decay_ = 0.1, clip_ = 1.0;
  std::int64_t t_ = 0;
};

}  // namespace qmeter::train
