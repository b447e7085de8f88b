#pragma once
// The experiment spec (YAML) of `qmeter run`: parsed and validated before anything runs, with
// errors naming file:line:column and the field, then expanded into RunConfigs. A RunConfig is one
// server lifetime (model x method x parallelism x hardware setting x repeat); its workloads and
// load points run inside it. Its id is a stable hash of its normalized config, so a resumed study
// recognizes the runs it already completed.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qmeter/core/option_schema.h"

namespace qmeter::spec {

struct ModelSpec {
  std::string name;
  std::string path;  // a model path or "synthetic:SHAPE" (embedded); anything the server takes (command)
};

struct MethodSpec {
  std::string name;                           // a quantization registry name ("fp32", "gptq", ...)
  std::map<std::string, std::string> options;  // e.g. bits=4, group_size=128
  // Command backend: the checkpoint to serve per model name (a pre-quantized AWQ/GPTQ/FP8
  // repository or GGUF file), filling {checkpoint}; a model not named here serves its own path.
  std::map<std::string, std::string> checkpoints;
  std::string label() const;                  // "gptq(bits=4,group_size=128)" or just the name
};

struct BackendSpec {
  std::string kind = "embedded";               // embedded | command | url
  std::vector<std::string> argv;               // command: argv template with {placeholders}
  std::map<std::string, std::string> env;      // command: extra environment (templated too)
  std::string url;                             // url: base URL of a running server
  std::string ready_path = "/health";          // readiness probe path
  double startup_timeout_s = 600;
  std::string served_model;                    // model name to send in requests ("" = the model's name)
  std::map<std::string, std::string> options;  // embedded: serve options (threads, max_num_seqs, ...)
};

struct LoadPoint {
  std::string kind;  // "rate" (req/s, inf allowed) | "concurrency" (closed loop)
  double value = 0;
};

struct SearchSpec {
  std::string slo;  // SLO class whose knee to find
  double lo = 0.5, hi = 64;
  int iterations = 5;
  double attainment = 0.9;
};

struct WorkloadSpec {
  std::string name;
  std::string dataset = "random";  // as `bench serve --dataset`
  int input_len = 128, output_len = 64;
  double range_ratio = 0;
  int num_prompts = 100;
  std::string arrival = "poisson";
  double burstiness = 1;
  std::vector<LoadPoint> points;
  bool search_enabled = false;
  SearchSpec search;
  int warmup = 0;
  double timeout_s = 120;
  std::string endpoint = "/v1/completions";
  double trace_time_scale = 1;
  int max_connections = 0;                 // 0: the client's default (bench serve --max-connections)
  double client_bound_threshold_ms = -1;   // < 0: max(1 ms, 1% of the median TTFT)
  // Multi-turn (sharegpt-multiturn, multiturn), prefix and trace datasets: as bench serve's --turns,
  // --think-time, --num-prefixes, --prefix-len, --trace-window (0 / "" = the dataset's default).
  int turns = 0;
  double think_time_s = 0;
  int num_prefixes = 0, prefix_len = 0;
  std::string trace_window;  // "START,DURATION" seconds
};

struct SloClass {
  std::string name;
  double ttft_ms = -1, tpot_ms = -1, e2e_ms = -1, itl_ms = -1;  // -1: not constrained
};

struct QualityTask {
  std::string task;                            // "perplexity:PATH", "mc:PATH", "gsm8k:PATH", "kl"
  std::map<std::string, std::string> options;  // limit, baseline, ...
};

struct EnergySpec {
  std::string source = "auto";  // auto | nvml | rapl | model | none
  double interval_ms = 50;
  double idle_s = 2;
};

struct HardwareSetting {
  double power_limit_w = -1;   // -1: leave as is
  double locked_clock_mhz = -1;
  std::string partition;       // a Slurm partition as a study factor (A100 vs H100); "" = none
  std::string label() const;
};

// `executor: {slurm: {...}}`: how `qmeter run --executor slurm` asks for resources. Command-line
// flags win over these; where a run executes never changes its id (except hardware.partition).
struct SlurmSpec {
  std::string partition, account, time, mem;
  int max_parallel = 0;   // 0: no throttle
  int gpus_per_run = -1;  // -1: tp on the command backend (a GPU server), none otherwise
  int cpus_per_run = -1;  // -1: the embedded backend's `threads` option (or 1)
  std::vector<std::string> sbatch_args;
};

struct StudySpec {
  std::string name;
  std::string source_path;
  std::string text;  // the spec file as written (stored with the study)
  std::vector<ModelSpec> models;
  std::vector<MethodSpec> methods;
  BackendSpec backend;
  std::vector<int> tp{1};
  std::vector<HardwareSetting> hardware{HardwareSetting{}};
  std::vector<WorkloadSpec> workloads;
  std::vector<SloClass> slos;
  std::vector<QualityTask> quality;
  EnergySpec energy;
  int repeats = 1;
  std::uint64_t seed = 0;
  SlurmSpec slurm;
};

struct RunConfig {
  std::string id;               // 16 hex digits: FNV-1a 64 of normalized_json
  std::string normalized_json;  // sorted keys, every default made explicit
  std::string study;
  ModelSpec model;
  MethodSpec method;
  std::string checkpoint;  // what {checkpoint} serves: the method's checkpoint for this model, else model.path
  int tp = 1;
  HardwareSetting hardware;
  int repeat = 0;
  BackendSpec backend;
  std::vector<WorkloadSpec> workloads;
  std::vector<SloClass> slos;
  std::vector<QualityTask> quality;
  EnergySpec energy;
  std::uint64_t seed = 0;
};

// Names the caller knows (quantization methods, dataset kinds, quality tasks); validation
// refuses anything else with the known list in the message. Empty = accept any.
struct KnownNames {
  std::vector<std::string> methods;
  std::vector<std::string> quality_tasks;  // the prefix before ':' ("perplexity", "mc", ...)
  // Set: checks a method entry's options where method names are checked (the embedded backend);
  // an OptionError it throws is reported at the option's line, another UsageError at the entry's.
  std::function<void(const std::string& method, const std::map<std::string, std::string>& options)> method_options = {};
  // Option tables (core/option_schema.h), their owners': each option is checked against its table
  // (unknown key, type, range) at its own line. Empty: any key, any value. The embedded backend's
  // method options and backend options also take either spelling ('-' or '_'), stored as '_'.
  std::vector<OptionSpec> method_option_schema = {};   // the embedded backend's methods
  std::vector<OptionSpec> backend_option_schema = {};  // the embedded backend's `options`
  std::vector<OptionSpec> quality_option_schema = {};  // a quality entry's options
};

// Throws UsageError "FILE:LINE:COL: FIELD: what is wrong". ${VAR} in strings expands from the
// environment (an unset variable is an error naming it).
StudySpec parse_study_spec_file(const std::string& path, const KnownNames& known = {});
StudySpec parse_study_spec_text(const std::string& text, const std::string& filename, const KnownNames& known = {});

std::vector<RunConfig> expand_runs(const StudySpec& spec);

// Replaces {placeholders} (model, model_path, method, tp, port, host, run_id, and method options
// as {opt.NAME}) in one template argument; unknown placeholders are an error naming them.
std::string expand_template(const std::string& arg, const std::map<std::string, std::string>& vars);

// The placeholders every run of a command backend fills: model, model_path, checkpoint, method,
// tp, port, host, run_id (method options add opt.NAME).
const std::vector<std::string>& run_placeholders();
// A whole argv template, one entry per argument, except an entry `{?WORD... NAME}` (e.g.
// `{?--quantization opt.quant}`): it becomes WORD... VALUE when NAME has a non-empty value and
// disappears otherwise, so a flag is passed only by the methods that have a value for it.
std::vector<std::string> expand_argv(const std::vector<std::string>& argv, const std::map<std::string, std::string>& vars);
// Environment templates; a value written `{?NAME}` leaves the variable unset when NAME has no value.
std::map<std::string, std::string> expand_env_template(const std::map<std::string, std::string>& env,
                                                       const std::map<std::string, std::string>& vars);
// The placeholders one template argument uses (parse-time checks); throws UsageError for a
// malformed optional entry.
struct TemplatePlaceholder {
  std::string name;
  bool optional = false;  // inside {?...}: may have no value
};
std::vector<TemplatePlaceholder> template_placeholders(const std::string& arg);

std::uint64_t fnv1a64(const std::string& s);

}  // namespace qmeter::spec
