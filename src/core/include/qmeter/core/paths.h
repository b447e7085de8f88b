#pragma once
#include <string>

namespace qmeter {

// The shared data folder (models, eval sets, traces): $QMETER_SHARED_DATA, else the folder the
// build was configured with (../shared/data beside the source tree).
std::string shared_data_dir();
// Reads a whole file; throws Error naming the path when it cannot.
std::string read_file(const std::string& path);
std::string qmeter_version();

}  // namespace qmeter
