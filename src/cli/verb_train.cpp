// `qmeter train`: trains the reference model (src/train). stdout gets exactly one line, the model
// folder, so scripts can write MODEL=$(qmeter train ...); progress and the summary go to stderr.
#include <fmt/format.h>

#include <cmath>
#include <csignal>
#include <filesystem>

#include "qmeter/core/error.h"
#include "qmeter/train/train.h"
#include "verbs.h"

namespace qmeter::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint_train(int) { g_interrupted = 1; }

struct TrainFlags {
  std::vector<std::string> corpus;
  std::string out, cache_dir, preset = "tiny";
  std::uint64_t seed = 1;
  int threads = 0, steps = 0, stop_after = 0;
  bool resume = false, quiet = false;
};

void run_train(const TrainFlags& f) {
  namespace tr = qmeter::train;
  if (f.corpus.empty())
    throw UsageError("--corpus: give at least one text file (scripts/corpus.sh prints the default corpus)");
  if (f.out.empty() == f.cache_dir.empty()) throw UsageError("give exactly one of --out DIR or --cache-dir DIR");
  if (f.steps < 0) throw UsageError(fmt::format("--steps: {} is negative", f.steps));
  tr::TrainOptions o;
  o.corpus_paths = f.corpus;
  o.preset = f.preset;
  o.seed = f.seed;
  o.threads = f.threads;
  o.steps = f.steps;
  o.stop_after = f.stop_after;
  o.resume = f.resume;
  o.progress = !f.quiet;
  if (!f.cache_dir.empty()) {
    o.out_dir = tr::cache_folder(f.cache_dir, f.corpus, f.preset, f.seed, f.steps);
    if (tr::is_complete_model_dir(o.out_dir)) {
      if (!f.quiet) fmt::print(stderr, "cached model: {}\n", o.out_dir);
      fmt::print("{}\n", o.out_dir);
      return;
    }
    // An earlier run into the cache that was cut short continues where it stopped.
    o.resume = std::filesystem::exists(std::filesystem::path(o.out_dir) / "checkpoint.bin");
  } else {
    o.out_dir = f.out;
  }
  g_interrupted = 0;
  auto previous = std::signal(SIGINT, on_sigint_train);
  o.interrupted = [] { return g_interrupted != 0; };
  tr::TrainResult r;
  try {
    r = tr::train_model(o);
  } catch (...) {
    std::signal(SIGINT, previous);
    throw;
  }
  std::signal(SIGINT, previous);
  if (!r.completed) {
    fmt::print(stderr, "stopped at step {}/{}; continue with --resume (checkpoint in {})\n", r.step, r.total_steps,
               r.out_dir);
    fmt::print("{}\n", r.out_dir);
    verb_exit_code() = g_interrupted ? 130 : 0;
    return;
  }
  if (!f.quiet)
    fmt::print(stderr,
               "held-out: {:.4f} nats/token, perplexity {:.2f} ({} tokens); unigram baseline {:.4f} nats "
               "(perplexity {:.2f})\n{} params, {} steps, {:.1f} s wall, {:.1f} s CPU this run\n",
               r.heldout.mean_nll, r.heldout.perplexity, r.heldout.tokens, r.heldout.unigram_entropy,
               std::exp(r.heldout.unigram_entropy), r.params, r.step, r.seconds, r.cpu_seconds);
  fmt::print("{}\n", r.out_dir);
}

}  // namespace

void add_train_verb(CLI::App& app) {
  auto flags = std::make_shared<TrainFlags>();
  auto* cmd = app.add_subcommand("train",
                                 "Train the reference LLaMA-family model from scratch on the CPU and write it as a "
                                 "Hugging Face folder (prints the folder)");
  cmd->add_option("--corpus", flags->corpus, "UTF-8 text files to train on (see scripts/corpus.sh)")->expected(1, -1);
  cmd->add_option("--out", flags->out, "output folder");
  cmd->add_option("--cache-dir", flags->cache_dir,
                  "cache folder: reuse (or finish) the model trained for the same corpus, preset, seed and steps");
  cmd->add_option("--preset", flags->preset, "model size: tiny (quickstart), small, test")->capture_default_str();
  cmd->add_option("--seed", flags->seed, "random seed (weights, batches)")->capture_default_str();
  cmd->add_option("--threads", flags->threads, "threads (0 = all cores); results do not depend on it")
      ->capture_default_str();
  cmd->add_option("--steps", flags->steps, "optimizer steps (0 = the preset's)");
  cmd->add_flag("--resume", flags->resume, "continue from the checkpoint in --out");
  cmd->add_option("--stop-after", flags->stop_after, "stop (keeping a checkpoint) after this many steps in this run");
  cmd->add_flag("--quiet", flags->quiet, "no progress lines or summary on stderr");
  cmd->callback([flags] { run_train(*flags); });
}

}  // namespace qmeter::cli
