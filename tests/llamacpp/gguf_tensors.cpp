// A minimal GGUF v3 reader for the tensor table and data (gguf_tensors.h).
#include "gguf_tensors.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::testing {

namespace {

struct Cursor {
  const std::string& path;
  const std::vector<std::uint8_t>& b;
  std::size_t at = 0;
  template <typename T>
  T get() {
    if (at + sizeof(T) > b.size()) throw std::runtime_error(fmt::format("'{}': truncated at byte {}", path, at));
    T v;
    std::memcpy(&v, b.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string str() {
    const auto n = get<std::uint64_t>();
    if (n > b.size() - at) throw std::runtime_error(fmt::format("'{}': string past the end at byte {}", path, at));
    std::string s(reinterpret_cast<const char*>(b.data() + at), n);
    at += n;
    return s;
  }
  // Skips one metadata value of GGUF type `t`; returns it when it is an integer (for alignment).
  std::uint64_t skip(std::uint32_t t) {
    switch (t) {
      case 0: case 1: case 7: return get<std::uint8_t>();
      case 2: case 3: return get<std::uint16_t>();
      case 4: case 5: return get<std::uint32_t>();
      case 6: get<float>(); return 0;
      case 10: case 11: return get<std::uint64_t>();
      case 12: get<double>(); return 0;
      case 8: str(); return 0;
      case 9: {
        const auto et = get<std::uint32_t>();
        const auto n = get<std::uint64_t>();
        for (std::uint64_t i = 0; i < n; ++i) skip(et);
        return 0;
      }
      default: throw std::runtime_error(fmt::format("'{}': metadata type {} at byte {}", path, t, at));
    }
  }
};

// Bytes of a tensor of type `t` and dims (ne[0] = the row width).
std::size_t tensor_bytes(const std::string& path, const std::string& name, std::uint32_t t,
                         const std::vector<std::uint64_t>& dims) {
  std::uint64_t rows = 1;
  for (std::size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
  const int cols = static_cast<int>(dims[0]);
  if (t == 0) return rows * cols * 4;                // F32
  if (t == 1 || t == 30) return rows * cols * 2;     // F16, BF16
  if (auto d = engine::gguf_dtype_of_ggml(t)) return rows * engine::gguf_row_bytes(*d, cols);
  throw std::runtime_error(fmt::format("'{}': tensor '{}' has ggml type {} (no known size)", path, name, t));
}

}  // namespace

std::string ggml_type_label(std::uint32_t t) {
  if (t == 0) return "F32";
  if (t == 1) return "F16";
  if (t == 30) return "BF16";
  if (auto d = engine::gguf_dtype_of_ggml(t)) return std::string(engine::gguf_block_traits(*d).ggml_name);
  return fmt::format("type{}", t);
}

std::map<std::string, GgufStoredTensor> read_gguf_tensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(fmt::format("'{}': cannot open", path));
  const std::vector<std::uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Cursor c{path, b};
  if (c.get<std::uint32_t>() != 0x46554747u) throw std::runtime_error(fmt::format("'{}': not a GGUF file", path));
  if (c.get<std::uint32_t>() != 3) throw std::runtime_error(fmt::format("'{}': not GGUF version 3", path));
  const auto n_tensors = c.get<std::uint64_t>();
  const auto n_kv = c.get<std::uint64_t>();
  std::uint64_t alignment = 32;
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.str();
    const std::uint64_t v = c.skip(c.get<std::uint32_t>());
    if (key == "general.alignment") alignment = v;
  }
  struct Info {
    std::string name;
    GgufStoredTensor t;
    std::uint64_t offset;
  };
  std::vector<Info> infos;
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    Info in;
    in.name = c.str();
    const auto n_dims = c.get<std::uint32_t>();
    for (std::uint32_t d = 0; d < n_dims; ++d) in.t.dims.push_back(c.get<std::uint64_t>());
    in.t.ggml_type = c.get<std::uint32_t>();
    in.offset = c.get<std::uint64_t>();
    infos.push_back(std::move(in));
  }
  const std::size_t data = (c.at + alignment - 1) / alignment * alignment;
  std::map<std::string, GgufStoredTensor> out;
  for (Info& in : infos) {
    const std::size_t n = tensor_bytes(path, in.name, in.t.ggml_type, in.t.dims);
    if (data + in.offset + n > b.size())
      throw std::runtime_error(fmt::format("'{}': tensor '{}' runs past the end of the file", path, in.name));
    in.t.bytes.assign(b.begin() + static_cast<std::ptrdiff_t>(data + in.offset),
                      b.begin() + static_cast<std::ptrdiff_t>(data + in.offset + n));
    out[in.name] = std::move(in.t);
  }
  return out;
}

}  // namespace qmeter::testing
