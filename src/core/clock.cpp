#include "qmeter/core/clock.h"

#include <thread>

namespace qmeter {

void sleep_until_ns(Nanos deadline_ns) {
  // The kernel may oversleep by ~50-100 us; sleep until 200 us before, then spin.
  constexpr Nanos kSpin = 200'000;
  Nanos now = steady_now_ns();
  if (deadline_ns - now > kSpin) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(deadline_ns - now - kSpin));
  }
  while (steady_now_ns() < deadline_ns) {
  }
}

}  // namespace qmeter
