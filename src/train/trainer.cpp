// The training loop of `qmeter train`: corpus -> tokenizer -> AdamW steps with checkpoints ->
// held-out evaluation -> Hugging Face folder.
#include <fmt/format.h>
#include <omp.h>
#include <sentencepiece_processor.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "checkpoint.h"
#include "corpus.h"
#include "hf_export.h"
#include "optimizer.h"
#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"
#include "qmeter/core/hash.h"
#include "qmeter/core/paths.h"
#include "qmeter/train/train.h"

namespace qmeter::train {
namespace fs = std::filesystem;
namespace {

constexpr int kBos = 1;

double cpu_seconds_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int total = static_cast<int>(s + 0.5);
  return total >= 60 ? fmt::format("{}m{:02d}s", total / 60, total % 60) : fmt::format("{}s", total);
}

// The batch of step `step`: `batch` windows of seq_len tokens at offsets drawn from (seed, step),
// so a resumed run sees exactly the batches an uninterrupted one would.
void make_batch(const std::vector<std::int32_t>& tokens, std::uint64_t seed, int step, int batch, int seq_len,
                std::vector<std::int32_t>& inputs, std::vector<std::int32_t>& targets) {
  SplitMix64 rng(seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(step) + 1);
  rng.next();
  inputs.resize(static_cast<std::size_t>(batch) * seq_len);
  targets.resize(inputs.size());
  const std::uint64_t starts = tokens.size() - static_cast<std::size_t>(seq_len) + 1;
  for (int b = 0; b < batch; ++b) {
    const std::size_t start = rng.below(starts);
    std::int32_t* in = inputs.data() + static_cast<std::size_t>(b) * seq_len;
    std::int32_t* tg = targets.data() + static_cast<std::size_t>(b) * seq_len;
    in[0] = kBos;
    for (int t = 0; t < seq_len; ++t) {
      tg[t] = tokens[start + t];
      if (t + 1 < seq_len) in[t + 1] = tokens[start + t];
    }
  }
}

// Held-out protocol (train.h): chunks of max_seq_len - 2 tokens, each scored after a BOS.
std::pair<double, std::int64_t> heldout_nll(Transformer<float>& model, const std::vector<std::int32_t>& tokens,
                                            int batch) {
  const int n = model.config().max_seq_len;
  const int chunk = heldout_chunk_tokens(n);
  const std::size_t chunks = (tokens.size() + chunk - 1) / chunk;
  double total = 0;
  std::int64_t count = 0;
  std::vector<std::int32_t> inputs, targets;
  for (std::size_t c0 = 0; c0 < chunks; c0 += batch) {
    const int rows = static_cast<int>(std::min<std::size_t>(batch, chunks - c0));
    inputs.assign(static_cast<std::size_t>(rows) * n, 0);
    targets.assign(inputs.size(), -1);
    for (int b = 0; b < rows; ++b) {
      const std::size_t begin = (c0 + b) * chunk;
      const std::size_t len = std::min<std::size_t>(chunk, tokens.size() - begin);
      inputs[static_cast<std::size_t>(b) * n] = kBos;
      for (std::size_t t = 0; t < len; ++t) {
        targets[static_cast<std::size_t>(b) * n + t] = tokens[begin + t];
        if (t + 1 < static_cast<std::size_t>(n)) inputs[static_cast<std::size_t>(b) * n + t + 1] = tokens[begin + t];
      }
    }
    std::int64_t counted = 0;
    total += model.forward(inputs.data(), targets.data(), rows, n, &counted);
    count += counted;
  }
  return {total, count};
}

// Cross-entropy of the held-out tokens under the train split's unigram distribution
// (add-one smoothed so that unseen tokens have finite cost).
double unigram_entropy(const std::vector<std::int32_t>& train, const std::vector<std::int32_t>& heldout, int vocab) {
  std::vector<double> counts(vocab, 1.0);
  for (auto t : train) counts[t] += 1;
  const double total = static_cast<double>(train.size()) + vocab;
  double nll = 0;
  for (auto t : heldout) nll -= std::log(counts[t] / total);
  return heldout.empty() ? 0.0 : nll / static_cast<double>(heldout.size());
}

std::string identity_json(const TrainPreset& p, const ModelConfig& m, std::uint64_t seed, int total_steps,
                          std::uint64_t corpus) {
  nlohmann::ordered_json j = {
      {"preset", p.name}, {"seed", seed}, {"steps", total_steps}, {"corpus_fnv1a64", fmt::format("{:016x}", corpus)},
      {"vocab_size", m.vocab_size}, {"dim", m.dim}, {"n_layers", m.n_layers}, {"n_heads", m.n_heads},
      {"n_kv_heads", m.n_kv_heads}, {"ffn_dim", m.ffn_dim}, {"max_seq_len", m.max_seq_len},
      {"batch_size", p.batch_size}, {"lr", p.lr}, {"warmup_steps", p.warmup_steps}};
  return j.dump();
}

void write_loss_csv(const std::string& path, const std::vector<LossRecord>& history) {
  std::string text = "step,lr,loss,grad_norm,tokens,seconds\n";
  for (const auto& r : history)
    text += fmt::format("{},{:.6g},{:.6f},{:.6f},{},{:.3f}\n", r.step, r.lr, r.loss, r.grad_norm, r.tokens, r.seconds);
  write_text_file(path, text);
}

class Progress {
 public:
  Progress(bool enabled, int total) : enabled_(enabled), tty_(isatty(2) != 0), total_(total) {}
  void update(int step, double loss, double lr, double tok_per_s, double eta_s) {
    if (!enabled_) return;
    if (tty_) {
      const int width = 30, filled = static_cast<int>(static_cast<double>(width) * step / total_);
      fmt::print(stderr, "\r[{}{}] {}/{} loss {:.3f} lr {:.2e} {:.0f} tok/s ETA {}   ", std::string(filled, '#'),
                 std::string(width - filled, '.'), step, total_, loss, lr, tok_per_s, format_duration(eta_s));
    } else if (step == total_ || step % std::max(1, total_ / 20) == 0) {
      fmt::print(stderr, "step {}/{} loss {:.4f} lr {:.2e} {:.0f} tok/s ETA {}\n", step, total_, loss, lr, tok_per_s,
                 format_duration(eta_s));
    }
  }
  void done() {
    if (enabled_ && tty_) fmt::print(stderr, "\n");
  }

