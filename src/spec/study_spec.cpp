#include "qmeter/spec/study_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>

#include "qmeter/core/error.h"
#include "qmeter/core/hash.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/core/paths.h"
#include "qmeter/workload/schedule.h"
#include "command_templates.h"

namespace qmeter::spec {

namespace {

// Walks the YAML tree keeping the file name and the dotted field path for error messages.
class Ctx {
 public:
  Ctx(std::string file, std::string field = "") : file_(std::move(file)), field_(std::move(field)) {}
  Ctx sub(const std::string& key) const { return Ctx(file_, field_.empty() ? key : field_ + "." + key); }
  Ctx at(std::size_t i) const { return Ctx(file_, field_ + "[" + std::to_string(i) + "]"); }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& what) const {
    std::string where = file_;
    if (n.IsDefined() && n.Mark().line >= 0) {
      where += ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
    }
    throw UsageError(where + ": " + (field_.empty() ? "" : field_ + ": ") + what);
  }
  const std::string& field() const { return field_; }

 private:
  std::string file_, field_;
};

std::string expand_env(const std::string& s, const Ctx& c, const YAML::Node& n) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      auto end = s.find('}', i);
      if (end == std::string::npos) c.fail(n, "unterminated ${ in '" + s + "'");
      std::string name = s.substr(i + 2, end - i - 2), def;
      bool has_def = false;
      if (auto d = name.find(":-"); d != std::string::npos) {
        def = name.substr(d + 2);
        name = name.substr(0, d);
        has_def = true;
      }
      const char* v = std::getenv(name.c_str());
      if (v && *v) {
        out += v;
      } else if (has_def) {
        out += def;
      } else if (name == "QMETER_SHARED_DATA") {
        out += shared_data_dir();
      } else {
        c.fail(n, "environment variable " + name + " is not set (used in '" + s + "')");
      }
      i = end;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A key looked up but absent gives yaml-cpp's invalid node, whose type queries throw InvalidNode:
// every reader below checks this first, so an absent field is named instead.
void require_present(const YAML::Node& n, const Ctx& c) {
  if (!n.IsDefined()) c.fail(n, "missing (required here)");
}

std::string scalar(const YAML::Node& n, const Ctx& c) {
  require_present(n, c);
  if (!n.IsScalar()) c.fail(n, "expected a scalar value");
  return expand_env(n.Scalar(), c, n);
}

double number(const YAML::Node& n, const Ctx& c) {
  std::string s = scalar(n, c);
  if (s == "inf" || s == "infinity" || s == ".inf") return std::numeric_limits<double>::infinity();
  if (const auto v = parse_double(s)) return *v;  // the whole scalar: "12abc" is refused
  c.fail(n, "expected a number, got '" + s + "'");
}

int integer(const YAML::Node& n, const Ctx& c) {
  double v = number(n, c);
  if (v != std::floor(v) || std::isinf(v) || std::fabs(v) > 1e9) c.fail(n, "expected an integer, got '" + n.Scalar() + "'");
  return static_cast<int>(v);
}

void check_keys(const YAML::Node& n, const Ctx& c, std::initializer_list<const char*> allowed) {
  require_present(n, c);
  if (!n.IsMap()) c.fail(n, "expected a mapping");
  for (const auto& kv : n) {
    const std::string key = kv.first.Scalar();
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      c.sub(key).fail(kv.first, "unknown field (allowed: " + list + ")");
    }
  }
}

template <class F>
void for_list(const YAML::Node& n, const Ctx& c, F f) {
  require_present(n, c);
  if (n.IsScalar()) {
    f(n, c.at(0));
    return;
  }
  if (!n.IsSequence()) c.fail(n, "expected a list");
  for (std::size_t i = 0; i < n.size(); ++i) f(n[i], c.at(i));
}

