#pragma once
// A read-only memory map of a whole file (weights are used in place where the layout allows).
#include <cstddef>
#include <memory>
#include <string>

namespace qmeter::engine {

class MappedFile {
 public:
  // Throws qmeter::Error naming the path when it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace qmeter::engine
