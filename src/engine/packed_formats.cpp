// Packed weight layouts (see packed_formats.h): packing, size, and row dequantization.
#include "qmeter/engine/packed_formats.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"

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

bool is_packed(DType d) {
  switch (d) {
    case DType::kQ8Row:
    case DType::kQ4Group:
    case DType::kNf4:
    case DType::kFp8Row:
    case DType::kFp8RowA8:
    case DType::kQ8RowA8: return true;
    default: return is_gguf_block(d);  // headerless llama.cpp blocks (gguf_blocks.h)
  }
}

int q4_group_count(int cols, int group_size) { return (cols + group_size - 1) / group_size; }

const PackedHeader& packed_header(const Matrix& m) {
  const auto* h = static_cast<const PackedHeader*>(m.data);
  if (!is_packed(m.dtype) || h == nullptr || h->magic != kPackedMagic || h->dtype != static_cast<std::uint32_t>(m.dtype))
    throw Error(fmt::format("packed matrix {}x{} of type {}: missing or mismatched packed header", m.rows, m.cols,
                            dtype_name(m.dtype)));
  return *h;
}

std::size_t packed_matrix_bytes(const Matrix& m) {
  if (is_gguf_block(m.dtype)) return static_cast<std::size_t>(m.rows) * gguf_row_bytes(m.dtype, m.cols);
  const PackedHeader& h = packed_header(m);
  return sizeof(PackedHeader) + static_cast<std::size_t>(m.rows) * h.row_stride + h.tail_bytes;
}

void packed_row_to_f32(const Matrix& m, int row, float* out) {
  if (is_gguf_block(m.dtype)) {
    const std::size_t rb = gguf_row_bytes(m.dtype, m.cols);
    return gguf_row_to_f32(m.dtype, static_cast<const std::byte*>(m.data) + rb * static_cast<std::size_t>(row), m.cols, out);
  }
  const PackedHeader& h = packed_header(m);
  const auto* base = static_cast<const std::uint8_t*>(m.data) + sizeof(PackedHeader);
  const std::uint8_t* r = base + static_cast<std::size_t>(row) * h.row_stride;
  if (m.dtype == DType::kQ8Row || m.dtype == DType::kQ8RowA8 || m.dtype == DType::kFp8Row || m.dtype == DType::kFp8RowA8) {
    float scale;
    std::memcpy(&scale, base + static_cast<std::size_t>(m.rows) * h.row_stride + sizeof(float) * row, sizeof(float));
    const bool fp8 = m.dtype == DType::kFp8Row || m.dtype == DType::kFp8RowA8;
    for (int c = 0; c < m.cols; ++c)
      out[c] = scale * (fp8 ? e4m3_to_f32(r[c]) : static_cast<float>(static_cast<std::int8_t>(r[c])));
    return;
  }
  if (m.dtype == DType::kNf4) {
    thread_local std::vector<float> absmax;
    absmax.resize(h.n_groups);
    nf4_row_absmax(m, row, absmax.data());
    for (int c = 0; c < m.cols; ++c) {
      const int j = c / 32, i = c % 32;
      const std::uint8_t byte = r[16 * j + (i % 16)];
      out[c] = kNf4Values[i < 16 ? (byte & 0xF) : (byte >> 4)] * absmax[static_cast<std::size_t>(c / kNf4Block)];
    }
    return;
  }
  const std::int32_t* perm = q4_column_permutation(m);
  if (!perm) return q4_group_stored_row_to_f32(m, row, out);
  thread_local std::vector<float> stored;  // stored-order values of a permuted row
  stored.resize(static_cast<std::size_t>(m.cols));
  q4_group_stored_row_to_f32(m, row, stored.data());
  for (int c = 0; c < m.cols; ++c) out[perm[c]] = stored[static_cast<std::size_t>(c)];
}

