// What the registry derives from a configuration: the short label and the bits per weight of every
// registered method (a method added without a row here fails), and the option table's checks.
#include <gtest/gtest.h>

#include <map>

#include "qmeter/core/error.h"
#include "qmeter/quant/quantize.h"

using namespace qmeter;
using namespace qmeter::quant;

namespace {

constexpr double kRow = 4096;  // per-output-row scales over a nominal row of 4096 weights

struct Expected {
  std::string label;
  double bits_per_weight;
};

// Hand-computed from each format's stored layout (packed_formats.h, gguf_blocks.h): kQ4Group is
// codes + f16 scale + u8 zero per group; GGUF block types are block bytes x 8 / block weights.
const std::map<std::string, Expected>& expected() {
  static const std::map<std::string, Expected> table = {
      {"fp32", {"fp32", 32}},
      {"bf16", {"bf16", 16}},
      {"fp16", {"fp16", 16}},
      {"w8a16", {"rtn-w8", 8 + 32 / kRow}},
      {"w4a16-rtn", {"rtn-w4g128", 4 + 24.0 / 128}},
      {"w3a16-rtn", {"rtn-w3g128", 3 + 24.0 / 128}},
      {"gptq", {"gptq-w4g128", 4 + 24.0 / 128}},
      {"awq", {"awq-w4g128", 4 + 24.0 / 128}},
      {"nf4", {"nf4", 4 + 32.0 / 64}},
      {"fp8-w8a16", {"fp8", 8 + 32 / kRow}},
      {"fp8-w8a8", {"fp8-w8a8", 8 + 32 / kRow}},
      {"smoothquant-w8a8", {"sq-w8a8", 8 + 64 / kRow}},  // f32 scale and i32 code sum per row
      {"q8_0", {"q8_0", 34 * 8.0 / 32}},
      {"q4_0", {"q4_0", 18 * 8.0 / 32}},
      {"q4_k", {"q4_k", 144 * 8.0 / 256}},
      {"q4_1", {"q4_1", 20 * 8.0 / 32}},
      {"q5_0", {"q5_0", 22 * 8.0 / 32}},
      {"q5_1", {"q5_1", 24 * 8.0 / 32}},
      {"q2_k", {"q2_k", 84 * 8.0 / 256}},
      {"q3_k_m", {"q3_k_m", 110 * 8.0 / 256}},
      {"q4_k_m", {"q4_k_m", 144 * 8.0 / 256}},
      {"q5_k_m", {"q5_k_m", 176 * 8.0 / 256}},
      {"q6_k", {"q6_k", 210 * 8.0 / 256}},
      {"iq4_nl", {"iq4_nl", 18 * 8.0 / 32}},
      {"iq4_xs", {"iq4_xs", 136 * 8.0 / 256}},
  };
  return table;
}

}  // namespace

TEST(MethodOptions, EveryRegisteredMethodHasItsLabelAndBitsPerWeight) {
  EXPECT_EQ(methods().size(), expected().size());
  for (const MethodInfo& m : methods()) {
    auto it = expected().find(m.name);
    ASSERT_NE(it, expected().end()) << m.name << ": add its label and bits per weight here";
    const ConfigurationProperties p = configuration_properties(m.name, {});
    EXPECT_EQ(p.label, it->second.label) << m.name;
    EXPECT_DOUBLE_EQ(p.bits_per_weight, it->second.bits_per_weight) << m.name;
  }
}

