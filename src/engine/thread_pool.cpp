// Fixed worker threads with a per-worker mailbox. The caller hands each worker its range by
// writing the worker's slot and bumping its sequence number; a worker spins briefly on that
// number (decode steps issue kernels microseconds apart) and then sleeps on it with a futex.
// The caller runs range 0 itself and waits for a shared pending count the same way. Ranges are
// a pure function of (n, grain, size()), so which thread computes what never depends on timing.
#include "qmeter/engine/thread_pool.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "qmeter/core/error.h"

namespace qmeter::engine {
namespace {

// How long a waiting thread spins before it sleeps in the kernel. Long enough to span the gap
// between the kernels of one decode step, short enough not to burn a shared core for long.
constexpr auto kSpin = std::chrono::microseconds(50);

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected) {
  // Returns at once if *word != expected (the kernel compares atomically), or on a wake-up.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr,
          0);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until pred() holds or kSpin has passed; returns pred()'s last value.
template <typename Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return pred();
  }
}

// The pool whose parallel_for body this thread is running (nested calls run inline).
thread_local const void* tls_running_pool = nullptr;

}  // namespace

struct ThreadPool::Impl {
  struct alignas(64) Worker {
    std::atomic<std::uint32_t> seq{0};       // bumped by the caller to hand over a range
    std::atomic<std::uint32_t> sleeping{0};  // 1 while the worker may sleep on seq
    int begin = 0;                           // the range, written before seq is bumped
    int end = 0;
    std::exception_ptr error;
    std::thread thread;
  };

  int threads = 1;
  std::unique_ptr<Worker[]> workers;  // threads - 1 of them; the caller is range 0
  const std::function<void(int, int)>* fn = nullptr;
  bool stop = false;
  std::mutex dispatch;  // one parallel_for at a time when several threads share the pool
  alignas(64) std::atomic<std::uint32_t> pending{0};
  std::atomic<std::uint32_t> caller_sleeping{0};

  void worker_loop(Worker& w) {
    tls_running_pool = this;
    std::uint32_t seen = 0;
    for (;;) {
      std::uint32_t s = seen;
      spin_until([&] { return (s = w.seq.load(std::memory_order_acquire)) != seen; });
      while (s == seen) {
        // Announce the sleep before re-checking (seq_cst on both sides): either the caller
        // sees `sleeping` and wakes us, or we see its new seq and do not sleep.
        w.sleeping.store(1, std::memory_order_seq_cst);
        if (w.seq.load(std::memory_order_seq_cst) == seen) futex_wait(&w.seq, seen);
        w.sleeping.store(0, std::memory_order_relaxed);
        s = w.seq.load(std::memory_order_acquire);
      }
      seen = s;
      if (stop) return;
      try {
        (*fn)(w.begin, w.end);
      } catch (...) {
        w.error = std::current_exception();
      }
      if (pending.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
          caller_sleeping.load(std::memory_order_seq_cst)) {
        futex_wake(&pending);
      }
    }
  }

  void hand_over(Worker& w, int begin, int end) {
    w.begin = begin;
    w.end = end;
    w.error = nullptr;
    w.seq.fetch_add(1, std::memory_order_seq_cst);
    if (w.sleeping.load(std::memory_order_seq_cst)) futex_wake(&w.seq);
  }

  void wait_pending() {
    if (spin_until([&] { return pending.load(std::memory_order_acquire) == 0; })) return;
    for (;;) {
      caller_sleeping.store(1, std::memory_order_seq_cst);
      const std::uint32_t left = pending.load(std::memory_order_seq_cst);
      if (left == 0) break;
      futex_wait(&pending, left);
    }
    caller_sleeping.store(0, std::memory_order_relaxed);
  }
};

ThreadPool::ThreadPool(int threads) : impl_(std::make_unique<Impl>()) {
  if (threads < 1) throw Error("thread pool: the number of threads must be >= 1, got " + std::to_string(threads));
  impl_->threads = threads;
  impl_->workers = std::make_unique<Impl::Worker[]>(threads - 1);
  for (int i = 0; i < threads - 1; ++i) {
    Impl::Worker& w = impl_->workers[i];
    w.thread = std::thread([impl = impl_.get(), &w] { impl->worker_loop(w); });
  }
}

ThreadPool::~ThreadPool() {
  std::lock_guard lock(impl_->dispatch);
  impl_->stop = true;
  for (int i = 0; i < impl_->threads - 1; ++i) impl_->hand_over(impl_->workers[i], 0, 0);
  for (int i = 0; i < impl_->threads - 1; ++i) impl_->workers[i].thread.join();
}

int ThreadPool::size() const { return impl_->threads; }

void ThreadPool::parallel_for(int n, const std::function<void(int, int)>& fn, int grain) {
  if (n <= 0) return;
  grain = std::max(1, grain);
  const long units = (static_cast<long>(n) + grain - 1) / grain;
  const int parts = static_cast<int>(std::min<long>(impl_->threads, units));
  if (parts == 1 || tls_running_pool == impl_.get()) {
    fn(0, n);  // one range, or a nested call from inside this pool's own work
    return;
  }
  // Range i covers units [i*units/parts, (i+1)*units/parts): sizes differ by at most one grain.
  auto range_begin = [&](int i) { return static_cast<int>(std::min<long>(n, i * units / parts * grain)); };

  std::lock_guard lock(impl_->dispatch);
  impl_->fn = &fn;
  impl_->pending.store(parts - 1, std::memory_order_relaxed);
  for (int i = 1; i < parts; ++i) impl_->hand_over(impl_->workers[i - 1], range_begin(i), range_begin(i + 1));

  std::exception_ptr error;
  const void* outer = tls_running_pool;
  tls_running_pool = impl_.get();
  try {
    fn(0, range_begin(1));
  } catch (...) {
    error = std::current_exception();
  }
  tls_running_pool = outer;
  impl_->wait_pending();  // workers still use fn: wait even when our own range threw
  for (int i = 1; i < parts && !error; ++i) error = impl_->workers[i - 1].error;
  if (error) std::rethrow_exception(error);
}

}  // namespace qmeter::engine
