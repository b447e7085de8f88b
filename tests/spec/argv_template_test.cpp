// The command backend's templates: optional {?FLAG NAME} entries, per-model checkpoints, and
// the parse-time checks that report a template problem at its file:line:column.
#include <gtest/gtest.h>

#include "qmeter/core/error.h"
#include "qmeter/spec/study_spec.h"

using namespace qmeter::spec;

namespace {

using Argv = std::vector<std::string>;

std::string error_of(const std::string& text) {
  try {
    parse_study_spec_text(text, "s.yaml");
  } catch (const qmeter::UsageError& e) {
    return e.what();
  }
  return "";
}

// A command-backend study: `methods` and `argv` are YAML flow lists spliced into one spec.
std::string study(const std::string& methods, const std::string& argv, const std::string& extra_backend = "") {
  return "study: t\n"
         "models: [{name: a, path: org/a}, {name: b, path: org/b}]\n"
         "methods: " + methods + "\n"
         "backend:\n  kind: command\n  argv: " + argv + "\n" + extra_backend +
         "workloads: [{rates: [1]}]\n";
}

}  // namespace

TEST(ArgvTemplate, AnOptionalEntryBecomesFlagAndValueOrNothing) {
  const Argv argv = {"vllm", "serve", "{checkpoint}", "{?--quantization opt.q}", "--port", "{port}"};
  std::map<std::string, std::string> vars = {{"checkpoint", "org/m"}, {"port", "8000"}, {"opt.q", "fp8"}};
  EXPECT_EQ(expand_argv(argv, vars), (Argv{"vllm", "serve", "org/m", "--quantization", "fp8", "--port", "8000"}));
  vars.erase("opt.q");  // the method has no such option
  EXPECT_EQ(expand_argv(argv, vars), (Argv{"vllm", "serve", "org/m", "--port", "8000"}));
  vars["opt.q"] = "";  // an empty value is no value
  EXPECT_EQ(expand_argv(argv, vars), (Argv{"vllm", "serve", "org/m", "--port", "8000"}));
  // Several words before the name, and none: each word is one argv entry, the value one more.
  vars["opt.rope"] = "yarn";
  EXPECT_EQ(expand_argv({"{?--rope-scaling --type opt.rope}", "{?opt.rope}"}, vars),
            (Argv{"--rope-scaling", "--type", "yarn", "yarn"}));
  // A value with spaces stays one entry (no shell, no word splitting).
  vars["opt.rope"] = "a b";
  EXPECT_EQ(expand_argv({"{?--x opt.rope}"}, vars), (Argv{"--x", "a b"}));
}

TEST(ArgvTemplate, MalformedOptionalEntriesAreRefusedNotPassedLiterally) {
  const std::map<std::string, std::string> vars = {{"opt.q", "fp8"}};
  EXPECT_THROW(expand_argv({"--quantization={?opt.q}"}, vars), qmeter::UsageError);  // not a whole entry
  EXPECT_THROW(expand_argv({"{?--quantization  opt.q}"}, vars), qmeter::UsageError);  // two spaces
  EXPECT_THROW(expand_argv({"{?--quantization}"}, vars), qmeter::UsageError);  // no placeholder name
  EXPECT_THROW(expand_argv({"{?}"}, vars), qmeter::UsageError);
  EXPECT_THROW(expand_env_template({{"Q", "{?--flag opt.q}"}}, vars), qmeter::UsageError);  // env takes {?NAME}
}

TEST(ArgvTemplate, AnOptionalEnvValueLeavesTheVariableUnset) {
  const std::map<std::string, std::string> env = {{"KV", "{?opt.kv}"}, {"PORT", "p{port}"}};
  auto out = expand_env_template(env, {{"port", "9"}});
  EXPECT_EQ(out, (std::map<std::string, std::string>{{"PORT", "p9"}}));
  out = expand_env_template(env, {{"port", "9"}, {"opt.kv", "fp8"}});
  EXPECT_EQ(out, (std::map<std::string, std::string>{{"KV", "fp8"}, {"PORT", "p9"}}));
}

