// Reference values of the core hash and generator: published test vectors where they exist
// (FNV-1a 64; SplitMix64 seeded 0 as in Vigna's reference splitmix64.c), so these pin the
// definitions themselves, not only today's code.
#include <gtest/gtest.h>

#include "qmeter/core/hash.h"
#include "qmeter/core/random.h"

namespace qmeter {
namespace {

TEST(GoldenCore, Fnv1a64MatchesTheReferenceVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
  // Continuing a hash equals hashing the concatenation.
  EXPECT_EQ(fnv1a64("bar", fnv1a64("foo")), fnv1a64("foobar"));
}

TEST(GoldenCore, SplitMix64MatchesTheReferenceSequence) {
  SplitMix64 g(0);
  EXPECT_EQ(g.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(g.next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(g.next(), 0x06c45d188009454fULL);
  EXPECT_EQ(splitmix64_hash(0), 0xe220a8397b1dcdafULL);
  // The hash of x is the first output of a generator seeded x.
  SplitMix64 h(12345);
  EXPECT_EQ(h.next(), splitmix64_hash(12345));
}

TEST(GoldenCore, SamplersAreExactFunctionsOfTheDraws) {
  EXPECT_EQ(unit_interval(0), 0.0);
  EXPECT_EQ(unit_interval(~0ULL), 1.0 - 0x1.0p-53);  // below 1
  EXPECT_EQ(open_unit_interval(0), 0x1.0p-54);          // above 0
  EXPECT_GT(box_muller(1.0, 0.3), -1e-300);             // log(1) = 0: exactly 0 * cos
  EXPECT_DOUBLE_EQ(box_muller(std::exp(-0.5), 0.0), 1.0);  // sqrt(-2 * -0.5) * cos(0)
  SplitMix64 a(9), b(9);
  const std::uint64_t x = a.next(), y = a.next();
  EXPECT_EQ(b.normal(), box_muller(1.0 - unit_interval(x), unit_interval(y)));
  SplitMix64 c(9);
  EXPECT_EQ(c.below(10), x % 10);
  EXPECT_EQ(c.below(0), 0u);
}

}  // namespace
}  // namespace qmeter
