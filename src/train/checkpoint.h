#pragma once
// Resumable training state: weights, AdamW moments, step, loss history and the identity of the
// run (preset, model shape, seed, corpus fingerprint, total steps) that a resume must match.
#include <cstdint>
#include <string>
#include <vector>

namespace qmeter::train {

struct LossRecord {
  int step = 0;  // 1-based: the step that produced this loss
  double lr = 0, loss = 0, grad_norm = 0;
  std::int64_t tokens = 0;  // training tokens seen after this step
  double seconds = 0;       // training wall time after this step (summed over resumed runs)
};

struct Checkpoint {
  std::string identity;  // JSON text describing the run; resume requires an exact match
  int step = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  std::vector<float> params, adam_m, adam_v;
  std::vector<LossRecord> history;
};

// Atomic write (temp + rename). Throws Error naming the path.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);
// Throws UsageError naming the path when it is missing, truncated or not a checkpoint.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace qmeter::train