TEST(ArgvTemplate, ParseTimeChecksNameTheEntryOrMethodAndItsPosition) {
  // An unknown placeholder: the argv entry's line and column.
  EXPECT_NE(error_of(study("[x]", "[srv, \"{checkpont}\"]"))
                .find("s.yaml:6:15: backend.argv[1]: unknown placeholder {checkpont} (known: model, model_path, checkpoint,"),
            std::string::npos)
      << error_of(study("[x]", "[srv, \"{checkpont}\"]"));
  // A method without the option a required {opt.NAME} needs: that method's entry.
  const std::string missing = error_of(study("[{name: fp8, q: fp8}, {name: bf16}]", "[srv, --quantization, \"{opt.q}\"]"));
  EXPECT_NE(missing.find("s.yaml:3:32: methods[1]: method 'bf16' has no option 'q', which backend.argv[2] needs as "
                         "{opt.q} (give the method a value, or write that argv entry as {?FLAG opt.q}"),
            std::string::npos)
      << missing;
  // The same study with the flag optional parses; an env placeholder is checked too.
  EXPECT_EQ(error_of(study("[{name: fp8, q: fp8}, {name: bf16}]", "[srv, \"{?--quantization opt.q}\"]")), "");
  EXPECT_NE(error_of(study("[x]", "[srv]", "  env: {A: \"{prot}\"}\n")).find("s.yaml:7:12: backend.env.A: unknown placeholder {prot}"),
            std::string::npos)
      << error_of(study("[x]", "[srv]", "  env: {A: \"{prot}\"}\n"));
  EXPECT_NE(error_of(study("[x]", "[srv, \"--q={?opt.q}\"]")).find("s.yaml:6:15: backend.argv[1]: '--q={?opt.q}': an optional"),
            std::string::npos);
}

TEST(ArgvTemplate, CheckpointsResolvePerModelAndChangeOnlyTheirOwnRunIds) {
  const std::string argv = "[srv, \"{checkpoint}\", --tokenizer, \"{model_path}\"]";
  const auto plain = expand_runs(parse_study_spec_text(study("[bf16, awq]", argv), "s.yaml"));
  const auto with = expand_runs(parse_study_spec_text(study("[bf16, {name: awq, checkpoints: {a: org/a-AWQ}}]", argv), "s.yaml"));
  ASSERT_EQ(plain.size(), 4u);
  ASSERT_EQ(with.size(), 4u);
  // Runs come model-major: a/bf16, a/awq, b/bf16, b/awq.
  EXPECT_EQ(with[0].checkpoint, "org/a");
  EXPECT_EQ(with[1].checkpoint, "org/a-AWQ");
  EXPECT_EQ(with[2].checkpoint, "org/b");
  EXPECT_EQ(with[3].checkpoint, "org/b");  // b has no AWQ checkpoint named: its own path
  EXPECT_EQ(with[1].model.path, "org/a");  // {model_path} stays the model's own
  EXPECT_NE(with[1].id, plain[1].id);      // other weights are measured
  EXPECT_NE(with[1].normalized_json.find("\"checkpoint\":\"org/a-AWQ\""), std::string::npos);
  for (std::size_t i : {0u, 2u, 3u}) EXPECT_EQ(with[i].id, plain[i].id) << i;  // no checkpoint named: ids kept
}

TEST(ArgvTemplate, CheckpointErrorsNameTheFieldAndPosition) {
  const std::string argv = "[srv, \"{checkpoint}\"]";
  std::string e = error_of(study("[{name: awq, checkpoints: {c: org/c-AWQ}}]", argv));
  EXPECT_NE(e.find("s.yaml:3:37: methods[0].checkpoints.c: no model named 'c' in 'models' (known: a, b)"), std::string::npos) << e;
  e = error_of(study("[{name: awq, checkpoints: {a: org/a-AWQ}}]", "[srv, \"{model_path}\"]"));
  EXPECT_NE(e.find("s.yaml:3:36: methods[0].checkpoints: the backend's argv and env do not use {checkpoint}"), std::string::npos) << e;
  e = error_of(study("[{name: awq, checkpoints: [org/a-AWQ]}]", argv));
  EXPECT_NE(e.find("s.yaml:3:36: methods[0].checkpoints: expected a mapping"), std::string::npos) << e;
  e = error_of(
      "study: t\nmodels: [\"synthetic:tiny\"]\nmethods: [{name: fp32, checkpoints: {tiny: x.gguf}}]\nworkloads: [{rates: [1]}]\n");
  EXPECT_NE(e.find("s.yaml:3:37: methods[0].checkpoints: a checkpoint is what a command backend's server loads; the embedded"),
            std::string::npos)
      << e;
}
