#pragma once
#include <cstdint>

namespace qmeter {

// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard one (2^20 when the hard one is
// unlimited): every open stream or connection is one descriptor, and the default soft limit
// (1024) is below what a load generator or a server holding thousands of streams needs. Returns
// the soft limit in force afterwards (0 if it cannot be read).
std::uint64_t raise_open_file_limit();

}  // namespace qmeter