std::map<std::string, std::string> string_map(const YAML::Node& n, const Ctx& c) {
  require_present(n, c);
  if (!n.IsMap()) c.fail(n, "expected a mapping");
  std::map<std::string, std::string> out;
  for (const auto& kv : n) out[kv.first.Scalar()] = scalar(kv.second, c.sub(kv.first.Scalar()));
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Checks the options of one entry against their owner's table, each at its own line: an unknown key
// at the key, a bad value at the value. `canonical`: keys are stored in the table's spelling
// ('-' -> '_'), so `group-size` and `group_size` are one option (and one run id).
std::map<std::string, std::string> checked_options(const YAML::Node& n, const Ctx& c, const std::vector<OptionSpec>& table,
                                                   bool canonical, const std::string& what,
                                                   const std::set<std::string>& skip = {}) {
  std::map<std::string, std::string> out;
  for (const auto& kv : n) {
    const std::string given = kv.first.Scalar();
    if (skip.count(given)) continue;
    const std::string key = canonical ? canonical_option_key(given) : given;
    const std::string value = scalar(kv.second, c.sub(key));
    if (!table.empty()) {
      const OptionSpec* o = find_option(table, given);
      if (!o || (!canonical && o->key != given)) {
        std::vector<std::string> known;
        for (const OptionSpec& k : table) known.push_back(k.key);
        c.sub(given).fail(kv.first, "unknown " + what + " option '" + given + "' (known: " + join(known) + ")");
      }
      if (const std::string why = option_value_error(*o, value); !why.empty()) c.sub(key).fail(kv.second, why);
    }
    if (!out.emplace(key, value).second) c.sub(key).fail(kv.first, "given twice ('" + given + "' and its other spelling)");
  }
  return out;
}

// The value node of option `key` (either spelling) in a mapping, or the mapping itself.
YAML::Node option_node(const YAML::Node& n, const std::string& key) {
  for (const auto& kv : n)
    if (canonical_option_key(kv.first.Scalar()) == key) return kv.second;
  return n;
}

MethodSpec parse_method(const YAML::Node& n, const Ctx& c, const KnownNames& known, bool registry_options) {
  MethodSpec m;
  YAML::Node name_node = n;
  if (n.IsScalar()) {
    m.name = scalar(n, c);
  } else if (n.IsMap()) {
    if (!n["name"]) c.fail(n, "a method needs a 'name'");
    name_node.reset(n["name"]);  // reset: Node assignment would overwrite the referenced node
    m.name = scalar(n["name"], c.sub("name"));
    if (n["checkpoints"]) m.checkpoints = string_map(n["checkpoints"], c.sub("checkpoints"));  // checked with the templates
    // The embedded backend's options are the quantization registry's; a command backend's are the
    // user's own ({opt.NAME} placeholders), kept as written.
    m.options = checked_options(n, c, known.method_option_schema, registry_options, "quantization", {"name", "checkpoints"});
  } else {
    c.fail(n, "a method is a name or a mapping with 'name' and options");
  }
  if (!known.methods.empty() && std::find(known.methods.begin(), known.methods.end(), m.name) == known.methods.end()) {
    c.fail(name_node, "unknown method '" + m.name + "' (known: " + join(known.methods) + ")");
  }
  if (known.method_options && !known.methods.empty()) {
    try {
      known.method_options(m.name, m.options);
    } catch (const OptionError& e) {  // a value or combination the method refuses: at that option
      c.sub(e.key()).fail(n.IsMap() ? option_node(n, e.key()) : n, e.reason());
    } catch (const UsageError& e) {
      c.fail(n, e.what());
    }
  }
  return m;
}

LoadPoint load_point(const YAML::Node& n, const Ctx& c, const std::string& kind) {
  LoadPoint p{kind, number(n, c)};
  if (!(p.value > 0)) c.fail(n, "a load point must be > 0");
  if (kind == "concurrency" && (std::isinf(p.value) || p.value != std::floor(p.value))) {
    c.fail(n, "a concurrency must be a whole number");
  }
  return p;
}

WorkloadSpec parse_workload(const YAML::Node& n, const Ctx& c, std::size_t i) {
  check_keys(n, c, {"name", "dataset", "input_len", "output_len", "range_ratio", "num_prompts", "arrival", "burstiness",
                    "rates", "concurrencies", "search", "warmup", "timeout_s", "endpoint", "trace_time_scale",
                    "max_connections", "client_bound_threshold_ms", "turns", "think_time_s", "num_prefixes", "prefix_len",
                    "trace_window"});
  WorkloadSpec w;
  w.name = n["name"] ? scalar(n["name"], c.sub("name")) : "workload" + std::to_string(i);
  if (n["dataset"]) w.dataset = scalar(n["dataset"], c.sub("dataset"));
  const std::string kind = w.dataset.substr(0, w.dataset.find(':'));
  static const std::set<std::string> kKinds = {"random", "sharegpt", "jsonl", "azure", "gsm8k", "mooncake", "burstgpt",
                                               "trace", "sharegpt-multiturn", "multiturn", "prefix", "longdoc"};
  if (!kKinds.count(kind))
    c.sub("dataset").fail(n["dataset"], "unknown dataset kind '" + kind +
                                            "' (known: random, sharegpt, jsonl, azure, gsm8k, mooncake, burstgpt, trace, "
                                            "sharegpt-multiturn, multiturn, prefix, longdoc)");
  if (kind != "random" && kind != "multiturn" && kind != "prefix") {
    const std::string path = w.dataset.substr(w.dataset.find(':') + 1);
    if (w.dataset.find(':') == std::string::npos || path.empty()) c.sub("dataset").fail(n["dataset"], "'" + kind + ":' needs a path");
    if (!std::ifstream(path)) c.sub("dataset").fail(n["dataset"], "file not found: " + path);
  }
  if (n["input_len"]) w.input_len = integer(n["input_len"], c.sub("input_len"));
  if (n["output_len"]) w.output_len = integer(n["output_len"], c.sub("output_len"));
  if (n["range_ratio"]) w.range_ratio = number(n["range_ratio"], c.sub("range_ratio"));
  if (n["num_prompts"]) w.num_prompts = integer(n["num_prompts"], c.sub("num_prompts"));
  if (w.num_prompts <= 0) c.sub("num_prompts").fail(n["num_prompts"], "must be > 0");
  if (w.input_len <= 0 || w.output_len <= 0) c.fail(n, "input_len and output_len must be > 0");
  if (n["arrival"]) w.arrival = scalar(n["arrival"], c.sub("arrival"));
  static const std::set<std::string> kArrivals = {"constant", "poisson", "gamma", "trace", "inf"};
  if (!kArrivals.count(w.arrival)) c.sub("arrival").fail(n["arrival"], "unknown arrival '" + w.arrival + "' (known: constant, poisson, gamma, trace, inf)");
  if (n["burstiness"]) w.burstiness = number(n["burstiness"], c.sub("burstiness"));
  if (n["warmup"]) w.warmup = integer(n["warmup"], c.sub("warmup"));
  if (n["timeout_s"]) w.timeout_s = number(n["timeout_s"], c.sub("timeout_s"));
  if (n["endpoint"]) w.endpoint = scalar(n["endpoint"], c.sub("endpoint"));
  if (w.endpoint != "/v1/completions" && w.endpoint != "/v1/chat/completions") {
    c.sub("endpoint").fail(n["endpoint"], "must be /v1/completions or /v1/chat/completions");
  }
  if (n["trace_time_scale"]) w.trace_time_scale = number(n["trace_time_scale"], c.sub("trace_time_scale"));
  if (n["max_connections"]) {
    w.max_connections = integer(n["max_connections"], c.sub("max_connections"));
    if (w.max_connections < 1) c.sub("max_connections").fail(n["max_connections"], "must be >= 1");
  }
  if (n["client_bound_threshold_ms"]) {
    w.client_bound_threshold_ms = number(n["client_bound_threshold_ms"], c.sub("client_bound_threshold_ms"));
    if (!(w.client_bound_threshold_ms > 0)) c.sub("client_bound_threshold_ms").fail(n["client_bound_threshold_ms"], "must be > 0");
  }
  auto positive = [&](const char* key, int& field) {
    if (!n[key]) return;
    field = integer(n[key], c.sub(key));
    if (field < 1) c.sub(key).fail(n[key], "must be >= 1");
  };
  positive("turns", w.turns);
  positive("num_prefixes", w.num_prefixes);
  positive("prefix_len", w.prefix_len);
  if (n["think_time_s"]) {
    w.think_time_s = number(n["think_time_s"], c.sub("think_time_s"));
    if (!(w.think_time_s >= 0)) c.sub("think_time_s").fail(n["think_time_s"], "must be >= 0");
  }
  if (n["trace_window"]) {
    w.trace_window = scalar(n["trace_window"], c.sub("trace_window"));
    workload::DatasetOptions check;
    try {
      workload::parse_trace_window(w.trace_window, check, "trace_window");
    } catch (const std::exception& e) {
      c.sub("trace_window").fail(n["trace_window"], e.what());
    }
  }
  if (n["rates"]) for_list(n["rates"], c.sub("rates"), [&](const YAML::Node& x, const Ctx& cx) { w.points.push_back(load_point(x, cx, "rate")); });
  if (n["concurrencies"]) {
    for_list(n["concurrencies"], c.sub("concurrencies"),
             [&](const YAML::Node& x, const Ctx& cx) { w.points.push_back(load_point(x, cx, "concurrency")); });
  }
  if (n["search"]) {
    const auto s = n["search"];
    const Ctx cs = c.sub("search");
    check_keys(s, cs, {"slo", "lo", "hi", "iterations", "attainment"});
    w.search_enabled = true;
    if (!s["slo"]) cs.fail(s, "needs 'slo': the SLO class whose knee to find");
    w.search.slo = scalar(s["slo"], cs.sub("slo"));
    if (s["lo"]) w.search.lo = number(s["lo"], cs.sub("lo"));
    if (s["hi"]) w.search.hi = number(s["hi"], cs.sub("hi"));
    if (s["iterations"]) w.search.iterations = integer(s["iterations"], cs.sub("iterations"));
    if (s["attainment"]) w.search.attainment = number(s["attainment"], cs.sub("attainment"));
    if (!(w.search.lo > 0 && w.search.hi > w.search.lo)) cs.fail(s, "needs 0 < lo < hi");
  }
  if (w.points.empty() && !w.search_enabled && w.arrival != "trace") {
    c.fail(n, "a workload needs load points: 'rates', 'concurrencies' or 'search'");
  }
  return w;
}

SloClass parse_slo(const std::string& name, const YAML::Node& n, const Ctx& c) {
  check_keys(n, c, {"ttft_ms", "tpot_ms", "e2e_ms", "itl_ms"});
  SloClass s;
  s.name = name;
  if (n["ttft_ms"]) s.ttft_ms = number(n["ttft_ms"], c.sub("ttft_ms"));
  if (n["tpot_ms"]) s.tpot_ms = number(n["tpot_ms"], c.sub("tpot_ms"));
  if (n["e2e_ms"]) s.e2e_ms = number(n["e2e_ms"], c.sub("e2e_ms"));
  if (n["itl_ms"]) s.itl_ms = number(n["itl_ms"], c.sub("itl_ms"));
  if (s.ttft_ms < 0 && s.tpot_ms < 0 && s.e2e_ms < 0 && s.itl_ms < 0) c.fail(n, "an SLO class needs at least one bound");
  return s;
}

void parse_executor(const YAML::Node& n, const Ctx& c, SlurmSpec& out) {
  check_keys(n, c, {"slurm"});
  const auto sn = n["slurm"];
  const Ctx cs = c.sub("slurm");
  check_keys(sn, cs, {"partition", "account", "time", "mem", "max_parallel", "gpus_per_run", "cpus_per_run", "sbatch_args"});
  if (sn["partition"]) out.partition = scalar(sn["partition"], cs.sub("partition"));
  if (sn["account"]) out.account = scalar(sn["account"], cs.sub("account"));
  if (sn["time"]) out.time = scalar(sn["time"], cs.sub("time"));
  if (sn["mem"]) out.mem = scalar(sn["mem"], cs.sub("mem"));
  auto non_negative = [&](const char* key, int& field) {
    if (!sn[key]) return;
    field = integer(sn[key], cs.sub(key));
    if (field < 0) cs.sub(key).fail(sn[key], "must be >= 0");
  };
  non_negative("max_parallel", out.max_parallel);
  non_negative("gpus_per_run", out.gpus_per_run);
  non_negative("cpus_per_run", out.cpus_per_run);
  if (out.cpus_per_run == 0) cs.sub("cpus_per_run").fail(sn["cpus_per_run"], "must be >= 1");
  if (sn["sbatch_args"]) {
    for_list(sn["sbatch_args"], cs.sub("sbatch_args"),
             [&](const YAML::Node& x, const Ctx& cx) { out.sbatch_args.push_back(scalar(x, cx)); });
  }
}

}  // namespace

