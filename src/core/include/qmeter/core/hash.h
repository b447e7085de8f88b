#pragma once
// FNV-1a 64: the one non-cryptographic byte hash of the project (run ids, cache keys, corpus
// fingerprints). Its value is part of stored data (a run id is FNV-1a of the normalized config),
// so it must never change: tests/core/golden_test.cpp pins it.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace qmeter {

inline constexpr std::uint64_t kFnv1a64Offset = 0xcbf29ce484222325ULL;
inline constexpr std::uint64_t kFnv1a64Prime = 0x100000001b3ULL;

// `h` continues an earlier hash, so a key made of several parts is hashed without joining them.
// (Two names, not two overloads: fnv1a64("text", h) must never read `h` bytes.)
inline std::uint64_t fnv1a64_bytes(const void* data, std::size_t n, std::uint64_t h = kFnv1a64Offset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kFnv1a64Prime;
  }
  return h;
}
inline std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h = kFnv1a64Offset) {
  return fnv1a64_bytes(bytes.data(), bytes.size(), h);
}

}  // namespace qmeter
