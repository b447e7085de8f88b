// Thread pool: partitions cover every index exactly once, aligned to the grain, at most size()
// ranges, the same on every call; work gives the single-threaded result; exceptions, nested
// and concurrent calls, and wake-ups from sleep behave.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "qmeter/core/error.h"
#include "qmeter/engine/thread_pool.h"

namespace qmeter::engine {
namespace {

using Ranges = std::vector<std::pair<int, int>>;

Ranges record_ranges(ThreadPool& pool, int n, int grain) {
  Ranges ranges;
  std::mutex m;
  pool.parallel_for(
      n,
      [&](int begin, int end) {
        std::lock_guard lock(m);
        ranges.emplace_back(begin, end);
      },
      grain);
  std::sort(ranges.begin(), ranges.end());
  return ranges;
}

TEST(ThreadPool, PartitionsCoverEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int grain : {1, 2, 3, 16, 64}) {
      for (int n : {0, 1, 2, 3, 5, 15, 16, 17, 31, 33, 64, 100, 127, 1000, 1023, 4096}) {
        const Ranges ranges = record_ranges(pool, n, grain);
        const std::string at = "threads " + std::to_string(threads) + " grain " + std::to_string(grain) +
                               " n " + std::to_string(n);
        if (n == 0) {
          EXPECT_TRUE(ranges.empty()) << at;
          continue;
        }
        ASSERT_FALSE(ranges.empty()) << at;
        EXPECT_LE(static_cast<int>(ranges.size()), threads) << at;
        // Enough ranges to use the threads when there is work for them.
        EXPECT_EQ(static_cast<int>(ranges.size()), std::min(threads, (n + grain - 1) / grain)) << at;
        std::vector<int> hits(n, 0);
        for (auto [begin, end] : ranges) {
          ASSERT_LT(begin, end) << at;
          ASSERT_EQ(begin % grain, 0) << at;
          for (int i = begin; i < end; ++i) ++hits[i];
        }
        for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << at << " index " << i;
        // Deterministic: the same ranges every time.
        EXPECT_EQ(record_ranges(pool, n, grain), ranges) << at;
      }
    }
  }
}

TEST(ThreadPool, RangesAreBalancedToWithinOneGrain) {
  ThreadPool pool(3);
  const Ranges ranges = record_ranges(pool, 1000, 16);  // 63 grains over 3 threads: 21 each
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0], std::make_pair(0, 336));
  EXPECT_EQ(ranges[1], std::make_pair(336, 672));
  EXPECT_EQ(ranges[2], std::make_pair(672, 1000));
}

TEST(ThreadPool, ResultsEqualTheSingleThreadedOnes) {
  const int n = 10007;
  std::vector<double> serial(n);
  for (int i = 0; i < n; ++i) serial[i] = static_cast<double>(i) * i / 7.0 + 1.0 / (i + 1);
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<double> out(n, -1.0);
    pool.parallel_for(n, [&](int begin, int end) {
      for (int i = begin; i < end; ++i) out[i] = static_cast<double>(i) * i / 7.0 + 1.0 / (i + 1);
    });
    EXPECT_EQ(out, serial) << threads;
  }
}

TEST(ThreadPool, ManyBackToBackDispatchesAllComplete) {
  // Decode issues thousands of small kernels: every dispatch must see all of its ranges done.
  ThreadPool pool(3);
  std::vector<int> counts(64, 0);
  for (int iter = 0; iter < 3000; ++iter) {
    pool.parallel_for(64, [&](int begin, int end) {
      for (int i = begin; i < end; ++i) ++counts[i];
    }, 8);
    if (iter % 500 == 0) {
      for (int i = 0; i < 64; ++i) ASSERT_EQ(counts[i], iter + 1);
    }
  }
  for (int c : counts) EXPECT_EQ(c, 3000);
}

TEST(ThreadPool, WakesWorkersThatWentToSleep) {
  ThreadPool pool(4);
  for (int round = 0; round < 3; ++round) {
    // Longer than the spin phase: the workers are asleep in the kernel when the work comes.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic<int> sum{0};
    pool.parallel_for(400, [&](int begin, int end) {
      for (int i = begin; i < end; ++i) sum += i;
    });
    EXPECT_EQ(sum.load(), 399 * 400 / 2);
  }
}

TEST(ThreadPool, AnExceptionInAnyRangeReachesTheCallerAndThePoolStaysUsable) {
  ThreadPool pool(3);
  for (int bad : {0, 50, 99}) {  // caller's range, a middle worker's, the last worker's
    EXPECT_THROW(pool.parallel_for(100, [&](int begin, int end) {
      if (bad >= begin && bad < end) throw std::runtime_error("range failed");
    }),
                 std::runtime_error);
  }
  std::atomic<int> count{0};
  pool.parallel_for(100, [&](int begin, int end) { count += end - begin; });
  EXPECT_EQ(count.load(), 100);
}

TEST(ThreadPool, NestedCallsRunInlineWithoutDeadlock) {
  ThreadPool pool(2);
  std::vector<int> hits(100 * 10, 0);
  pool.parallel_for(100, [&](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      pool.parallel_for(10, [&](int b, int e) {
        for (int j = b; j < e; ++j) ++hits[i * 10 + j];
      });
    }
  });
  for (int h : hits) EXPECT_EQ(h, 1);
}

TEST(ThreadPool, SeveralCallerThreadsCanShareOnePool) {
  ThreadPool pool(3);
  std::vector<long> totals(4, 0);
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int iter = 0; iter < 200; ++iter) {
        std::atomic<long> sum{0};
        pool.parallel_for(1000, [&](int begin, int end) {
          long local = 0;
          for (int i = begin; i < end; ++i) local += i;
          sum += local;
        });
        totals[t] += sum.load();
      }
    });
  }
  for (auto& c : callers) c.join();
  for (long total : totals) EXPECT_EQ(total, 200L * 999 * 1000 / 2);
}

TEST(ThreadPool, RejectsFewerThanOneThread) {
  EXPECT_THROW(ThreadPool(0), Error);
  EXPECT_THROW(ThreadPool(-3), Error);
}

}  // namespace
}  // namespace qmeter::engine
