// The shared-data guard itself (tests/test_support.h): tests/core/CMakeLists.txt runs this test
// against an empty data folder twice, expecting a failure under CI=true and a skip without it.
// With the real data folder it checks that the file the model tests need is there.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.h"

TEST(SharedData, ModelTestsFindTheirFile) {
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  EXPECT_GT(std::filesystem::file_size(model), 0u);
}
