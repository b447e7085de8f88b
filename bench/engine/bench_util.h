#pragma once
// Shared by the engine benchmarks: the machine's measured memory read bandwidth, the roofline of
// memory-bound decode (weight bytes per token x tokens/s / this bandwidth = roofline fraction).
// Header-only so that every bench/engine executable can include it.
// GCC 12's intrinsic headers initialise "undefined" vectors from themselves, which
// -Wuninitialized reports at every inlined use (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "qmeter/core/text.h"

namespace qmeter::bench {

// "a,b,,c" -> {"a", "b", "c"}: the list options of the benchmarks.
inline std::vector<std::string> split_commas(const std::string& v) { return split_nonempty(v, ','); }

// A large buffer for benchmark data: 2 MiB aligned and with transparent huge pages requested
// (fewer TLB misses while streaming), first touched by the caller. Release with free_buffer.
inline void* alloc_buffer(std::size_t bytes) {
  constexpr std::size_t kAlign = 2u << 20;
  void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  if (!p) throw std::bad_alloc();
  madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}
inline void free_buffer(void* p) { std::free(p); }

namespace detail {

// Reads [p, p + bytes) once with the widest loads the CPU has, four independent accumulators,
// optionally with software prefetch 1 KiB ahead (the hardware prefetcher stops at 4 KiB page
// boundaries; on the development machine prefetching reads ~20% faster). Returns a value that
// depends on every byte so the loop cannot be optimised away.
template <bool kPrefetch>
__attribute__((target("avx512f"))) inline std::uint64_t read_avx512(const std::uint8_t* p, std::size_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t i = 0; i + 256 <= bytes; i += 256) {
    if (kPrefetch) {
      for (int k = 0; k < 256; k += 64) _mm_prefetch(reinterpret_cast<const char*>(p + i + 1024 + k), _MM_HINT_T0);
    }
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

template <bool kPrefetch>
__attribute__((target("avx2"))) inline std::uint64_t read_avx2(const std::uint8_t* p, std::size_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t i = 0; i + 128 <= bytes; i += 128) {
    if (kPrefetch) {
      for (int k = 0; k < 128; k += 64) _mm_prefetch(reinterpret_cast<const char*>(p + i + 1024 + k), _MM_HINT_T0);
    }
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  std::uint64_t lanes[4];
  std::memcpy(lanes, &s, sizeof(lanes));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

inline std::uint64_t read_generic(const std::uint8_t* p, std::size_t bytes) {
  std::uint64_t a[8] = {};
  for (std::size_t i = 0; i + 64 <= bytes; i += 64) {
    for (int k = 0; k < 8; ++k) {
      std::uint64_t v;
      std::memcpy(&v, p + i + 8 * k, 8);
      a[k] += v;
    }
  }
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

inline std::uint64_t read_once(const std::uint8_t* p, std::size_t bytes, bool prefetch) {
  if (__builtin_cpu_supports("avx512f")) return prefetch ? read_avx512<true>(p, bytes) : read_avx512<false>(p, bytes);
  if (__builtin_cpu_supports("avx2")) return prefetch ? read_avx2<true>(p, bytes) : read_avx2<false>(p, bytes);
  return read_generic(p, bytes);
}

}  // namespace detail

struct ReadBandwidth {
  // 1e9 bytes per second: the highest figure measured (best window or best whole pass), the
  // roofline to divide by. A roofline must not be understated: on a loaded machine a whole
  // pass is slowed by other processes, a short window often is not.
  double gb_per_s = 0;
  double gb_per_s_best_pass = 0;    // best whole pass over the buffer (sustained)
  double gb_per_s_best_window = 0;  // best `window_bytes` window
  int threads = 0;
  std::size_t bytes = 0;
};

// Streams `bytes` of `buffer` (64-byte aligned; make it much larger than the last-level cache)
// with `threads` threads. The buffer is walked in windows of `window_bytes` (each thread reads
// its own contiguous part of each window, as the matmul kernels split weight rows); every
// window and every pass is timed from the common start to the end of the slowest thread.
// `passes` timed passes after a warm-up, alternately without and with software prefetch, so
// the roofline is the faster of the two ways to read.
inline ReadBandwidth measure_read_bandwidth(const void* buffer, std::size_t bytes, int threads, int passes = 6,
                                            std::size_t window_bytes = std::size_t{32} << 20) {
  const auto* base = static_cast<const std::uint8_t*>(buffer);
  window_bytes = std::min(window_bytes, bytes) / threads / 256 * 256 * threads;
  const std::size_t windows = bytes / window_bytes;
  const std::size_t part = window_bytes / threads;
  const long steps = static_cast<long>(passes + 1) * static_cast<long>(windows);
  std::atomic<long> go{-1};  // the step (pass * windows + window) the threads may start
  std::atomic<int> done{0};
  std::atomic<std::uint64_t> sink{0};
  auto wait_until = [](auto pred) {
    for (int spins = 0; !pred(); ++spins) {
      if (spins > 1000) std::this_thread::yield();
    }
  };
  auto read_part = [&](long step, int t) {
    const std::size_t window = static_cast<std::size_t>(step) % windows;
    const bool prefetch = (step / static_cast<long>(windows)) % 2 == 0;
    sink += detail::read_once(base + window * window_bytes + t * part, part, prefetch);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (long step = 0; step < steps; ++step) {
        wait_until([&] { return go.load(std::memory_order_acquire) >= step; });
        read_part(step, t);
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  ReadBandwidth r{0, 0, 0, threads, windows * window_bytes};
  using Clock = std::chrono::steady_clock;
  Clock::time_point pass_start;
  for (long step = 0; step < steps; ++step) {
    const long pass = step / static_cast<long>(windows);  // pass 0 is the warm-up
    done.store(0, std::memory_order_relaxed);
    const auto start = Clock::now();
    if (step % static_cast<long>(windows) == 0) pass_start = start;
    go.store(step, std::memory_order_release);
    read_part(step, 0);
    wait_until([&] { return done.load(std::memory_order_acquire) >= threads - 1; });
    const auto end = Clock::now();
    if (pass == 0) continue;
    r.gb_per_s_best_window = std::max(r.gb_per_s_best_window,
                                      window_bytes / std::chrono::duration<double>(end - start).count() / 1e9);
    if (step % static_cast<long>(windows) == static_cast<long>(windows) - 1) {
      r.gb_per_s_best_pass = std::max(r.gb_per_s_best_pass,
                                      r.bytes / std::chrono::duration<double>(end - pass_start).count() / 1e9);
    }
  }
  for (auto& t : pool) t.join();
  if (sink.load() == 42) std::abort();  // keeps the reads observable
  r.gb_per_s = std::max(r.gb_per_s_best_pass, r.gb_per_s_best_window);
  return r;
}

// Convenience: allocates and fills a `bytes` buffer, measures, frees it.
inline ReadBandwidth measure_read_bandwidth(int threads, std::size_t bytes = std::size_t{1536} << 20) {
  void* buffer = alloc_buffer(bytes);
  std::memset(buffer, 1, bytes);
  const ReadBandwidth r = measure_read_bandwidth(buffer, bytes, threads);
  free_buffer(buffer);
  return r;
}

}  // namespace qmeter::bench
