#pragma once
// One name per concept across verbs (the decisions are in docs/CLI.md). An option's first long
// name is the one --help, docs/CLI-flags.md and error messages show; the spellings it replaced
// stay extra names of the same CLI11 option, so an old command line parses to the same value
// through the same checks, while help and docs show the current name only.
#include <CLI/CLI.hpp>

#include <initializer_list>
#include <map>
#include <string>
#include <vector>

namespace qmeter::cli {

// CLI11 names for an option called `names` ("--quantization,-q") that still accepts the older
// spellings `old` ({"--method"}); the old ones are recorded as hidden. Flags negated with '!'
// keep it on both sides: renamed("!--quiet", {"!--no-progress"}).
std::string renamed(const std::string& names, std::initializer_list<const char*> old);

// The hidden older spellings among `opt`'s names ("--method"), and the names that are shown
// ("-q,--quantization").
std::vector<std::string> old_spellings(const CLI::Option& opt);
std::string shown_names(const CLI::Option& opt);

// --help output without the hidden spellings.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override;
};

// The methods of the quantization registry, comma-separated (the help of --quantization).
std::string quantization_methods();

// The method options of the quantization registry as --KEY flags (--group-size 64, --sym) that
// collect into `options` as KEY -> VALUE; the registry validates them and names the flag. With
// `old_quant_option`, the hidden --quant-option KEY=VALUE (eval's former spelling) fills the
// same map.
void add_quant_option_flags(CLI::App* sub, std::map<std::string, std::string>* options, bool old_quant_option = false);

// The reference of every verb's flags as Markdown (docs/CLI-flags.md, `qmeter help --markdown`).
std::string flags_markdown(const CLI::App& app);

}  // namespace qmeter::cli
