// Every command-backend example under examples/ expands, run by run, into exactly the command
// line written below: the flags as each server documents them (`vllm serve`,
// `python3 -m sglang.launch_server`, `text-generation-launcher`, `llama-server`), with no
// `--quantization none` and a pre-quantized checkpoint wherever a method needs one. A wrong flag,
// a dropped placeholder or a new example without expectations here fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "qmeter/backend/backend.h"
#include "test_support.h"

using namespace qmeter;

namespace {

const std::string kPort = "8000";  // what {port} becomes here (a run picks a free one)

// "method tp" -> the command line, entries joined by single spaces (no entry holds a space).
using Expected = std::map<std::string, std::string>;

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    EXPECT_EQ(a.find(' '), std::string::npos) << "an argv entry with a space makes the joined form ambiguous: '" << a << "'";
    s += (s.empty() ? "" : " ") + a;
  }
  return s;
}

const std::map<std::string, Expected>& expected_commands() {
  static const std::string vllm_base =
      "vllm serve meta-llama/Llama-3.1-8B-Instruct --host 127.0.0.1 --port 8000 --tensor-parallel-size ";
  static const std::string vllm_tail = " --max-model-len 4096 --served-model-name llama31-8b";
  static const std::string vllm_awq =
      "vllm serve hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4 --host 127.0.0.1 --port 8000 --tensor-parallel-size ";
  static const std::string vllm_gptq =
      "vllm serve hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4 --host 127.0.0.1 --port 8000 --tensor-parallel-size ";
  static const Expected vllm = {
      {"bf16 1", vllm_base + "1" + vllm_tail},
      {"bf16 2", vllm_base + "2" + vllm_tail},
      {"fp8-w8a8 1", vllm_base + "1" + vllm_tail + " --quantization fp8"},
      {"fp8-w8a8 2", vllm_base + "2" + vllm_tail + " --quantization fp8"},
      {"awq-w4g128 1", vllm_awq + "1" + vllm_tail + " --quantization awq_marlin"},
      {"awq-w4g128 2", vllm_awq + "2" + vllm_tail + " --quantization awq_marlin"},
      {"gptq-w4g128 1", vllm_gptq + "1" + vllm_tail + " --quantization gptq_marlin"},
      {"gptq-w4g128 2", vllm_gptq + "2" + vllm_tail + " --quantization gptq_marlin"},
  };
  Expected vllm_slurm = vllm;
  vllm_slurm.erase("gptq-w4g128 1");
  vllm_slurm.erase("gptq-w4g128 2");

  static const std::string sglang_tail =
      " --host 127.0.0.1 --port 8000 --tp-size 1 --context-length 4096 --served-model-name qwen25-7b";
  static const std::string sglang = "python3 -m sglang.launch_server --model-path ";
  static const std::string tgi_tail =
      " --hostname 127.0.0.1 --port 8000 --num-shard 1 --max-input-tokens 3072 --max-total-tokens 4096";
  static const std::string llama_tail =
      " --host 127.0.0.1 --port 8000 --n-gpu-layers 99 --ctx-size 16384 --parallel 16 --alias llama3-8b";

  static const std::map<std::string, Expected> all = {
      {"vllm.yaml", vllm},
      {"vllm-slurm.yaml", vllm_slurm},
      {"sglang.yaml",
       {{"bf16 1", sglang + "Qwen/Qwen2.5-7B-Instruct" + sglang_tail},
        {"fp8-w8a8 1", sglang + "Qwen/Qwen2.5-7B-Instruct" + sglang_tail + " --quantization fp8"},
        {"awq-w4g128 1", sglang + "Qwen/Qwen2.5-7B-Instruct-AWQ" + sglang_tail},
        {"gptq-w4g128 1", sglang + "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4" + sglang_tail}}},
      {"tgi.yaml",
       {{"bf16 1", "text-generation-launcher --model-id Qwen/Qwen2.5-7B-Instruct" + tgi_tail},
        {"eetq-w8 1", "text-generation-launcher --model-id Qwen/Qwen2.5-7B-Instruct" + tgi_tail + " --quantize eetq"},
        {"awq-w4g128 1", "text-generation-launcher --model-id Qwen/Qwen2.5-7B-Instruct-AWQ" + tgi_tail + " --quantize awq"}}},
      {"llamacpp.yaml",
       {{"f16 1", "llama-server --model /models/llama3-8b/Meta-Llama-3-8B-Instruct-F16.gguf" + llama_tail},
        {"q8_0 1", "llama-server --model /models/llama3-8b/Meta-Llama-3-8B-Instruct-Q8_0.gguf" + llama_tail},
        {"q4_k_m 1", "llama-server --model /models/llama3-8b/Meta-Llama-3-8B-Instruct-Q4_K_M.gguf" + llama_tail}}},
  };
  return all;
}

}  // namespace

