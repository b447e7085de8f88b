#pragma once
// `qmeter train`: trains a small LLaMA-family reference model from scratch on the CPU and writes
// it as a Hugging Face folder (config.json, model.safetensors in F32, tokenizer.model +
// tokenizer_config.json) that the engine's HF loader reads like any downloaded model.
//
// Output folder (DIR):
//   config.json, model.safetensors, tokenizer.model, tokenizer_config.json  the model
//   training.json   held-out mean NLL / perplexity, unigram baseline, params, steps, time, tokens
//   loss.csv        step, lr, train loss, gradient norm, tokens seen, seconds
//   heldout.txt     the held-out text the figures in training.json were computed on
//   checkpoint.bin  weights + AdamW state + step, for --resume
// Held-out protocol: the held-out text is tokenized (no BOS), cut into chunks of max_seq_len - 2
// tokens, and each chunk is scored as [BOS, chunk[0..m-2]] -> chunk[0..m-1]: every held-out token
// is predicted once, from BOS plus the preceding tokens of its chunk. BOS + chunk is one token
// shorter than the context because an OpenAI echo request also generates one token: these are
// exactly the windows `qmeter eval --ppl-mode window` scores through any server, so the figure in
// training.json can be reproduced through `qmeter serve`.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qmeter/train/model.h"

namespace qmeter::train {

struct TrainPreset {
  std::string name;
  ModelConfig model;
  int batch_size = 16;      // sequences of model.max_seq_len tokens per step
  int steps = 600;
  double lr = 3e-3;         // peak learning rate
  double min_lr_ratio = 0.1;  // cosine decays to lr * min_lr_ratio
  int warmup_steps = 40;
  double weight_decay = 0.1;
  double grad_clip = 1.0;   // global L2 norm
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  int checkpoint_every = 100;
};

// "tiny" (the quickstart's reference model), "small" (bigger, slower), "test" (seconds; tests).
TrainPreset find_preset(const std::string& name);  // throws UsageError listing the presets
std::vector<std::string> preset_names();

struct TrainOptions {
  std::vector<std::string> corpus_paths;  // text files (UTF-8), concatenated in order
  std::string out_dir;
  std::string preset = "tiny";
  std::uint64_t seed = 1;
  int threads = 0;          // 0 = all hardware threads
  int steps = 0;            // 0 = the preset's
  bool resume = false;      // continue from out_dir/checkpoint.bin
  int stop_after = 0;       // > 0: stop once this run has done this many steps (checkpoint kept)
  bool progress = true;     // progress bar (terminal) or periodic lines on stderr
  std::function<bool()> interrupted;  // polled every step; true = checkpoint and stop
  const TrainPreset* preset_override = nullptr;  // tests: train with this instead of `preset`
};

struct HeldOutFigures {
  double mean_nll = 0;          // nats per token
  double perplexity = 0;
  double unigram_entropy = 0;   // held-out cross-entropy under the train unigram distribution
  std::int64_t tokens = 0;
};

struct TrainResult {
  std::string out_dir;
  bool completed = false;       // false when stopped early (stop_after or interrupted)
  int step = 0;                 // steps done so far (including resumed ones)
  int total_steps = 0;
  HeldOutFigures heldout;       // valid when completed
  std::size_t params = 0;
  std::int64_t train_tokens = 0;  // tokens in the train split
  double seconds = 0;           // wall time of this run
  double cpu_seconds = 0;       // process CPU time of this run
};

TrainResult train_model(const TrainOptions& options);

// Held-out tokens per scored chunk for a context of `max_seq_len` (see the protocol above).
constexpr int heldout_chunk_tokens(int max_seq_len) { return max_seq_len - 2; }

// The folder under `cache_dir` that `train_model` output for these inputs lives in: named by the
// preset and a hash of the corpus bytes, preset, seed and step count.
std::string cache_folder(const std::string& cache_dir, const std::vector<std::string>& corpus_paths,
                         const std::string& preset, std::uint64_t seed, int steps);
// True when `dir` holds a finished model (training.json written last).
bool is_complete_model_dir(const std::string& dir);

}  // namespace qmeter::train
