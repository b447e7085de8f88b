#pragma once
// Minimal safetensors writer: 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets} (offsets relative to the end of the header, padded
// with spaces to 8-byte alignment), then the raw little-endian data.
#include <string>
#include <vector>

namespace qmeter::train {

struct SafetensorsEntry {
  std::string name;
  std::vector<int> shape;
  const float* data = nullptr;  // stored as F32
};

// Writes atomically (temp file + rename); throws Error naming the path on failure.
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata);

}  // namespace qmeter::train