 private:
  bool enabled_, tty_;
  int total_;
};

}  // namespace

std::string cache_folder(const std::string& cache_dir, const std::vector<std::string>& corpus_paths,
                         const std::string& preset, std::uint64_t seed, int steps) {
  const TrainPreset p = find_preset(preset);
  const int total = steps > 0 ? steps : p.steps;
  std::uint64_t h = corpus_fingerprint(corpus_paths);
  const std::string key = identity_json(p, p.model, seed, total, h) + "|format=2";  // 2: held-out chunks of max_seq_len - 2
  h = fnv1a64(key, h);
  return (fs::path(cache_dir) / fmt::format("{}-{:016x}", preset, h)).string();
}

bool is_complete_model_dir(const std::string& dir) {
  return fs::exists(fs::path(dir) / "training.json") && fs::exists(fs::path(dir) / "model.safetensors");
}

TrainResult train_model(const TrainOptions& o) {
  const Nanos t_start = steady_now_ns();
  const double cpu_start = cpu_seconds_now();
  const TrainPreset preset = o.preset_override ? *o.preset_override : find_preset(o.preset);
  const int total_steps = o.steps > 0 ? o.steps : preset.steps;
  if (o.out_dir.empty()) throw UsageError("--out: an output folder is required");
  if (o.threads < 0) throw UsageError(fmt::format("--threads: {} is not a thread count", o.threads));
  const int threads = o.threads > 0 ? o.threads : std::max(1, omp_get_num_procs());
  omp_set_num_threads(threads);
  const fs::path out(o.out_dir);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw Error(fmt::format("--out: cannot create '{}': {}", o.out_dir, ec.message()));

  // Corpus and tokenizer (a resumed run reuses the tokenizer it started with).
  const std::string checkpoint_path = (out / "checkpoint.bin").string();
  if (o.resume && !fs::exists(checkpoint_path))
    throw UsageError(fmt::format("--resume: no checkpoint at '{}'", checkpoint_path));
  fs::remove(out / "training.json", ec);  // the folder is incomplete until training.json is rewritten
  const CorpusSplit corpus = load_corpus(o.corpus_paths);
  std::string tokenizer_model;
  if (o.resume && fs::exists(out / "tokenizer.model")) {
    tokenizer_model = read_file((out / "tokenizer.model").string());
  } else {
    if (o.progress) fmt::print(stderr, "training a {}-piece SentencePiece BPE tokenizer on {} lines\n",
                               preset.model.vocab_size, corpus.train_lines.size());
    tokenizer_model = train_sentencepiece(corpus.train_lines, preset.model.vocab_size);
    write_text_file((out / "tokenizer.model").string(), tokenizer_model);
  }
  ModelConfig mc = preset.model;
  {
    sentencepiece::SentencePieceProcessor sp;
    if (!sp.LoadFromSerializedProto(tokenizer_model).ok()) throw Error("cannot load " + (out / "tokenizer.model").string());
    mc.vocab_size = sp.GetPieceSize();  // may be below the preset's on a small corpus
    if (sp.bos_id() != kBos) throw Error("tokenizer.model: BOS id is not 1");
  }
  const std::vector<std::int32_t> train_ids = encode_lines(tokenizer_model, corpus.train_lines);
  const std::vector<std::int32_t> heldout_ids = encode_lines(tokenizer_model, corpus.heldout_lines);
  if (train_ids.size() < static_cast<std::size_t>(mc.max_seq_len) * 4)
    throw UsageError(fmt::format("--corpus: the train split has {} tokens; preset '{}' needs at least {}",
                                 train_ids.size(), preset.name, mc.max_seq_len * 4));

  Transformer<float> model(mc);
  model.init_random(o.seed);
  AdamW adam(model.layout(), preset);
  Checkpoint state;
  state.identity = identity_json(preset, mc, o.seed, total_steps, corpus.fingerprint);
  if (o.resume) {
    Checkpoint loaded = load_checkpoint(checkpoint_path);
    if (loaded.identity != state.identity)
      throw UsageError(fmt::format("--resume: checkpoint '{}' belongs to another run ({}); this run is {}",
                                   checkpoint_path, loaded.identity, state.identity));
    if (loaded.params.size() != model.params().size() || loaded.adam_m.size() != loaded.params.size() ||
        loaded.adam_v.size() != loaded.params.size())
      throw UsageError(fmt::format("checkpoint '{}': tensor sizes do not match the model", checkpoint_path));
    model.params() = std::move(loaded.params);
    adam.first_moment() = std::move(loaded.adam_m);
    adam.second_moment() = std::move(loaded.adam_v);
    adam.set_steps_taken(loaded.step);
    state.step = loaded.step;
    state.seconds = loaded.seconds;
    state.cpu_seconds = loaded.cpu_seconds;
    state.history = std::move(loaded.history);
  }
  auto save_state = [&](double run_seconds, double run_cpu) {
    Checkpoint c;
    c.identity = state.identity;
    c.step = state.step;
    c.seconds = state.seconds + run_seconds;
    c.cpu_seconds = state.cpu_seconds + run_cpu;
    c.params = model.params();
    c.adam_m = adam.first_moment();
    c.adam_v = adam.second_moment();
    c.history = state.history;
    save_checkpoint(checkpoint_path, c);
    write_loss_csv((out / "loss.csv").string(), state.history);
  };

  const std::int64_t tokens_per_step = static_cast<std::int64_t>(preset.batch_size) * mc.max_seq_len;
  if (o.progress)
    fmt::print(stderr, "model: {} params (dim {}, {} layers, {}/{} heads, ffn {}, vocab {}, ctx {}); {} steps x {} tokens; "
               "{} threads\n", model.layout().total(), mc.dim, mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.ffn_dim,
               mc.vocab_size, mc.max_seq_len, total_steps, tokens_per_step, threads);
  Progress progress(o.progress, total_steps);
  std::vector<std::int32_t> inputs, targets;
  const int first_step = state.step;
  const double base_seconds = state.seconds;
  const Nanos loop_start = steady_now_ns();
  bool stopped = false;
  while (state.step < total_steps) {
    const int step = state.step;
    make_batch(train_ids, o.seed, step, preset.batch_size, mc.max_seq_len, inputs, targets);
    std::int64_t counted = 0;
    const double nll = model.forward_backward(inputs.data(), targets.data(), preset.batch_size, mc.max_seq_len, &counted);
    const double lr = learning_rate(preset, step, total_steps);
    const double gnorm = adam.step(model.params(), model.grads(), lr);
    const double loss = nll / static_cast<double>(counted);
    if (!std::isfinite(loss)) throw Error(fmt::format("training diverged at step {} (loss {})", step + 1, loss));
    state.step = step + 1;
    const double run_s = ns_to_s(steady_now_ns() - loop_start);
    state.history.push_back(LossRecord{state.step, lr, loss, gnorm, state.step * tokens_per_step, base_seconds + run_s});
    const int done_here = state.step - first_step;
    const double per_step = run_s / done_here;
    progress.update(state.step, loss, lr, tokens_per_step / per_step, per_step * (total_steps - state.step));
    const bool stop_now = (o.stop_after > 0 && done_here >= o.stop_after) || (o.interrupted && o.interrupted());
    if (stop_now || state.step % preset.checkpoint_every == 0 || state.step == total_steps)
      save_state(ns_to_s(steady_now_ns() - t_start), cpu_seconds_now() - cpu_start);
    if (stop_now && state.step < total_steps) {
      stopped = true;
      break;
    }
  }
  progress.done();

  TrainResult result;
  result.out_dir = out.string();
  result.step = state.step;
  result.total_steps = total_steps;
  result.params = model.layout().total();
  result.train_tokens = static_cast<std::int64_t>(train_ids.size());
  if (stopped) {
    result.seconds = ns_to_s(steady_now_ns() - t_start);
    result.cpu_seconds = cpu_seconds_now() - cpu_start;
    return result;
  }
  const auto [sum_nll, count] = heldout_nll(model, heldout_ids, preset.batch_size);
  result.heldout.tokens = count;
  result.heldout.mean_nll = count > 0 ? sum_nll / static_cast<double>(count) : 0.0;
  result.heldout.perplexity = std::exp(result.heldout.mean_nll);
  result.heldout.unigram_entropy = unigram_entropy(train_ids, heldout_ids, mc.vocab_size);
  result.completed = true;
  result.seconds = ns_to_s(steady_now_ns() - t_start);
  result.cpu_seconds = cpu_seconds_now() - cpu_start;

  export_hf_folder(out.string(), mc, model.layout(), model.params(), tokenizer_model);
  std::string heldout_text;
  for (const auto& line : corpus.heldout_lines) heldout_text += line + "\n";
  write_text_file((out / "heldout.txt").string(), heldout_text);
  const double train_seconds = state.history.empty() ? 0.0 : state.history.back().seconds;
  nlohmann::ordered_json summary = {
      {"heldout_mean_nll", result.heldout.mean_nll},
      {"heldout_perplexity", result.heldout.perplexity},
      {"heldout_tokens", result.heldout.tokens},
      {"unigram_entropy", result.heldout.unigram_entropy},
      {"unigram_perplexity", std::exp(result.heldout.unigram_entropy)},
      {"heldout_protocol", "heldout.txt tokenized line by line without BOS, concatenated, cut into chunks of "
                           "max_position_embeddings - 2 tokens; each chunk scored as [BOS, chunk[:-1]] -> chunk (the "
                           "windows of qmeter eval --ppl-mode window)"},
      {"final_train_loss", state.history.empty() ? 0.0 : state.history.back().loss},
      {"params", result.params},
      {"steps", state.step},
      {"tokens_seen", state.step * tokens_per_step},
      {"train_tokens", result.train_tokens},
      {"seconds", train_seconds},
      {"cpu_seconds", state.cpu_seconds + result.cpu_seconds},
      {"threads", threads},
      {"preset", preset.name},
      {"seed", o.seed},
      {"corpus", o.corpus_paths},
      {"corpus_fnv1a64", fmt::format("{:016x}", corpus.fingerprint)},
      {"train_lines", corpus.train_lines.size()},
      {"heldout_lines", corpus.heldout_lines.size()},
  };
  write_text_file((out / "training.json").string(), summary.dump(2) + "\n");  // last: marks the folder complete
  return result;
}

}  // namespace qmeter::train
