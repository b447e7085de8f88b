// One name per concept (docs/CLI.md): every renamed flag still accepts its old spelling, which
// parses to the same option and value, is shown nowhere, and docs/CLI-flags.md is what
// `qmeter help --markdown` prints today.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "flag_names.h"
#include "qmeter/core/error.h"
#include "test_support.h"
#include "verbs.h"

namespace qmeter::cli {
namespace {

struct OldSpelling {
  std::string verb;  // "bench serve"
  std::string old_name, new_name;
  std::vector<std::string> value;  // empty for a flag
};

// Every hidden spelling of the binary (the completeness test below fails when one is missing).
const std::vector<OldSpelling> kOldSpellings = {
    {"quantize", "--method", "--quantization", {"w8a16"}},
    {"serve", "--kv-cache-memory", "--kv-cache-mb", {"64"}},
    {"generate", "--max-seq-len", "--max-model-len", {"128"}},
    {"mock-server", "--output-len", "--tokens-before-eos", {"5"}},
    {"mock-server", "--threads", "--io-threads", {"3"}},
    {"mock-server", "--model", "--served-model-name", {"m1"}},
    {"plan schedule", "--slot-minutes", "--slot-min", {"5"}},
    {"report", "--out", "--output-html", {"r.html"}},
    {"export", "--out", "--output-file", {"x.csv"}},
    {"run", "--no-progress", "--quiet", {}},
    {"run", "--poll-interval", "--poll-interval-s", {"0.5"}},
    {"bench serve", "--think-time", "--think-time-s", {"0.5"}},
    {"bench serve", "--random-input-len", "--input-len", {"100"}},
    {"bench serve", "--random-output-len", "--output-len", {"10"}},
    {"bench serve", "--random-range-ratio", "--range-ratio", {"0.5"}},
    {"bench serve", "--timeout", "--timeout-s", {"30"}},
    {"bench serve", "--idle-seconds", "--idle-s", {"1.5"}},
    {"energy", "--idle-seconds", "--idle-s", {"1.5"}},
    {"eval", "--engine-model", "--model", {"m.bin"}},
    {"eval", "--concurrency", "--max-concurrency", {"4"}},
    {"eval", "--max-gen-tokens", "--max-tokens", {"32"}},
    {"eval", "--timeout", "--timeout-s", {"30"}},
};

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Every verb gets a hidden option it requires and is never given: parsing fills the options, then
// stops at the requirement check, before any verb's callback runs. (The callbacks stay: they own
// the structs the options write into.)
void block_callbacks(CLI::App* app) {
  for (CLI::App* sub : app->get_subcommands([](CLI::App* s) { return !s->get_name().empty(); })) {
    sub->add_flag("--test-never-given")->required()->group("");
    block_callbacks(sub);
  }
}

CLI::App* find_verb(CLI::App& app, const std::string& path) {
  CLI::App* at = &app;
  for (const auto& w : words(path)) at = at->get_subcommand(w);
  return at;
}

// The raw results of option `name` of `verb` after parsing `qmeter <verb> <args>`; options the
// verb requires but the test leaves out are no concern here.
std::vector<std::string> parsed(const std::string& verb, const std::vector<std::string>& args, const std::string& name) {
  CLI::App app;
  add_verbs(app);
  block_callbacks(&app);
  std::vector<std::string> argv_text = {"qmeter"};
  for (const auto& w : words(verb)) argv_text.push_back(w);
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& a : argv_text) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::RequiredError&) {
  }
  const CLI::Option* opt = find_verb(app, verb)->get_option(name);
  EXPECT_EQ(opt->count(), 1u) << verb << " " << name;
  return opt->results();
}

