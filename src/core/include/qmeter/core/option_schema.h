#pragma once
// One schema for the string-valued options of a registry (quantization method options, the
// embedded backend's options, quality task options): each option's type, default, range and help,
// written once by the module that owns the options. The spec parser checks values against it at
// parse time (with file:line:column), the CLI builds its flags from it, and libraries name a bad
// value by the field the caller gave them (FieldNames), never by a CLI flag of their own.
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/core/error.h"

namespace qmeter {

// How the caller names an option in messages: "--max-length" on a command line (the default),
// "quality[0].max_length" in a study spec.
struct FieldNames {
  std::string prefix = "--";
  bool dashes = true;  // '_' -> '-' (a CLI flag) or kept (a spec field)
  std::string operator()(std::string_view key) const;
  // `path`: the field of the mapping holding the options ("quality[0]"), "" for top-level keys.
  static FieldNames spec(const std::string& path);
};

enum class OptionType { kInt, kNumber, kBool, kText, kChoice };

struct OptionSpec {
  std::string key;  // canonical spelling: words joined by '_' (a spec field; the CLI flag uses '-')
  OptionType type = OptionType::kText;
  std::string default_value;  // for help; "" = none (or the method's own)
  std::string help;
  // kInt / kNumber: inclusive bounds; `multiple_of` > 0 (kInt): values must be multiples of it.
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool max_exclusive = false;
  int multiple_of = 0;
  std::vector<std::string> choices;  // kChoice

  // The tables' rows. `dflt`: the default as written in help ("" = none, or the owner's own).
  static OptionSpec integer(std::string key, std::string dflt, std::string help, double min,
                            double max = std::numeric_limits<double>::infinity(), int multiple_of = 0);
  static OptionSpec number(std::string key, std::string dflt, std::string help, double min, double max,
                           bool max_exclusive = false);
  static OptionSpec boolean(std::string key, std::string help);  // default false
  static OptionSpec text(std::string key, std::string help);
  static OptionSpec choice(std::string key, std::string dflt, std::vector<std::string> choices, std::string help);
};

// "group-size" and "group_size" name the same option: the canonical key ('-' -> '_').
std::string canonical_option_key(std::string_view key);
// The entry of `table` for `key` in either spelling, or nullptr.
const OptionSpec* find_option(const std::vector<OptionSpec>& table, std::string_view key);
// Why `value` is not a valid value of `spec` ("" when it is), without the field's name:
// "'12abc' is not an integer", "0 is below the minimum 1", "'int4' is not one of f32, int8, fp8".
std::string option_value_error(const OptionSpec& spec, const std::string& value);
// Booleans as every option table spells them: true/false, 1/0, yes/no ("" = true: a bare flag).
bool parse_option_bool(const std::string& value, bool& out);

// A bad option value or combination: `key` is the canonical key at fault, `reason` says what is
// wrong without naming it, what() is "FIELD: reason" with the field as the caller names it. A spec
// parser catches it to report the error at the key's own line.
class OptionError : public UsageError {
 public:
  // `value`, when given, follows the field: "--bits 5: method awq supports 4".
  OptionError(const FieldNames& names, std::string key, std::string reason, const std::string& value = "")
      : UsageError(names(key) + (value.empty() ? "" : " " + value) + ": " + reason),
        key_(std::move(key)),
        reason_(value.empty() ? std::move(reason) : value + ": " + reason) {}
  const std::string& key() const { return key_; }
  const std::string& reason() const { return reason_; }  // with the value when given

 private:
  std::string key_, reason_;
};

// Checks every entry of `options` against `table`: an unknown key or a bad value throws
// OptionError (`what` names the options' owner in the unknown-key message, e.g. "quality").
// Returns the options with canonical keys (a key given in both spellings is an error).
std::map<std::string, std::string> check_options(const std::vector<OptionSpec>& table,
                                                 const std::map<std::string, std::string>& options,
                                                 const std::string& what, const FieldNames& names = {});

}  // namespace qmeter
