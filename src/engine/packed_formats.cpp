// Packed weight layouts (see packed_formats.h): packing, size, and row dequantization.
#include "qmeter/engine/packed_formats.h"

#include <fmt/format.h>

#include <cstring>

#include "qmeter/core/error.h"

namespace qmeter::engine {

namespace {

std::uint32_t round_up(std::uint32_t v, std::uint32_t m) { return (v + m - 1) / m * m; }

PackedHeader make_header(DType d, int bits, int group_size, int n_groups, std::uint32_t row_stride,
                         std::uint32_t codes_bytes) {
  PackedHeader h{};
  h.magic = kPackedMagic;
  h.dtype = static_cast<std::uint32_t>(d);
  h.bits = static_cast<std::uint32_t>(bits);
  h.group_size = static_cast<std::uint32_t>(group_size);
  h.n_groups = static_cast<std::uint32_t>(n_groups);
  h.row_stride = row_stride;
  h.codes_bytes = codes_bytes;
  return h;
}

}  // namespace

bool is_packed(DType d) { return d == DType::kQ8Row || d == DType::kQ4Group; }

int q4_group_count(int cols, int group_size) { return (cols + group_size - 1) / group_size; }

const PackedHeader& packed_header(const Matrix& m) {
  const auto* h = static_cast<const PackedHeader*>(m.data);
  if (!is_packed(m.dtype) || h == nullptr || h->magic != kPackedMagic || h->dtype != static_cast<std::uint32_t>(m.dtype))
    throw Error(fmt::format("packed matrix {}x{} of type {}: missing or mismatched packed header", m.rows, m.cols,
                            dtype_name(m.dtype)));
  return *h;
}

std::size_t packed_matrix_bytes(const Matrix& m) {
  const PackedHeader& h = packed_header(m);
  std::size_t bytes = sizeof(PackedHeader) + static_cast<std::size_t>(m.rows) * h.row_stride;
  if (m.dtype == DType::kQ8Row) bytes += static_cast<std::size_t>(m.rows) * sizeof(float);
  return bytes;
}

void packed_row_to_f32(const Matrix& m, int row, float* out) {
  const PackedHeader& h = packed_header(m);
  const auto* base = static_cast<const std::uint8_t*>(m.data) + sizeof(PackedHeader);
  const std::uint8_t* r = base + static_cast<std::size_t>(row) * h.row_stride;
  if (m.dtype == DType::kQ8Row) {
    float scale;
    std::memcpy(&scale, base + static_cast<std::size_t>(m.rows) * h.row_stride + sizeof(float) * row, sizeof(float));
    for (int c = 0; c < m.cols; ++c) out[c] = scale * static_cast<float>(static_cast<std::int8_t>(r[c]));
    return;
  }
  const std::uint8_t* scales = r + h.codes_bytes;
  const std::uint8_t* zeros = scales + 2 * h.n_groups;
  for (int c = 0; c < m.cols; ++c) {
    const int g = c / static_cast<int>(h.group_size);
    std::uint16_t s16;
    std::memcpy(&s16, scales + 2 * g, 2);
    const int j = c / 32, i = c % 32;
    const std::uint8_t byte = r[16 * j + (i % 16)];
    const int q = i < 16 ? (byte & 0xF) : (byte >> 4);
    out[c] = f16_to_f32(s16) * static_cast<float>(q - zeros[g]);
  }
}

std::vector<std::byte> pack_q8_row(int rows, int cols, const std::int8_t* codes, const float* scales) {
  const std::uint32_t stride = round_up(static_cast<std::uint32_t>(cols), 64);
  const PackedHeader h = make_header(DType::kQ8Row, 8, cols, 1, stride, stride);
  std::vector<std::byte> blob(sizeof(PackedHeader) + static_cast<std::size_t>(rows) * stride + sizeof(float) * rows);
  std::memcpy(blob.data(), &h, sizeof h);
  std::byte* base = blob.data() + sizeof(PackedHeader);
  for (int r = 0; r < rows; ++r)
    std::memcpy(base + static_cast<std::size_t>(r) * stride, codes + static_cast<std::size_t>(r) * cols, cols);
  std::memcpy(base + static_cast<std::size_t>(rows) * stride, scales, sizeof(float) * rows);
  return blob;
}

std::vector<std::byte> pack_q4_group(int rows, int cols, int bits, int group_size, const std::uint8_t* codes,
                                     const float* scales, const std::uint8_t* zeros) {
  if (group_size <= 0 || group_size % 32 != 0) throw Error(fmt::format("pack_q4_group: group size {} is not a positive multiple of 32", group_size));
  const int ng = q4_group_count(cols, group_size);
  const std::uint32_t codes_bytes = static_cast<std::uint32_t>((cols + 31) / 32 * 16);
  const std::uint32_t stride = round_up(codes_bytes + 3u * static_cast<std::uint32_t>(ng), 16);
  const PackedHeader h = make_header(DType::kQ4Group, bits, group_size, ng, stride, codes_bytes);
  std::vector<std::byte> blob(sizeof(PackedHeader) + static_cast<std::size_t>(rows) * stride);
  std::memcpy(blob.data(), &h, sizeof h);
  for (int r = 0; r < rows; ++r) {
    auto* row = reinterpret_cast<std::uint8_t*>(blob.data() + sizeof(PackedHeader) + static_cast<std::size_t>(r) * stride);
    const std::uint8_t* q = codes + static_cast<std::size_t>(r) * cols;
    for (int c = 0; c < cols; ++c) {
      if (q[c] >= (1u << bits)) throw Error(fmt::format("pack_q4_group: code {} at row {} column {} exceeds {} bits", q[c], r, c, bits));
      const int j = c / 32, i = c % 32;
      std::uint8_t& byte = row[16 * j + (i % 16)];
      byte = static_cast<std::uint8_t>(i < 16 ? (byte & 0xF0) | q[c] : (byte & 0x0F) | (q[c] << 4));
    }
    for (int g = 0; g < ng; ++g) {
      const std::uint16_t s = f32_to_f16(scales[static_cast<std::size_t>(r) * ng + g]);
      std::memcpy(row + codes_bytes + 2 * g, &s, 2);
      row[codes_bytes + 2 * ng + g] = zeros[static_cast<std::size_t>(r) * ng + g];
    }
  }
  return blob;
}

Matrix packed_matrix(DType dtype, int rows, int cols, const std::byte* blob) {
  Matrix m{dtype, rows, cols, blob};
  (void)packed_header(m);
  return m;
}

}  // namespace qmeter::engine