TEST(FlagNames, EveryOldSpellingParsesToTheSameOptionAndValue) {
  for (const auto& s : kOldSpellings) {
    std::vector<std::string> with_old = {s.old_name}, with_new = {s.new_name};
    with_old.insert(with_old.end(), s.value.begin(), s.value.end());
    with_new.insert(with_new.end(), s.value.begin(), s.value.end());
    const auto via_old = parsed(s.verb, with_old, s.new_name);
    const auto via_new = parsed(s.verb, with_new, s.new_name);
    EXPECT_EQ(via_old, via_new) << s.verb << " " << s.old_name << " vs " << s.new_name;
    if (!s.value.empty()) EXPECT_EQ(via_new, s.value) << s.verb << " " << s.new_name;
  }
}

TEST(FlagNames, OldSpellingsAreHiddenFromHelp) {
  CLI::App app;
  add_verbs(app);
  for (const auto& s : kOldSpellings) {
    CLI::App* verb = find_verb(app, s.verb);
    const std::string help = verb->help();
    EXPECT_EQ(help.find("," + s.old_name), std::string::npos) << "qmeter " << s.verb << " --help shows " << s.old_name;
    EXPECT_NE(help.find(s.new_name), std::string::npos) << "qmeter " << s.verb << " --help lacks " << s.new_name;
    EXPECT_EQ(verb->get_option(s.old_name)->get_name(), s.new_name) << "errors must name the current flag";
  }
  CLI::App* eval = app.get_subcommand("eval");
  EXPECT_EQ(eval->help().find("--quant-option"), std::string::npos);
}

TEST(FlagNames, TheTableListsEveryOldSpellingOfTheBinary) {
  CLI::App app;
  add_verbs(app);
  std::set<std::pair<std::string, std::string>> in_binary, in_table;
  std::function<void(const CLI::App*, const std::string&)> walk = [&](const CLI::App* at, const std::string& path) {
    for (const CLI::Option* o : at->get_options())
      for (const auto& old : old_spellings(*o)) in_binary.insert({path, old});
    for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
      walk(sub, sub->get_name().empty() ? path : (path.empty() ? "" : path + " ") + sub->get_name());
  };
  walk(&app, "");
  for (const auto& s : kOldSpellings) in_table.insert({s.verb, s.old_name});
  EXPECT_EQ(in_binary, in_table);
}

// eval's former --quant-option KEY=VALUE fills the same options as the registry's --KEY flags.
TEST(FlagNames, QuantOptionKeyValueEqualsTheKeyFlags) {
  auto parse = [](const std::vector<const char*>& args) {
    std::map<std::string, std::string> options;
    CLI::App app;
    add_quant_option_flags(&app, &options, true);
    std::vector<const char*> argv = {"eval"};
    argv.insert(argv.end(), args.begin(), args.end());
    app.parse(static_cast<int>(argv.size()), argv.data());
    return options;
  };
  const auto via_old = parse({"--quant-option", "group-size=64", "--quant-option", "sym=true", "--quant-option", "calib=a.txt"});
  const auto via_new = parse({"--group-size", "64", "--sym", "--calib", "a.txt"});
  EXPECT_EQ(via_old, via_new);
  EXPECT_EQ(via_new, (std::map<std::string, std::string>{{"calib", "a.txt"}, {"group-size", "64"}, {"sym", "true"}}));
  EXPECT_THROW(parse({"--quant-option", "group-size"}), UsageError);
  CLI::App app;
  add_verbs(app);
  EXPECT_NO_THROW(app.get_subcommand("eval")->get_option("--quant-option"));
}

TEST(FlagNames, FlagsDocEqualsTheGeneratedReference) {
  CLI::App app{"qmeter"};
  add_verbs(app);
  const std::string path = qmeter::testing::source_dir() + "/docs/CLI-flags.md";
  std::ifstream in(path);
  std::stringstream doc;
  doc << in.rdbuf();
  EXPECT_TRUE(doc.str() == flags_markdown(app))
      << path << " is stale: regenerate it with `build/src/cli/qmeter help --markdown > docs/CLI-flags.md`";
}

}  // namespace
}  // namespace qmeter::cli