std::string MethodSpec::label() const {
  if (options.empty()) return name;
  std::string s = name + "(";
  bool first = true;
  for (const auto& [k, v] : options) {
    s += (first ? "" : ",") + k + "=" + v;
    first = false;
  }
  return s + ")";
}

std::string HardwareSetting::label() const {
  std::string s;
  if (power_limit_w > 0) s += "pl" + std::to_string(static_cast<int>(power_limit_w)) + "W";
  if (locked_clock_mhz > 0) s += (s.empty() ? "" : ",") + std::string("clk") + std::to_string(static_cast<int>(locked_clock_mhz));
  if (!partition.empty()) s = partition + (s.empty() ? "" : ",") + s;
  return s.empty() ? "default" : s;
}

StudySpec parse_study_spec_file(const std::string& path, const KnownNames& known) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error&) {
    throw UsageError("cannot read spec file '" + path + "'");
  }
  return parse_study_spec_text(text, path, known);
}

StudySpec parse_study_spec_text(const std::string& text, const std::string& file, const KnownNames& known) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UsageError(file + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                     ": invalid YAML: " + e.msg);
  }
  const Ctx c(file);
  if (!root.IsMap()) c.fail(root, "the spec must be a mapping with sections study, models, methods, workloads, ...");
  check_keys(root, c, {"study", "models", "methods", "backend", "parallelism", "hardware", "workloads", "slos", "quality",
                       "energy", "repeats", "seed", "executor"});
  StudySpec s;
  s.source_path = file;
  s.text = text;

  if (!root["study"]) c.fail(root, "missing section 'study' (with a 'name')");
  {
    const auto n = root["study"];
    const Ctx cs = c.sub("study");
    if (n.IsScalar()) {
      s.name = scalar(n, cs);
    } else {
      check_keys(n, cs, {"name"});
      if (!n["name"]) cs.fail(n, "missing 'name'");
      s.name = scalar(n["name"], cs.sub("name"));
    }
  }
  // The backend comes first: which checks apply to models and methods depends on its kind.
  if (root["backend"]) {
    const auto n = root["backend"];
    const Ctx cb = c.sub("backend");
    check_keys(n, cb, {"kind", "argv", "env", "url", "ready_path", "startup_timeout_s", "served_model", "options"});
    if (n["kind"]) s.backend.kind = scalar(n["kind"], cb.sub("kind"));
    if (s.backend.kind != "embedded" && s.backend.kind != "command" && s.backend.kind != "url") {
      cb.sub("kind").fail(n["kind"], "unknown backend '" + s.backend.kind + "' (known: embedded, command, url)");
    }
    if (n["argv"]) {
      for_list(n["argv"], cb.sub("argv"), [&](const YAML::Node& a, const Ctx& ca) { s.backend.argv.push_back(scalar(a, ca)); });
    }
    if (n["env"]) s.backend.env = string_map(n["env"], cb.sub("env"));
    if (n["url"]) s.backend.url = scalar(n["url"], cb.sub("url"));
    if (n["ready_path"]) s.backend.ready_path = scalar(n["ready_path"], cb.sub("ready_path"));
    if (n["startup_timeout_s"]) s.backend.startup_timeout_s = number(n["startup_timeout_s"], cb.sub("startup_timeout_s"));
    if (n["served_model"]) s.backend.served_model = scalar(n["served_model"], cb.sub("served_model"));
    if (n["options"]) {
      // The embedded backend's options are checked against its table; another backend's are kept.
      const bool embedded = s.backend.kind == "embedded";
      require_present(n["options"], cb.sub("options"));
      if (!n["options"].IsMap()) cb.sub("options").fail(n["options"], "expected a mapping");
      s.backend.options = checked_options(n["options"], cb.sub("options"),
                                          embedded ? known.backend_option_schema : std::vector<OptionSpec>{}, embedded, "backend");
    }
    if (s.backend.kind == "command" && s.backend.argv.empty()) cb.fail(n, "a command backend needs 'argv'");
    if (s.backend.kind == "url" && s.backend.url.empty()) cb.fail(n, "a url backend needs 'url'");
  }
  if (!root["models"]) c.fail(root, "missing section 'models'");
  for_list(root["models"], c.sub("models"), [&](const YAML::Node& n, const Ctx& cm) {
    ModelSpec m;
    if (n.IsScalar()) {
      m.path = scalar(n, cm);
      m.name = m.path.substr(m.path.find_last_of('/') + 1);
    } else {
      check_keys(n, cm, {"name", "path"});
      if (!n["path"]) cm.fail(n, "a model needs a 'path' (a folder or file, or synthetic:SHAPE)");
      m.path = scalar(n["path"], cm.sub("path"));
      m.name = n["name"] ? scalar(n["name"], cm.sub("name")) : m.path.substr(m.path.find_last_of('/') + 1);
    }
    // Only the embedded engine reads the path here; a command backend may take a hub id.
    const bool embedded = s.backend.kind == "embedded";
    const bool generated = m.path.rfind("synthetic:", 0) == 0;
    if (embedded && !generated && !std::ifstream(m.path)) cm.fail(n.IsMap() ? n["path"] : n, "model path not found: " + m.path);
    s.models.push_back(m);
  });
  if (!root["methods"]) c.fail(root, "missing section 'methods'");
  // Method names are the embedded engine's registry; a command backend's are the user's own
  // labels (they select server flags through {opt.*} placeholders).
  const bool embedded_backend = s.backend.kind == "embedded";
  const KnownNames method_check = embedded_backend ? known : KnownNames{{}, known.quality_tasks};
  for_list(root["methods"], c.sub("methods"), [&](const YAML::Node& n, const Ctx& cm) {
    s.methods.push_back(parse_method(n, cm, method_check, embedded_backend));
  });
  check_command_templates(s, root, [&](const YAML::Node& n, const std::string& field, const std::string& what) {
    c.sub(field).fail(n, what);
  });

  if (root["parallelism"]) {
    const auto n = root["parallelism"];
    check_keys(n, c.sub("parallelism"), {"tp"});
    s.tp.clear();
    for_list(n["tp"], c.sub("parallelism.tp"), [&](const YAML::Node& x, const Ctx& cx) {
      int v = integer(x, cx);
      if (v < 1) cx.fail(x, "tp must be >= 1");
      s.tp.push_back(v);
    });
  }
  if (root["hardware"]) {
    const auto n = root["hardware"];
    const Ctx ch = c.sub("hardware");
    check_keys(n, ch, {"power_limit_w", "locked_clock_mhz", "partition"});
    std::vector<double> pls{-1}, clks{-1};
    std::vector<std::string> parts{""};
    if (n["partition"]) {
      parts.clear();
      for_list(n["partition"], ch.sub("partition"), [&](const YAML::Node& x, const Ctx& cx) {
        parts.push_back(scalar(x, cx));
        if (parts.back().empty()) cx.fail(x, "a partition name cannot be empty");
      });
    }
    if (n["power_limit_w"]) {
      pls.clear();
      for_list(n["power_limit_w"], ch.sub("power_limit_w"), [&](const YAML::Node& x, const Ctx& cx) { pls.push_back(number(x, cx)); });
    }
    if (n["locked_clock_mhz"]) {
      clks.clear();
      for_list(n["locked_clock_mhz"], ch.sub("locked_clock_mhz"), [&](const YAML::Node& x, const Ctx& cx) { clks.push_back(number(x, cx)); });
    }
    s.hardware.clear();
    for (const auto& part : parts) {
      for (double pl : pls) {
        for (double clk : clks) s.hardware.push_back({pl, clk, part});
      }
    }
  }
  if (!root["workloads"]) c.fail(root, "missing section 'workloads'");
  {
    std::size_t i = 0;
    for_list(root["workloads"], c.sub("workloads"),
             [&](const YAML::Node& n, const Ctx& cw) { s.workloads.push_back(parse_workload(n, cw, i++)); });
  }
  if (root["slos"]) {
    const auto n = root["slos"];
    if (!n.IsMap()) c.sub("slos").fail(n, "expected a mapping of class name -> bounds");
    for (const auto& kv : n) s.slos.push_back(parse_slo(kv.first.Scalar(), kv.second, c.sub("slos").sub(kv.first.Scalar())));
  }
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const auto& w = s.workloads[i];
    if (w.search_enabled &&
        std::none_of(s.slos.begin(), s.slos.end(), [&](const SloClass& x) { return x.name == w.search.slo; })) {
      c.sub("workloads").at(i).sub("search.slo").fail(root["workloads"], "no SLO class named '" + w.search.slo + "' in 'slos'");
    }
  }
  if (root["quality"]) {
    for_list(root["quality"], c.sub("quality"), [&](const YAML::Node& n, const Ctx& cq) {
      QualityTask t;
      YAML::Node tn = n;
      if (n.IsScalar()) {
        t.task = scalar(n, cq);
      } else {
        if (!n["task"]) cq.fail(n, "a quality entry needs 'task'");
        tn.reset(n["task"]);
        t.task = scalar(n["task"], cq.sub("task"));
        // The quality tasks' own table (quality/task_options.h), through KnownNames.
        t.options = checked_options(n, cq, known.quality_option_schema, true, "quality", {"task"});
        if (t.task.rfind("kl", 0) == 0 && !t.options.count("text")) cq.fail(n, "a kl entry needs 'text' (the text both models score)");
      }
      const std::string kind = t.task.substr(0, t.task.find(':'));
      if (!known.quality_tasks.empty() &&
          std::find(known.quality_tasks.begin(), known.quality_tasks.end(), kind) == known.quality_tasks.end()) {
        cq.fail(tn, "unknown quality task '" + kind + "' (known: " + join(known.quality_tasks) + ")");
      }
      if (auto colon = t.task.find(':'); colon != std::string::npos && kind != "kl") {
        const std::string path = t.task.substr(colon + 1);
        if (!std::ifstream(path)) cq.fail(tn, "file not found: " + path);
      }
      s.quality.push_back(t);
    });
  }
  if (root["energy"]) {
    const auto n = root["energy"];
    const Ctx ce = c.sub("energy");
    check_keys(n, ce, {"source", "interval_ms", "idle_s"});
    if (n["source"]) s.energy.source = scalar(n["source"], ce.sub("source"));
    static const std::set<std::string> kSources = {"auto", "nvml", "rapl", "model", "none"};
    if (!kSources.count(s.energy.source)) ce.sub("source").fail(n["source"], "unknown energy source '" + s.energy.source + "' (known: auto, nvml, rapl, model, none)");
    if (n["interval_ms"]) s.energy.interval_ms = number(n["interval_ms"], ce.sub("interval_ms"));
    if (n["idle_s"]) s.energy.idle_s = number(n["idle_s"], ce.sub("idle_s"));
    if (!(s.energy.interval_ms > 0)) ce.sub("interval_ms").fail(n["interval_ms"], "must be > 0");
  }
  if (root["repeats"]) {
    s.repeats = integer(root["repeats"], c.sub("repeats"));
    if (s.repeats < 1) c.sub("repeats").fail(root["repeats"], "must be >= 1");
  }
  if (root["seed"]) s.seed = static_cast<std::uint64_t>(integer(root["seed"], c.sub("seed")));
  if (root["executor"]) parse_executor(root["executor"], c.sub("executor"), s.slurm);
  return s;
}

// Core FNV-1a from the offset basis 1469598103934665603: the standard basis with its last digit
// lost. Every stored run id carries this basis, so it stays (tests/spec/golden_run_id_test.cpp).
std::uint64_t fnv1a64(const std::string& s) { return qmeter::fnv1a64(s, 1469598103934665603ULL); }

}  // namespace qmeter::spec
