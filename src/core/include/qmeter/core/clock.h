#pragma once
// One time base for every measurement: the steady (monotonic) clock in nanoseconds.
// Wall-clock time is only for labelling records, never for durations.
#include <chrono>
#include <cstdint>

namespace qmeter {

using Nanos = std::int64_t;

inline Nanos steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline Nanos wall_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr double ns_to_ms(Nanos ns) { return static_cast<double>(ns) / 1e6; }
constexpr double ns_to_s(Nanos ns) { return static_cast<double>(ns) / 1e9; }
constexpr Nanos ms_to_ns(double ms) { return static_cast<Nanos>(ms * 1e6); }
constexpr Nanos s_to_ns(double s) { return static_cast<Nanos>(s * 1e9); }

// Sleeps until the steady clock reaches `deadline_ns`: coarse sleep, then a short spin so that
// scheduled sends are accurate to a few microseconds rather than the kernel's timer slack.
void sleep_until_ns(Nanos deadline_ns);

}  // namespace qmeter
