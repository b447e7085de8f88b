#pragma once
// A fixed pool of worker threads for the engine's kernels (sized by --threads). parallel_for
// splits [0, n) into contiguous ranges, runs them on the workers and the caller, and returns
// when all are done. Low dispatch latency matters: a decode step of a small model is microseconds.
#include <functional>
#include <memory>

namespace qmeter::engine {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads >= 1 (the caller counts as one)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  // fn(begin, end) over a partition of [0, n) into at most size() ranges, aligned to `grain`.
  void parallel_for(int n, const std::function<void(int begin, int end)>& fn, int grain = 1);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::engine
