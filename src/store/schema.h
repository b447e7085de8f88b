#pragma once
#include <string_view>
#include <vector>

namespace qmeter::store {
// migrations()[k] brings the schema from version k to k+1 (PRAGMA user_version holds the version).
const std::vector<std::string_view>& migrations();
}  // namespace qmeter::store
