// The model sizes `qmeter train --preset` offers. `tiny` is the quickstart's reference model:
// sized to train in under five minutes on two cores (about 1.2 M tokens, one pass over the
// King James Bible) while being large enough (3.2 M parameters, 256-wide, GQA 8/4 heads) that
// 4-bit and 3-bit weight quantization visibly raise its perplexity.
#include <fmt/format.h>

#include "qmeter/core/error.h"
#include "qmeter/train/train.h"

namespace qmeter::train {
namespace {

std::vector<TrainPreset> all_presets() {
  std::vector<TrainPreset> out;
  {
    TrainPreset p;
    p.name = "tiny";
    p.model = ModelConfig{1024, 256, 4, 8, 4, 688, 128, 10000.0, 1e-5};
    p.batch_size = 16;
    p.steps = 600;
    p.lr = 3e-3;
    p.warmup_steps = 40;
    p.checkpoint_every = 100;
    out.push_back(p);
  }
  {
    TrainPreset p;
    p.name = "small";
    p.model = ModelConfig{2048, 384, 6, 6, 2, 1024, 256, 10000.0, 1e-5};
    p.batch_size = 16;
    p.steps = 3000;
    p.lr = 2e-3;
    p.warmup_steps = 100;
    p.checkpoint_every = 200;
    out.push_back(p);
  }
  {
    TrainPreset p;
    p.name = "test";
    p.model = ModelConfig{320, 32, 2, 4, 2, 64, 32, 10000.0, 1e-5};
    p.batch_size = 8;
    p.steps = 200;
    p.lr = 1e-2;
    p.warmup_steps = 20;
    p.checkpoint_every = 50;
    out.push_back(p);
  }
  return out;
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : all_presets()) names.push_back(p.name);
  return names;
}

TrainPreset find_preset(const std::string& name) {
  for (const auto& p : all_presets())
    if (p.name == name) return p;
  throw UsageError(fmt::format("--preset: unknown preset '{}' (known: {})", name, fmt::join(preset_names(), ", ")));
}

}  // namespace qmeter::train
