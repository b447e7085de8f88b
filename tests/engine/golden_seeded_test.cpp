// Golden values of the engine's seeded parts: synthetic weights (a benchmark's model is named by
// its seed), the sampler's draws, and the prefix-cache block hashes. Pinned so that moving their
// generator into core (issue 19) provably changes none of them.
#include <gtest/gtest.h>

#include <vector>

#include "qmeter/core/hash.h"
#include "qmeter/engine/kv_cache.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/sampling.h"

namespace qmeter::engine {
namespace {

std::uint64_t digest(const Matrix& m, std::size_t bytes_per_elem) {
  return fnv1a64_bytes(m.data, static_cast<std::size_t>(m.rows) * m.cols * bytes_per_elem);
}

TEST(GoldenSeeded, SyntheticWeightsArePinned) {
  auto f32 = load_model("synthetic:tiny:f32:7");
  EXPECT_EQ(digest(f32->weights.token_embedding, 4), 0xc230f0371a59c0d6ULL);
  EXPECT_EQ(digest(f32->weights.layers[0].w_up, 4), 0xbf93646d45a59dd4ULL);
  auto bf16 = load_model("synthetic:tiny:bf16:3");
  EXPECT_EQ(digest(bf16->weights.layers[1].w_down, 2), 0x4c963af83723c75eULL);
}

TEST(GoldenSeeded, SamplerDrawsArePinned) {
  std::vector<float> logits(50);
  for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i % 7) * 0.3f;
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 1234;
  Sampler s(p);
  std::string drawn;
  for (int i = 0; i < 16; ++i) drawn += std::to_string(s.sample(logits)) + ",";
  EXPECT_EQ(drawn, "16,12,41,20,32,6,27,41,6,33,19,13,9,41,29,12,");
}

TEST(GoldenSeeded, PrefixBlockHashesArePinned) {
  KvLayout l;
  l.n_layers = 2;
  l.kv_dim = 64;
  l.head_dim = 16;
  l.block_size = 16;
  const KvBlockHash root = kv_prefix_root_hash(l);
  EXPECT_EQ(root, 0xbeb2ff8fe57e7009ULL);
  const std::vector<int> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  EXPECT_EQ(kv_block_hash(root, tokens), 0xd047da105d07146cULL);
}

}  // namespace
}  // namespace qmeter::engine
