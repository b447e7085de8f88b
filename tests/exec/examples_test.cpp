// Every example spec under examples/ parses and expands as written (`qmeter run --dry-run`),
// the Slurm one with --executor slurm. The quickstart's is run by the README's first command.
#include <gtest/gtest.h>

#include <filesystem>

#include "qmeter/core/paths.h"
#include "run_qmeter.h"
#include "test_support.h"

TEST(Examples, EveryExampleSpecExpandsAsWritten) {
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");  // stories260K.yaml reads it
  const auto dir = qmeter::testing::test_output_dir("examples_dry_run");
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(qmeter::testing::source_dir() + "/examples")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".yaml" || name == "quickstart.yaml") continue;
    std::vector<std::string> args = {"run", e.path().string(), "--dry-run", "--db", dir + "/x.db"};
    if (name.find("slurm") != std::string::npos) {
      args.push_back("--executor");
      args.push_back("slurm");
    }
    const std::string log = dir + "/" + name + ".log";
    EXPECT_EQ(qmeter::testing::run_qmeter(args, log, 60), 0) << name << ": " << qmeter::read_file(log);
    EXPECT_NE(qmeter::read_file(log).find("estimated time"), std::string::npos) << name;
    ++checked;
  }
  EXPECT_GE(checked, 6);
}
