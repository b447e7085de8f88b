#include "flag_names.h"

#include <fmt/format.h>

#include <array>
#include <set>
#include <sstream>

#include "qmeter/core/error.h"
#include "qmeter/quant/quantize.h"

namespace qmeter::cli {

namespace {

// "!--no-progress" / "--method" -> "no-progress" / "method" (CLI11 keeps long names this way).
std::string bare(std::string name) {
  if (!name.empty() && name.front() == '!') name.erase(0, 1);
  while (!name.empty() && name.front() == '-') name.erase(0, 1);
  if (const auto brace = name.find('{'); brace != std::string::npos) name.erase(brace);
  return name;
}

// Current long name -> the older spellings it accepts, hidden. Keyed by the current name alone:
// the same old spelling may be hidden under one verb's option and be another option's name
// elsewhere, and only names that are not an option's first long name are ever hidden.
std::map<std::string, std::set<std::string>>& hidden_spellings() {
  static std::map<std::string, std::set<std::string>> table;
  return table;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string cell(std::string text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

void verb_markdown(const CLI::App& verb, const std::string& path, std::string& out,
                   std::vector<std::array<std::string, 3>>& old_rows) {
  auto shown = [](const CLI::Option* o) { return !o->get_group().empty() && !o->check_lname("help"); };
  auto options = verb.get_options(shown);
  for (const CLI::App* group : verb.get_subcommands({}))  // option groups: nameless subcommands
    if (group->get_name().empty())
      for (const CLI::Option* o : group->get_options(shown)) options.push_back(o);
  if (!options.empty() || verb.get_subcommands({}).empty()) {
    out += fmt::format("## qmeter {}\n\n{}\n\n", path, cell(verb.get_description()));
    if (!options.empty()) {
      out += "| flag | value | default | meaning |\n| --- | --- | --- | --- |\n";
      for (const CLI::Option* o : options) {
        const bool positional = !o->nonpositional();
        std::string value;
        if (o->get_type_size() != 0) {
          value = o->get_type_name();
          if (o->get_expected_max() >= CLI::detail::expected_max_vector_size) value += " ...";
        }
        if (o->get_required()) value += value.empty() ? "required" : " (required)";
        std::string names = positional ? o->get_name(true) : shown_names(*o);
        for (auto brace = names.find('{'); brace != std::string::npos; brace = names.find('{'))
          names.erase(brace, names.find('}', brace) - brace + 1);  // "--no-report{false}": CLI11's flag value
        out += fmt::format("| `{}` | {} | {} | {} |\n", names, cell(value),
                           cell(o->get_default_str()), cell(o->get_description()));
        for (const std::string& old : old_spellings(*o)) old_rows.push_back({path, old, o->get_name()});
      }
      out += "\n";
    }
  }
  for (const CLI::App* sub : verb.get_subcommands({}))
    if (!sub->get_name().empty()) verb_markdown(*sub, path + " " + sub->get_name(), out, old_rows);
}

}  // namespace

std::string renamed(const std::string& names, std::initializer_list<const char*> old) {
  std::string current;
  for (const std::string& n : split_commas(names)) {
    const std::string b = bare(n);
    if (n.find("--") != std::string::npos && !b.empty()) {
      current = b;
      break;
    }
  }
  if (current.empty()) throw std::logic_error("renamed(\"" + names + "\"): no long name");
  std::string out = names;
  for (const char* o : old) {
    hidden_spellings()[current].insert(bare(o));
    out += std::string(",") + o;
  }
  return out;
}

std::vector<std::string> old_spellings(const CLI::Option& opt) {
  std::vector<std::string> out;
  const auto& lnames = opt.get_lnames();
  if (lnames.empty()) return out;
  const auto it = hidden_spellings().find(lnames.front());
  if (it == hidden_spellings().end()) return out;
  for (std::size_t i = 1; i < lnames.size(); ++i)
    if (it->second.count(lnames[i])) out.push_back("--" + lnames[i]);
  return out;
}

std::string shown_names(const CLI::Option& opt) {
  const auto old = old_spellings(opt);
  std::string out;
  for (const std::string& n : split_commas(opt.get_name(false, true))) {
    bool hidden = false;
    for (const std::string& o : old) hidden = hidden || bare(o) == bare(n);
    if (!hidden) out += (out.empty() ? "" : ",") + n;
  }
  return out;
}

std::string HelpFormatter::make_option_name(const CLI::Option* opt, bool is_positional) const {
  return is_positional ? CLI::Formatter::make_option_name(opt, true) : shown_names(*opt);
}

std::string quantization_methods() {
  std::string out;
  for (const std::string& m : quant::method_names()) out += (out.empty() ? "" : ", ") + m;
  return out;
}

void add_quant_option_flags(CLI::App* sub, std::map<std::string, std::string>* options, bool old_quant_option) {
  for (const quant::OptionInfo& q : quant::option_table()) {
    auto* opt = sub->add_option_function<std::string>(
        "--" + q.key, [options, k = q.key](const std::string& v) { (*options)[k] = v; }, q.help);
    opt->group("Quantization options");
    if (q.flag) opt->expected(0, 1)->default_str("true");  // boolean options work bare: --sym = --sym true
  }
  if (old_quant_option) {
    // eval's former spelling of the same options; hidden (empty group), the same map.
    sub->add_option_function<std::vector<std::string>>(
           "--quant-option",
           [options](const std::vector<std::string>& items) {
             for (const std::string& s : items) {
               const auto eq = s.find('=');
               if (eq == std::string::npos || eq == 0)
                 throw UsageError(fmt::format("--quant-option: '{}' is not KEY=VALUE", s));
               (*options)[s.substr(0, eq)] = s.substr(eq + 1);
             }
           },
           "")
        ->group("");
  }
}

std::string flags_markdown(const CLI::App& app) {
  std::string out =
      "# qmeter flags\n\n"
      "<!-- Generated by `qmeter help --markdown`; do not edit. tests/cli checks that this file equals the\n"
      "     output, so a flag added or renamed in src/cli must be regenerated here:\n"
      "     build/src/cli/qmeter help --markdown > docs/CLI-flags.md -->\n\n"
      "Every verb's flags as `qmeter <verb> --help` shows them. The naming rules are in [CLI.md](CLI.md).\n\n";
  std::vector<std::array<std::string, 3>> old_rows;
  for (const CLI::App* verb : app.get_subcommands({}))
    if (!verb->get_name().empty()) verb_markdown(*verb, verb->get_name(), out, old_rows);
  out +=
      "## Older spellings (hidden, still accepted)\n\n"
      "They parse to the same option as the current name; `--help` does not show them.\n\n"
      "| verb | old spelling | current name |\n| --- | --- | --- |\n";
  for (const auto& [verb, old, now] : old_rows) out += fmt::format("| {} | `{}` | `{}` |\n", verb, old, now);
  out += "| eval | `--quant-option KEY=VALUE` | `--KEY VALUE` (the quantization options) |\n";
  return out;
}

}  // namespace qmeter::cli