void q4_group_stored_row_to_f32(const Matrix& m, int row, float* out) {
  const PackedHeader& h = packed_header(m);
  const std::uint8_t* r = static_cast<const std::uint8_t*>(m.data) + sizeof(PackedHeader) + static_cast<std::size_t>(row) * h.row_stride;
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
  PackedHeader h = make_header(DType::kQ8Row, 8, cols, 1, stride, stride);
  h.tail_bytes = static_cast<std::uint32_t>(sizeof(float) * rows);
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

std::vector<std::byte> pack_q4_group_permuted(int rows, int cols, int bits, int group_size, const std::uint8_t* codes,
                                              const float* scales, const std::uint8_t* zeros, const std::int32_t* perm) {
  std::vector<std::byte> blob = pack_q4_group(rows, cols, bits, group_size, codes, scales, zeros);
  auto* h = reinterpret_cast<PackedHeader*>(blob.data());
  h->flags |= kQ4ColumnPermutation;
  h->tail_bytes = static_cast<std::uint32_t>(sizeof(std::int32_t) * cols);
  const std::size_t at = blob.size();
  blob.resize(at + sizeof(std::int32_t) * cols);
  std::memcpy(blob.data() + at, perm, sizeof(std::int32_t) * cols);
  return blob;
}

const std::int32_t* q4_column_permutation(const Matrix& m) {
  if (m.dtype != DType::kQ4Group) return nullptr;
  const PackedHeader& h = packed_header(m);
  if (!(h.flags & kQ4ColumnPermutation)) return nullptr;
  return reinterpret_cast<const std::int32_t*>(static_cast<const std::byte*>(m.data) + sizeof(PackedHeader) +
                                               static_cast<std::size_t>(m.rows) * h.row_stride);
}

// ---- NF4 ----

const float kNf4Values[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                              -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                              0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                              0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

const float* dynamic_map8() {
  // bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for each
  // exponent i < 7, the midpoints of linspace(0.1, 1, 2^i + 1) times 10^(i - 6), both signs;
  // plus 0 and 1: 2 * 127 + 2 = 256 values.
  static const std::array<float, 256> map = [] {
    std::vector<float> v;
    for (int i = 0; i < 7; ++i) {
      const int n = (1 << i) + 1;
      for (int k = 0; k + 1 < n; ++k) {
        const double b0 = 0.1 + 0.9 * k / (n - 1), b1 = 0.1 + 0.9 * (k + 1) / (n - 1);
        const double mean = (b0 + b1) / 2.0 * std::pow(10.0, i - 6);
        v.push_back(static_cast<float>(mean));
        v.push_back(static_cast<float>(-mean));
      }
    }
    v.push_back(0.0f);
    v.push_back(1.0f);
    std::sort(v.begin(), v.end());
    std::array<float, 256> out{};
    std::copy(v.begin(), v.end(), out.begin());
    return out;
  }();
  return map.data();
}

std::uint8_t dynamic_map8_code(float v) {
  const float* map = dynamic_map8();
  const float* hi = std::lower_bound(map, map + 256, v);
  if (hi == map) return 0;
  if (hi == map + 256) return 255;
  const float* lo = hi - 1;
  return static_cast<std::uint8_t>((v - *lo <= *hi - v ? lo : hi) - map);
}

float nf4_double_absmax(std::uint8_t code, float absmax2, float offset) {
  const float scaled = dynamic_map8()[code] * absmax2;  // two statements: never contracted to an fma
  return scaled + offset;
}

void nf4_row_absmax(const Matrix& m, int row, float* out) {
  const PackedHeader& h = packed_header(m);
  const auto* base = static_cast<const std::uint8_t*>(m.data) + sizeof(PackedHeader);
  const std::uint8_t* meta = base + static_cast<std::size_t>(row) * h.row_stride + h.codes_bytes;
  const int nb = static_cast<int>(h.n_groups);
  if (!(h.flags & 1u)) {
    std::memcpy(out, meta, sizeof(float) * nb);
    return;
  }
  const auto* tail = base + static_cast<std::size_t>(m.rows) * h.row_stride;
  const std::size_t n2 = (static_cast<std::size_t>(m.rows) * nb + kNf4DoubleBlock - 1) / kNf4DoubleBlock;
  float offset;
  std::memcpy(&offset, tail + sizeof(float) * n2, sizeof offset);
  const float* map = dynamic_map8();  // once per row: this runs for every row of every matmul
  for (int b = 0; b < nb; ++b) {
    const std::size_t i = static_cast<std::size_t>(row) * nb + b;
    float a2;
    std::memcpy(&a2, tail + sizeof(float) * (i / kNf4DoubleBlock), sizeof a2);
    const float scaled = map[meta[b]] * a2;  // as nf4_double_absmax (bit-identical: never contracted)
    out[b] = scaled + offset;
  }
}

namespace {

// Codes in kQ4Group's nibble order; returns the blob with `meta_bytes` per row after the codes
// and `tail_bytes` after the rows (the caller fills both).
std::vector<std::byte> pack_nf4_codes(int rows, int cols, const std::uint8_t* codes, std::uint32_t meta_bytes,
                                      std::uint32_t tail_bytes, bool double_quant) {
  const int nb = (cols + kNf4Block - 1) / kNf4Block;
  const std::uint32_t codes_bytes = static_cast<std::uint32_t>((cols + 31) / 32 * 16);
  const std::uint32_t stride = round_up(codes_bytes + meta_bytes, 16);
  PackedHeader h = make_header(DType::kNf4, 4, kNf4Block, nb, stride, codes_bytes);
  h.flags = double_quant ? 1u : 0u;
  h.tail_bytes = tail_bytes;
  std::vector<std::byte> blob(sizeof(PackedHeader) + static_cast<std::size_t>(rows) * stride + tail_bytes);
  std::memcpy(blob.data(), &h, sizeof h);
  for (int r = 0; r < rows; ++r) {
    auto* row = reinterpret_cast<std::uint8_t*>(blob.data() + sizeof(PackedHeader) + static_cast<std::size_t>(r) * stride);
    const std::uint8_t* q = codes + static_cast<std::size_t>(r) * cols;
    for (int c = 0; c < cols; ++c) {
      if (q[c] >= 16) throw Error(fmt::format("pack_nf4: code {} at row {} column {} is not a 4-bit code", q[c], r, c));
      const int j = c / 32, i = c % 32;
      std::uint8_t& byte = row[16 * j + (i % 16)];
      byte = static_cast<std::uint8_t>(i < 16 ? (byte & 0xF0) | q[c] : (byte & 0x0F) | (q[c] << 4));
    }
  }
  return blob;
}

std::byte* row_meta(std::vector<std::byte>& blob, int r) {
  const auto* h = reinterpret_cast<const PackedHeader*>(blob.data());
  return blob.data() + sizeof(PackedHeader) + static_cast<std::size_t>(r) * h->row_stride + h->codes_bytes;
}

}  // namespace

std::vector<std::byte> pack_nf4(int rows, int cols, const std::uint8_t* codes, const float* absmax) {
  const int nb = (cols + kNf4Block - 1) / kNf4Block;
  std::vector<std::byte> blob = pack_nf4_codes(rows, cols, codes, 4u * nb, 0, false);
  for (int r = 0; r < rows; ++r) std::memcpy(row_meta(blob, r), absmax + static_cast<std::size_t>(r) * nb, sizeof(float) * nb);
  return blob;
}

std::vector<std::byte> pack_nf4_double(int rows, int cols, const std::uint8_t* codes, const std::uint8_t* absmax_codes,
                                       const float* absmax2, float offset) {
  const int nb = (cols + kNf4Block - 1) / kNf4Block;
  const std::size_t n2 = (static_cast<std::size_t>(rows) * nb + kNf4DoubleBlock - 1) / kNf4DoubleBlock;
  std::vector<std::byte> blob =
      pack_nf4_codes(rows, cols, codes, static_cast<std::uint32_t>(nb), static_cast<std::uint32_t>(sizeof(float) * (n2 + 1)), true);
  for (int r = 0; r < rows; ++r) std::memcpy(row_meta(blob, r), absmax_codes + static_cast<std::size_t>(r) * nb, nb);
  const auto* h = reinterpret_cast<const PackedHeader*>(blob.data());
  std::byte* tail = blob.data() + sizeof(PackedHeader) + static_cast<std::size_t>(rows) * h->row_stride;
  std::memcpy(tail, absmax2, sizeof(float) * n2);
  std::memcpy(tail + sizeof(float) * n2, &offset, sizeof offset);
  return blob;
}

// ---- FP8 E4M3 ----

float e4m3_to_f32(std::uint8_t code) {
  const int e = (code >> 3) & 0xF, mant = code & 7;
  float v;
  if (e == 15 && mant == 7) v = std::numeric_limits<float>::quiet_NaN();
  else if (e == 0) v = std::ldexp(static_cast<float>(mant), -9);  // subnormal: mant/8 * 2^-6
  else v = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, e - 7);
  return (code & 0x80) ? -v : v;
}

float round_to_e4m3(float v) {
  if (std::isnan(v)) return v;
  const float a = std::fabs(v);
  float r;
  if (a >= 0x1p-6f) {  // normal range: round the f32 mantissa to 3 bits, ties to even
    std::uint32_t u = std::bit_cast<std::uint32_t>(a);
    u = (u + 0x7FFFFu + ((u >> 20) & 1u)) & ~0xFFFFFu;
    r = std::bit_cast<float>(u);
  } else {  // subnormal range: multiples of 2^-9 (a * 512 is exact; nearbyint rounds ties to even)
    r = std::nearbyint(a * 512.0f) / 512.0f;
  }
  return std::copysign(std::min(r, kE4m3Max), v);
}

std::uint8_t f32_to_e4m3(float v) {
  if (std::isnan(v)) return 0x7F;
  const float r = round_to_e4m3(v);
  const float a = std::fabs(r);
  std::uint8_t code;
  if (a < 0x1p-6f) {
    code = static_cast<std::uint8_t>(a * 512.0f);
  } else {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(a);
    const int e = static_cast<int>(u >> 23) - 127 + 7;
    code = static_cast<std::uint8_t>((e << 3) | ((u >> 20) & 7u));
  }
  return static_cast<std::uint8_t>(code | (std::signbit(r) ? 0x80 : 0));
}

std::vector<std::byte> pack_fp8_row(DType dtype, int rows, int cols, const std::uint8_t* codes, const float* scales) {
  if (dtype != DType::kFp8Row && dtype != DType::kFp8RowA8) throw Error("pack_fp8_row: dtype must be fp8_row or fp8_row_a8");
  std::vector<std::byte> blob = pack_q8_row(rows, cols, reinterpret_cast<const std::int8_t*>(codes), scales);
  reinterpret_cast<PackedHeader*>(blob.data())->dtype = static_cast<std::uint32_t>(dtype);
  return blob;
}

std::vector<std::byte> pack_q8_row_a8(int rows, int cols, const std::int8_t* codes, const float* scales) {
  std::vector<std::byte> blob = pack_q8_row(rows, cols, codes, scales);
  auto* h = reinterpret_cast<PackedHeader*>(blob.data());
  h->dtype = static_cast<std::uint32_t>(DType::kQ8RowA8);
  h->tail_bytes += static_cast<std::uint32_t>(sizeof(std::int32_t) * rows);
  const std::size_t at = blob.size();
  blob.resize(at + sizeof(std::int32_t) * rows);
  for (int r = 0; r < rows; ++r) {
    std::int32_t sum = 0;
    for (int c = 0; c < cols; ++c) sum += codes[static_cast<std::size_t>(r) * cols + c];
    std::memcpy(blob.data() + at + sizeof(sum) * r, &sum, sizeof sum);
  }
  return blob;
}

Matrix packed_matrix(DType dtype, int rows, int cols, const std::byte* blob) {
  Matrix m{dtype, rows, cols, blob};
  if (is_gguf_block(dtype)) {
    (void)gguf_row_bytes(dtype, cols);  // throws unless cols is whole blocks
    return m;
  }
  (void)packed_header(m);
  return m;
}

Matrix packed_matrix_from_blob(const std::byte* blob, std::size_t size, int rows, int cols, const std::string& what) {
  if (size < sizeof(PackedHeader)) throw Error(fmt::format("{}: packed tensor of {} bytes is shorter than its header", what, size));
  PackedHeader h;
  std::memcpy(&h, blob, sizeof h);
  const auto dtype = static_cast<DType>(h.dtype);
  if (h.magic != kPackedMagic || h.dtype > 255 || !is_packed(dtype))
    throw Error(fmt::format("{}: not a qmeter packed tensor (bad magic or type {})", what, h.dtype));
  const bool grouped = dtype == DType::kQ4Group || dtype == DType::kNf4;
  const std::uint32_t expect_codes = grouped ? static_cast<std::uint32_t>((cols + 31) / 32 * 16) : round_up(static_cast<std::uint32_t>(cols), 64);
  const bool groups_ok = !grouped || (h.group_size > 0 && h.n_groups == static_cast<std::uint32_t>((cols + h.group_size - 1) / h.group_size));
  if (h.codes_bytes != expect_codes || !groups_ok || h.row_stride < h.codes_bytes)
    throw Error(fmt::format("{}: packed {} header does not fit {} input columns", what, dtype_name(dtype), cols));
  std::size_t tail = 0;  // what the kernels read after the rows
  if (dtype == DType::kQ8Row || dtype == DType::kFp8Row || dtype == DType::kFp8RowA8) tail = 4u * rows;
  if (dtype == DType::kQ8RowA8) tail = 8u * rows;
  if (dtype == DType::kNf4 && (h.flags & 1u))
    tail = 4u * ((static_cast<std::size_t>(rows) * h.n_groups + kNf4DoubleBlock - 1) / kNf4DoubleBlock + 1);
  if (dtype == DType::kQ4Group && (h.flags & kQ4ColumnPermutation)) tail = 4u * static_cast<std::size_t>(cols);
  if (h.tail_bytes != tail) throw Error(fmt::format("{}: packed {} tensor of {} rows has a bad tail size", what, dtype_name(dtype), rows));
  const std::size_t expect = sizeof(PackedHeader) + static_cast<std::size_t>(rows) * h.row_stride + h.tail_bytes;
  if (size != expect)
    throw Error(fmt::format("{}: packed {} tensor has {} bytes, {} x {} needs {}", what, dtype_name(dtype), size, rows, cols, expect));
  if (dtype == DType::kQ4Group && (h.flags & kQ4ColumnPermutation)) {  // matmul gathers x through it
    const auto* perm = reinterpret_cast<const std::int32_t*>(blob + expect - tail);
    std::vector<bool> seen(static_cast<std::size_t>(cols));
    for (int c = 0; c < cols; ++c) {
      if (perm[c] < 0 || perm[c] >= cols || seen[static_cast<std::size_t>(perm[c])])
        throw Error(fmt::format("{}: packed q4_group column permutation is not a permutation of {} columns", what, cols));
      seen[static_cast<std::size_t>(perm[c])] = true;
    }
  }
  return Matrix{dtype, rows, cols, blob};
}

}  // namespace qmeter::engine
