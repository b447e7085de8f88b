// Integer-activation matmul path (kernels_gguf_int8.h): the activation conversion, the weight
// types that have the path, the scalar reference kernel and the kernel-table rows.
#include "kernels_gguf_int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels_quant.h"
#include "kernels_quant_gguf.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/packed_formats.h"

namespace qmeter::engine::kernels {

namespace scalar {
// The reference row decoders (kernels_gguf_int8.h: w = A * u + M). Every value is exact:
// integer codes, and f32 products of an f16 scale by a small integer. Each writes every entry
// up to cols (rounded up to its 4-weight lanes and 16-weight groups); the caller zeroes the rest.

float int8_half(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// A 32-weight block's scale and offset: 8 lanes of a, 2 groups of m.
void int8_block_scales(float* a, float* m, int block, float scale, float offset) {
  for (int l = 0; l < 8; ++l) a[8 * block + l] = scale;
  m[2 * block] = m[2 * block + 1] = offset;
}

void int8_decode_q8_0(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const int blocks = w.cols / kQ8_0Block;
  const auto* p = static_cast<const std::uint8_t*>(w.data) + static_cast<std::size_t>(row) * blocks * kQ8_0Bytes;
  for (int b = 0; b < blocks; ++b, p += kQ8_0Bytes) {
    const float d = int8_half(p);
    for (int i = 0; i < 32; ++i) u[32 * b + i] = static_cast<std::uint8_t>(p[2 + i] ^ 0x80);  // q + 128
    int8_block_scales(a, m, b, d, -128.0f * d);
  }
}

void int8_decode_q4_0(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const int blocks = w.cols / kQ4_0Block;
  const auto* p = static_cast<const std::uint8_t*>(w.data) + static_cast<std::size_t>(row) * blocks * kQ4_0Bytes;
  for (int b = 0; b < blocks; ++b, p += kQ4_0Bytes) {
    const float d = int8_half(p);
    for (int i = 0; i < 16; ++i) {
      u[32 * b + i] = p[2 + i] & 15;
      u[32 * b + 16 + i] = p[2 + i] >> 4;
    }
    int8_block_scales(a, m, b, d, -8.0f * d);
  }
}

// q4_K / q5_K: u = the 4 (5) bit code (q5_K: bit j of qh[l] as bit 4), A = d * sc[j],
// M = -(dmin * m[j]) per sub-block j of 32.
void int8_decode_q45_k(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const bool five = w.dtype == DType::kGgufQ5K;
  const int bytes = five ? kQ5KBytes : kQ4KBytes, supers = w.cols / kQ4KBlock;
  const auto* p = static_cast<const std::uint8_t*>(w.data) + static_cast<std::size_t>(row) * supers * bytes;
  for (int s = 0; s < supers; ++s, p += bytes) {
    const float dd = int8_half(p), dmin = int8_half(p + 2);
    for (int j = 0; j < 8; ++j) {
      std::uint8_t sc, mn;
      q4k_scale_min(j, p + 4, sc, mn);
      const std::uint8_t* q = p + (five ? 48 : 16) + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      std::uint8_t* o = u + 256 * s + 32 * j;
      for (int l = 0; l < 32; ++l) o[l] = static_cast<std::uint8_t>(((q[l] >> shift) & 15) | (five ? ((p[16 + l] >> j) & 1) << 4 : 0));
      // As the reference: d1 = d * sc and m1 = dmin * m, each exact (11 x 6 significant bits).
      int8_block_scales(a, m, 8 * s + j, dd * static_cast<float>(sc), -(dmin * static_cast<float>(mn)));
    }
  }
}

// Per 16-weight group g of a 256-weight block s: 4 lanes of scale, one offset.
void int8_group_scales(float* a, float* m, int s, int g, float scale, float offset) {
  for (int l = 0; l < 4; ++l) a[64 * s + 4 * g + l] = scale;
  m[16 * s + g] = offset;
}

// q3_K: u = low 2 bits + 4 * high bit, A = d * (sc[g] - 32), M = -4 A (x = A * (low - (high ? 0 : 4))).
// q2_K: u = the 2-bit code, A = d * (sc[g] & 15), M = -(dmin * (sc[g] >> 4)).
// Weight 128 n + 32 k + l has its bits at 2k of qs[32 n + l] (and q3_K's high bit 4n + k of hmask[l]).
void int8_decode_q23_k(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const bool three = w.dtype == DType::kGgufQ3K;
  const int bytes = three ? kQ3KBytes : kQ2KBytes, supers = w.cols / 256;
  const auto* p = static_cast<const std::uint8_t*>(w.data) + static_cast<std::size_t>(row) * supers * bytes;
  for (int s = 0; s < supers; ++s, p += bytes) {
    const std::uint8_t* qs = p + (three ? 32 : 16);
    for (int g = 0; g < 16; ++g) {
      if (three) {
        const float ds = int8_half(p + 108) * static_cast<float>(q3k_scale(g, p + 96) - 32);
        int8_group_scales(a, m, s, g, ds, -4.0f * ds);
      } else {
        int8_group_scales(a, m, s, g, int8_half(p + 80) * static_cast<float>(p[g] & 15),
                          -(int8_half(p + 82) * static_cast<float>(p[g] >> 4)));
      }
    }
    for (int c = 0; c < 256; ++c) {
      const int n = c / 128, k = c % 128 / 32, l = c % 32;
      const int low = (qs[32 * n + l] >> (2 * k)) & 3;
      u[256 * s + c] = static_cast<std::uint8_t>(three ? low + 4 * ((p[l] >> (4 * n + k)) & 1) : low);
    }
  }
}

// iq4_nl / iq4_xs: u = kIq4nlValues[q] + 128, A = d (iq4_xs: d * (ls[j] - 32)), M = -128 A.
void int8_decode_iq4(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const bool xs = w.dtype == DType::kGgufIQ4XS;
  const int bytes = xs ? kIQ4XSBytes : kIQ4NLBytes, blocks = w.cols / (xs ? 256 : 32);
  const auto* p = static_cast<const std::uint8_t*>(w.data) + static_cast<std::size_t>(row) * blocks * bytes;
  for (int blk = 0; blk < blocks; ++blk, p += bytes) {
    const float d = int8_half(p);
    std::uint16_t scales_h = 0;
    if (xs) std::memcpy(&scales_h, p + 2, 2);
    for (int j = 0; j < (xs ? 8 : 1); ++j) {
      const std::uint8_t* q = p + (xs ? 8 + 16 * j : 2);
      const int b = (xs ? 8 : 1) * blk + j;  // the 32-weight block
      for (int i = 0; i < 16; ++i) {
        u[32 * b + i] = static_cast<std::uint8_t>(kIq4nlValues[q[i] & 15] + 128);
        u[32 * b + 16 + i] = static_cast<std::uint8_t>(kIq4nlValues[q[i] >> 4] + 128);
      }
      const float scale = xs ? d * static_cast<float>(iq4xs_scale(j, scales_h, p + 4) - 32) : d;
      int8_block_scales(a, m, b, scale, -128.0f * scale);
    }
  }
}

// q4_1 / q5_0 / q5_1: nibbles (+ a 5th bit from the little-endian u32 qh) with scale d and, for
// the _1 types, min m: x = d * q + m, or d * (q - 16) for q5_0.
void int8_decode_q4q5(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const GgufBlockTraits& t = gguf_block_traits(w.dtype);
  const bool five = w.dtype != DType::kGgufQ4_1;
  const int blocks = w.cols / 32;
  const int qs_at = (t.min_at >= 0 ? 4 : 2) + (five ? 4 : 0);
  const auto* p = static_cast<const std::uint8_t*>(w.data) + static_cast<std::size_t>(row) * blocks * t.block_bytes;
  for (int b = 0; b < blocks; ++b, p += t.block_bytes) {
    const float d = int8_half(p + t.scale_at);
    std::uint32_t h = 0;
    if (five) std::memcpy(&h, p + qs_at - 4, 4);
    for (int i = 0; i < 16; ++i) {
      u[32 * b + i] = static_cast<std::uint8_t>((p[qs_at + i] & 15) | ((h >> i) & 1) << 4);
      u[32 * b + 16 + i] = static_cast<std::uint8_t>((p[qs_at + i] >> 4) | ((h >> (i + 16)) & 1) << 4);
    }
    int8_block_scales(a, m, b, d, t.min_at >= 0 ? int8_half(p + t.min_at) : -16.0f * d);
  }
}

// q6_K: 6-bit codes q, int8 scale per 16: x = (d * sc) * (q - 32) (gguf_blocks.h for the bit order).
void int8_decode_q6_k(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const int supers = w.cols / kQ6KBlock;
  const auto* p = static_cast<const std::uint8_t*>(w.data) + static_cast<std::size_t>(row) * supers * kQ6KBytes;
  for (int s = 0; s < supers; ++s, p += kQ6KBytes) {
    const float d = int8_half(p + 208);
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* ql = p + 64 * half;
      const std::uint8_t* qh = p + 128 + 32 * half;
      const auto* sc = reinterpret_cast<const std::int8_t*>(p + 192 + 8 * half);
      std::uint8_t* o = u + 256 * s + 128 * half;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<std::uint8_t>((ql[l] & 15) | (qh[l] & 3) << 4);
        o[l + 32] = static_cast<std::uint8_t>((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4);
        o[l + 64] = static_cast<std::uint8_t>((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
        o[l + 96] = static_cast<std::uint8_t>((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
      }
      for (int g = 0; g < 8; ++g) {  // 16-weight groups: 4 lanes of scale, one offset
        const float ds = d * static_cast<float>(sc[g]);
        const int at = (256 * s + 128 * half + 16 * g);
        for (int l = 0; l < 4; ++l) a[at / 4 + l] = ds;
        m[at / 16] = -32.0f * ds;
      }
    }
  }
}

// kQ8Row (w8a16): codes [rows][row_stride], then f32 scales [rows].
void int8_decode_q8_row(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const PackedHeader& h = packed_header(w);
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const std::uint8_t* q = base + static_cast<std::size_t>(row) * h.row_stride;
  float s;
  std::memcpy(&s, base + static_cast<std::size_t>(w.rows) * h.row_stride + sizeof(float) * row, sizeof s);
  for (int c = 0; c < w.cols; ++c) u[c] = static_cast<std::uint8_t>(q[c] ^ 0x80);
  for (int l = 0; l < (w.cols + 3) / 4; ++l) a[l] = s;
  for (int g = 0; g < (w.cols + 15) / 16; ++g) m[g] = -128.0f * s;
}

// kQ4Group (w4a16): per row 16-byte blocks of 32 nibbles (low: weights 0..15, high: 16..31),
// then f16 scales [n_groups] and u8 zeros [n_groups]; groups are multiples of 32 columns.
void int8_decode_q4_group(const Matrix& w, int row, std::uint8_t* u, float* a, float* m) {
  const PackedHeader& h = packed_header(w);
  const std::uint8_t* r = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader) + static_cast<std::size_t>(row) * h.row_stride;
  const std::uint8_t* scales = r + h.codes_bytes;
  const std::uint8_t* zeros = scales + 2 * h.n_groups;
  const int blocks = (w.cols + 31) / 32;
  for (int b = 0; b < blocks; ++b) {
    for (int i = 0; i < 16; ++i) {
      u[32 * b + i] = r[16 * b + i] & 15;
      u[32 * b + 16 + i] = r[16 * b + i] >> 4;
    }
    const int g = 32 * b / static_cast<int>(h.group_size);
    const float s = int8_half(scales + 2 * g);
    int8_block_scales(a, m, b, s, -(s * static_cast<float>(zeros[g])));
  }
  for (int c = w.cols; c < 32 * blocks; ++c) u[c] = 0;  // codes of a partial last block
}

}  // namespace scalar
namespace avx512 {
// Built by kernels_gguf_int8_avx512.cpp from the same source.
void int8_decode_q8_row_simd(const Matrix&, int, std::uint8_t*, float*, float*);
void int8_decode_q4_group_simd(const Matrix&, int, std::uint8_t*, float*, float*);
}  // namespace avx512

namespace {

std::size_t align64(std::size_t n) { return (n + 63) / 64 * 64; }

// The f32-activation kernel of a GGUF type (its traits' best SIMD one, else the scalar one).
MatmulRowsFn gguf_f32_kernel(DType d) {
  const GgufBlockTraits& t = gguf_block_traits(d);
  return t.matmul_avx512 ? t.matmul_avx512 : t.matmul_avx2 ? t.matmul_avx2 : t.matmul_scalar;
}
void f32_gguf(const Matrix& w, const float* x, const void* p, int n, float* y, int a, int b) { gguf_f32_kernel(w.dtype)(w, x, p, n, y, a, b); }

// w8a16: one scale per row, so A and d stay the same over each 128-value activation block.
int span_q8_row(const Matrix&) { return 2; }
// w4a16: A changes every group; groups of 128 (or a multiple) share it over 2 chunks.
int span_q4_group(const Matrix& w) { return packed_header(w).group_size % 128 == 0 ? 2 : 1; }

// The GGUF types: every one has the VNNI row decoder and batch-1 kernel of
// kernels_gguf_int8_dot_avx512.cpp.
const Int8WeightType kTypes[] = {
    {DType::kGgufQ8_0, scalar::int8_decode_q8_0, avx512::int8_decode_q8_0_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q8_0},
    {DType::kGgufQ4_0, scalar::int8_decode_q4_0, avx512::int8_decode_q4_0_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q4_0},
    {DType::kGgufQ4_1, scalar::int8_decode_q4q5, avx512::int8_decode_q4_1_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q4_1},
    {DType::kGgufQ5_0, scalar::int8_decode_q4q5, avx512::int8_decode_q5_0_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q5_0},
    {DType::kGgufQ5_1, scalar::int8_decode_q4q5, avx512::int8_decode_q5_1_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q5_1},
    {DType::kGgufIQ4NL, scalar::int8_decode_iq4, avx512::int8_decode_iq4_nl_simd, f32_gguf, 32, nullptr, avx512::int8_dot_iq4_nl},
    {DType::kGgufQ2K, scalar::int8_decode_q23_k, avx512::int8_decode_q2_k_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q2_k},
    {DType::kGgufQ3K, scalar::int8_decode_q23_k, avx512::int8_decode_q3_k_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q3_k},
    {DType::kGgufQ4K, scalar::int8_decode_q45_k, avx512::int8_decode_q4_k_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q4_k},
    {DType::kGgufQ5K, scalar::int8_decode_q45_k, avx512::int8_decode_q5_k_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q5_k},
    {DType::kGgufQ6K, scalar::int8_decode_q6_k, avx512::int8_decode_q6_k_simd, f32_gguf, 32, nullptr, avx512::int8_dot_q6_k},
    {DType::kGgufIQ4XS, scalar::int8_decode_iq4, avx512::int8_decode_iq4_xs_simd, f32_gguf, 32, nullptr, avx512::int8_dot_iq4_xs},
    {DType::kQ8Row, scalar::int8_decode_q8_row, avx512::int8_decode_q8_row_simd, avx512::matmul_q8_row, 128, span_q8_row},
    {DType::kQ4Group, scalar::int8_decode_q4_group, avx512::int8_decode_q4_group_simd, avx512::matmul_q4_group, 128,
     span_q4_group},
};

}  // namespace

int int8_act_kpad(int cols) { return (cols + 63) / 64 * 64; }
int int8_act_groups(int cols) { return (cols + 255) / 256 * 16; }

std::size_t int8_act_prepared_bytes(int batch, int cols) {
  const std::size_t b = static_cast<std::size_t>(batch), kpad = static_cast<std::size_t>(int8_act_kpad(cols));
  return align64(b * kpad) + align64(b * kpad) + align64(b * static_cast<std::size_t>(int8_act_groups(cols)) * 4);
}

Int8Activations int8_act_view(const void* prepared, int batch, int cols) {
  const std::size_t b = static_cast<std::size_t>(batch), kpad = static_cast<std::size_t>(int8_act_kpad(cols));
  const auto* p = static_cast<const std::uint8_t*>(prepared);
  return {reinterpret_cast<const std::int8_t*>(p), reinterpret_cast<const float*>(p + align64(b * kpad)),
          reinterpret_cast<const float*>(p + 2 * align64(b * kpad)), int8_act_kpad(cols), int8_act_groups(cols)};
}

void int8_act_prepare_scalar(const float* x, int batch, int cols, int block, void* out) {
  const Int8Activations v = int8_act_view(out, batch, cols);
  auto* xq = const_cast<std::int8_t*>(v.xq);
  auto* dx = const_cast<float*>(v.dx);
  auto* xs = const_cast<float*>(v.xs);
  for (int b = 0; b < batch; ++b) {
    const float* xb = x + static_cast<std::size_t>(b) * cols;
    std::int8_t* qb = xq + static_cast<std::size_t>(b) * v.kpad;
    float* db = dx + static_cast<std::size_t>(b) * (v.kpad / 4);
    float* sb = xs + static_cast<std::size_t>(b) * v.ngroups;
    std::fill(sb, sb + v.ngroups, 0.0f);
    for (int c0 = 0; c0 < v.kpad; c0 += block) {
      const int len = std::min(block, v.kpad - c0), n = std::clamp(cols - c0, 0, len);
      float amax = 0;
      for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(xb[c0 + i]));
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      for (int g = 0; g < len; g += 16) {
        int sum = 0;
        for (int i = g; i < g + 16; ++i) {
          const int q = i < n ? std::clamp(static_cast<int>(std::nearbyint(xb[c0 + i] * id)), -127, 127) : 0;
          qb[c0 + i] = static_cast<std::int8_t>(q);
          sum += q;
        }
        for (int l = 0; l < 4; ++l) db[(c0 + g) / 4 + l] = d;
        sb[(c0 + g) / 16] = d * static_cast<float>(sum);
      }
    }
  }
}

void int8_act_prepare(const float* x, int batch, int cols, void* out) {
  if (!avx512::has_vnni()) return;  // the rows fall back to the f32-activation kernels
  avx512::int8_act_prepare_avx512(x, batch, cols, 32, out);
}

void int8_act_prepare_b128(const float* x, int batch, int cols, void* out) {
  if (!avx512::has_vnni()) return;
  avx512::int8_act_prepare_avx512(x, batch, cols, 128, out);
}

const Int8WeightType* int8_weight_type(DType d) {
  for (const Int8WeightType& t : kTypes)
    if (t.dtype == d) return &t;
  return nullptr;
}

std::span<const Int8WeightType> int8_weight_types() { return kTypes; }

int int8_scale_unit_cols(DType d) {
  return d == DType::kGgufQ2K || d == DType::kGgufQ3K || d == DType::kGgufQ6K ? 16 : 32;
}

std::span<const MatmulKernel> gguf_int8_act_kernel_rows() {
  static const std::vector<MatmulKernel> rows = [] {
    std::vector<MatmulKernel> out;
    for (const Int8WeightType& t : kTypes)
      if (is_gguf_block(t.dtype)) {
        out.push_back({Isa::kAvx512, t.dtype, t.dot_vnni ? 1 : 2, avx512::matmul_int8_act, int8_act_prepared_bytes,
                       t.act_block == 32 ? int8_act_prepare : int8_act_prepare_b128});
        out.push_back({Isa::kAvx512, t.dtype, kGgufLanesMinBatch, avx512::matmul_int8_lanes_gguf, avx512::int8_lanes_prepared_bytes,
                       avx512::int8_lanes_prepare_b32});
      }
    return out;
  }();
  return rows;
}

namespace avx512 {
void matmul_int8_lanes_gguf(const Matrix& w, const float* x, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  if (has_vnni()) return matmul_int8_lanes_gguf_vnni(w, x, prepared, batch, y, row_begin, row_end);
  int8_weight_type(w.dtype)->f32_fallback(w, x, prepared, batch, y, row_begin, row_end);
}
}  // namespace avx512

namespace scalar {
namespace {

// One weight row as the reference decoder writes it, zero past cols (the reference kernels' scratch).
struct ReferenceRow {
  std::vector<std::uint8_t> u;
  std::vector<float> a, m;
  explicit ReferenceRow(const Int8Activations& x)
      : u(static_cast<std::size_t>(x.kpad)), a(static_cast<std::size_t>(x.kpad / 4)), m(static_cast<std::size_t>(x.ngroups)) {}
  void decode(const Int8WeightType& t, const Matrix& w, int r) {
    std::fill(u.begin(), u.end(), 0);
    std::fill(a.begin(), a.end(), 0.0f);
    std::fill(m.begin(), m.end(), 0.0f);
    t.decode_scalar(w, r, u.data(), a.data(), m.data());
  }
};

struct TokenActivations {
  const std::int8_t* xq;
  const float* dx;
  const float* xs;
};
TokenActivations token(const Int8Activations& x, int b) {
  return {x.xq + static_cast<std::size_t>(b) * x.kpad, x.dx + static_cast<std::size_t>(b) * (x.kpad / 4),
          x.xs + static_cast<std::size_t>(b) * x.ngroups};
}

// y[b][r] = dot(decoded row r, token b) for rows row_begin .. row_end, every token.
template <typename Dot>
void reference_outputs(const Int8WeightType& t, const Matrix& w, const Int8Activations& x, int batch, float* y, int row_begin,
                       int row_end, Dot dot) {
  ReferenceRow row(x);
  for (int r = row_begin; r < row_end; ++r) {
    row.decode(t, w, r);
    for (int b = 0; b < batch; ++b) y[static_cast<std::size_t>(b) * w.rows + r] = dot(row, token(x, b));
  }
}

}  // namespace

// Emulates avx512::matmul_int8_act_vnni lane by lane: the same products, fmas and reduction tree.
void matmul_int8_act(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const Int8WeightType* t = int8_weight_type(w.dtype);
  if (!t) throw Error(std::string("matmul_int8_act: no integer path for ") + std::string(dtype_name(w.dtype)));
  const Int8Activations x = int8_act_view(prepared, batch, w.cols);
  const int chunks = x.kpad / 64, span = t->span ? t->span(w) : 1;
  reference_outputs(*t, w, x, batch, y, row_begin, row_end, [&](const ReferenceRow& row, const TokenActivations& tok) {
      const auto& [u, a, m] = row;
      const auto [xq, dx, xs] = tok;
      float acc[16] = {};
      for (int k0 = 0; k0 < chunks; k0 += span) {
        const int k1 = std::min(chunks, k0 + span);
        for (int l = 0; l < 16; ++l) {
          std::int32_t s = 0;
          for (int k = k0; k < k1; ++k)
            for (int j = 0; j < 4; ++j) s += static_cast<std::int32_t>(u[64 * k + 4 * l + j]) * xq[64 * k + 4 * l + j];
          const float scale = a[16 * k0 + l] * dx[16 * k0 + l];  // the same for every chunk of the span
          acc[l] = std::fma(static_cast<float>(s), scale, acc[l]);
        }
        if (k1 % 4 == 0 || k1 == chunks) {  // the offsets of the 16 groups (256 columns) just done
          const int g = 16 * ((k1 - 1) / 4);
          for (int l = 0; l < 16; ++l) acc[l] = std::fma(m[g + l], xs[g + l], acc[l]);
        }
      }
      for (int width = 8; width >= 1; width /= 2)
        for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
      return acc[0];
  });
}

// Emulates avx512::matmul_int8_lanes_gguf_vnni for one output at a time: per scale unit its int32
// sum converted once, times A * dx, then the unit's group offsets, in column order.
void matmul_int8_lanes_gguf(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const Int8WeightType* t = int8_weight_type(w.dtype);
  if (!t || !is_gguf_block(w.dtype)) throw Error(std::string("matmul_int8_lanes_gguf: not a GGUF type: ") + std::string(dtype_name(w.dtype)));
  const Int8Activations x = int8_act_view(prepared, batch, w.cols);
  const int unit = int8_scale_unit_cols(w.dtype);
  reference_outputs(*t, w, x, batch, y, row_begin, row_end, [&](const ReferenceRow& row, const TokenActivations& tok) {
      const auto& [u, a, m] = row;
      const auto [xq, dx, xs] = tok;
      float acc = 0.0f;
      for (int c0 = 0; c0 < x.kpad; c0 += unit) {
        std::int32_t s = 0;
        for (int c = c0; c < c0 + unit; ++c) s += static_cast<std::int32_t>(u[c]) * xq[c];
        acc = std::fma(static_cast<float>(s), a[c0 / 4] * dx[c0 / 4], acc);
        for (int g = c0 / 16; g < (c0 + unit) / 16; ++g) acc = std::fma(m[g], xs[g], acc);
      }
      return acc;
  });
}

}  // namespace scalar
}  // namespace qmeter::engine::kernels
