#include <gtest/gtest.h>
#include <sys/resource.h>

#include "qmeter/core/open_file_limit.h"

namespace qmeter {
namespace {

// After the call the soft limit is the hard one (or 2^20 under an unlimited hard limit), and the
// returned figure is the limit in force.
TEST(OpenFileLimit, RaisesTheSoftLimitToTheHardLimit) {
  const std::uint64_t now = raise_open_file_limit();
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  EXPECT_EQ(now, lim.rlim_cur);
  EXPECT_EQ(lim.rlim_cur, lim.rlim_max == RLIM_INFINITY ? rlim_t{1u << 20} : lim.rlim_max);
}

}  // namespace
}  // namespace qmeter