TEST(ExampleCommands, EveryRunOfEveryCommandExampleLaunchesTheDocumentedCommandLine) {
  const auto& expected = expected_commands();
  std::set<std::string> seen_files;
  for (const auto& e : std::filesystem::directory_iterator(qmeter::testing::source_dir() + "/examples")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".yaml") continue;
    if (name == "quickstart.yaml" || name == "stories260K.yaml") continue;  // embedded: no command line
    const spec::StudySpec study = spec::parse_study_spec_file(e.path().string());
    ASSERT_EQ(study.backend.kind, "command") << name << ": a new kind of example needs its expectations here";
    const auto it = expected.find(name);
    ASSERT_NE(it, expected.end()) << name << ": a command example without expected command lines in this test";
    seen_files.insert(name);
    std::set<std::string> seen_keys;
    for (const auto& run : spec::expand_runs(study)) {
      const std::string key = run.method.name + " " + std::to_string(run.tp);
      const auto want = it->second.find(key);
      ASSERT_NE(want, it->second.end()) << name << ": no expected command line for " << key;
      const backend::LaunchCommand launch = backend::command_line(run.backend, backend::run_context(run), kPort);
      EXPECT_EQ(join(launch.argv), want->second) << name << " " << key;
      EXPECT_TRUE(launch.env.empty()) << name << " " << key;  // no example sets extra environment
      seen_keys.insert(key);
    }
    EXPECT_EQ(seen_keys.size(), it->second.size()) << name << ": an expected command line no run launches";
  }
  EXPECT_EQ(seen_files.size(), expected.size()) << "an example listed here is missing from examples/";
}

TEST(ExampleCommands, TheLaunchedCommandFillsEveryPlaceholderOfARun) {
  spec::BackendSpec s;
  s.kind = "command";
  s.argv = {"srv", "{checkpoint}", "--tokenizer", "{model_path}", "{?--quantization opt.q}", "--tp", "{tp}",
            "--name={model}/{method}/{run_id}", "--bind", "{host}:{port}"};
  s.env = {{"KV", "{?opt.kv}"}, {"RUN", "{run_id}"}};
  backend::RunContext ctx;
  ctx.run_id = "r7";
  ctx.model_name = "m";
  ctx.model_path = "org/m";
  ctx.checkpoint = "org/m-AWQ";
  ctx.method = "awq";
  ctx.method_options = {{"q", "awq_marlin"}};
  ctx.tp = 4;
  auto launch = backend::command_line(s, ctx, "8123");
  EXPECT_EQ(join(launch.argv),
            "srv org/m-AWQ --tokenizer org/m --quantization awq_marlin --tp 4 --name=m/awq/r7 --bind 127.0.0.1:8123");
  EXPECT_EQ(launch.env, (std::map<std::string, std::string>{{"RUN", "r7"}}));
  // No checkpoint named: {checkpoint} is the model's path; no option: the flag is gone.
  ctx.checkpoint.clear();
  ctx.method_options.clear();
  ctx.method_options["kv"] = "fp8";
  launch = backend::command_line(s, ctx, "8123");
  EXPECT_EQ(join(launch.argv), "srv org/m --tokenizer org/m --tp 4 --name=m/awq/r7 --bind 127.0.0.1:8123");
  EXPECT_EQ(launch.env, (std::map<std::string, std::string>{{"KV", "fp8"}, {"RUN", "r7"}}));
}

TEST(ExampleCommands, TheShellLineQuotesExactlyTheWordsThatNeedIt) {
  backend::LaunchCommand c;
  c.argv = {"srv", "--model", "/m/a b", "--chat-template", "{\"x\": 'y'}", "--rate=1.5", ""};
  c.env = {{"HF_HOME", "/data/hf"}, {"NOTE", "it's"}};
  EXPECT_EQ(backend::shell_line(c),
            "HF_HOME=/data/hf NOTE='it'\\''s' srv --model '/m/a b' --chat-template '{\"x\": '\\''y'\\''}' --rate=1.5 ''");
}