TEST(MethodOptions, OptionsAwayFromTheirDefaultsShowInTheLabel) {
  auto label = [](const std::string& m, const std::map<std::string, std::string>& o) {
    return configuration_properties(m, o).label;
  };
  EXPECT_EQ(label("gptq", {{"bits", "3"}, {"group-size", "64"}, {"sym", "true"}, {"act_order", "yes"}}),
            "gptq-w3g64-sym-act");
  EXPECT_EQ(label("gptq", {{"damp", "0.05"}, {"calib", "/long/path/kjv.txt"}}), "gptq-w4g128");  // not in the label
  EXPECT_EQ(label("nf4", {{"double_quant", "true"}}), "nf4-dq");
  EXPECT_EQ(label("nf4", {{"double-quant", "false"}}), "nf4");
  EXPECT_EQ(label("smoothquant-w8a8", {{"alpha", "0.5"}}), "sq-w8a8-a0.5");
  EXPECT_EQ(label("fp32", {{"kv-cache-dtype", "int8"}}), "fp32-kvint8");
  EXPECT_EQ(label("w8a16", {{"quantize_lm_head", "true"}, {"kv_cache_dtype", "f32"}}), "rtn-w8-lmhead");
  // A command backend's own label and server flags: its name; options the registry lacks ignored.
  EXPECT_EQ(label("awq", {{"quantization", "awq_marlin"}}), "awq-w4g128");
  EXPECT_EQ(configuration_properties("awq_marlin", {{"bits", "4"}}).label, "awq_marlin");
  EXPECT_EQ(configuration_properties("awq_marlin", {{"bits", "4"}}).bits_per_weight, -1);
  // Options the method refuses: no figure rather than a wrong one.
  EXPECT_EQ(configuration_properties("awq", {{"bits", "3"}}).bits_per_weight, -1);
}

TEST(MethodOptions, DerivedFiguresFollowTheOptions) {
  EXPECT_DOUBLE_EQ(configuration_properties("gptq", {{"bits", "3"}, {"group_size", "32"}}).bits_per_weight, 3 + 24.0 / 32);
  EXPECT_DOUBLE_EQ(configuration_properties("gptq", {{"group-size", "64"}}).bits_per_weight, 4 + 24.0 / 64);
  // nf4 double quantization: u8 code per 64 weights, one f32 per 256 blocks.
  EXPECT_DOUBLE_EQ(configuration_properties("nf4", {{"double_quant", "yes"}}).bits_per_weight, 4 + 8.0 / 64 + 32.0 / (64 * 256));
  EXPECT_DOUBLE_EQ(configuration_properties("nf4", {{"double_quant", "false"}}).bits_per_weight, 4.5);
  const auto p = ConfigurationProperties::from_json(configuration_properties("awq", {}).to_json());
  EXPECT_EQ(p.label, "awq-w4g128");
  EXPECT_DOUBLE_EQ(p.bits_per_weight, 4 + 24.0 / 128);
  EXPECT_THROW(ConfigurationProperties::from_json("{\"label\": 3}"), Error);
}

TEST(MethodOptions, LabelsAreUniqueWithTheDifferingOption) {
  const auto labels = unique_labels({{"gptq", {{"calib", "/a/kjv.txt"}}, ""},
                                     {"gptq", {{"calib", "/b/kjv.txt"}}, ""},
                                     {"gptq", {{"calib", "/a/kjv.txt"}, {"damp", "0.01"}}, ""},  // = the first
                                     {"gptq", {{"damp", "0.1"}}, ""},
                                     {"awq", {}, ""}});
  EXPECT_EQ(labels, (std::vector<std::string>{"gptq-w4g128 calib=/a/kjv.txt", "gptq-w4g128 calib=/b/kjv.txt",
                                              "gptq-w4g128 calib=/a/kjv.txt", "gptq-w4g128 damp=0.1", "awq-w4g128"}));
}

// The table's checks, named as the caller names the field (the CLI's flags by default).
TEST(MethodOptions, ErrorsNameTheFieldAsTheCallerGaveIt) {
  try {
    parse_options("gptq", {{"group_size", "48"}});
    FAIL();
  } catch (const OptionError& e) {
    EXPECT_STREQ(e.what(), "--group-size: 48 is not a multiple of 32");
    EXPECT_EQ(e.key(), "group_size");
  }
  try {
    parse_options("awq", {{"bits", "5"}}, FieldNames::spec("methods[2]"));
    FAIL();
  } catch (const OptionError& e) {
    EXPECT_STREQ(e.what(), "methods[2].bits 5: method awq supports 4");
  }
  try {
    parse_options("w8a16", {{"damp", "12abc"}});
    FAIL();
  } catch (const OptionError& e) {
    EXPECT_STREQ(e.what(), "--damp: '12abc' is not a number");
  }
  EXPECT_EQ(parse_options("gptq", {{"calib-samples", "8"}, {"calib_seq_len", "64"}}).calib_samples, 8);
  EXPECT_THROW(parse_options("gptq", {{"group-size", "64"}, {"group_size", "64"}}), OptionError);
}
