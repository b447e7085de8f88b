// Packed, cache-blocked GEMM (the BLIS loop structure): B is packed into NR-wide column panels,
// A into MR-row panels, and an MR x NR register-tile micro-kernel does the arithmetic. Threads
// each take a contiguous slab of C and pack their own panels, so a call has no barrier inside.
// The micro-kernel is compiled for AVX-512, AVX2 and baseline x86-64 and picked once per process
// by the loader (target_clones).
#include "qmeter/train/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace qmeter::train {
namespace {

constexpr int kMR = 8;     // rows of the register tile
constexpr int kNR = 32;    // columns of the register tile (two 16-float vectors)
constexpr int kKC = 256;   // depth of one packed block (A panel + B panel stay in L1/L2)
constexpr int kMC = 128;   // rows of A packed per thread block
constexpr int kNC = 2048;  // columns of B packed at once (kKC x kNC floats = 2 MiB, fits L2)

typedef float v16 __attribute__((vector_size(64)));

// Unaligned vector load/store (memcpy compiles to one vmovups); macros, not functions, because a
// function returning a 64-byte vector would change ABI between the target_clones variants.
#define QMETER_LOAD16(dst, p) std::memcpy(&(dst), (p), sizeof(v16))
#define QMETER_STORE16(p, src) std::memcpy((p), &(src), sizeof(v16))

// tile[MR][NR] = sum over kc of pa[k][MR] (outer) pb[k][NR].
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void micro_kernel(int kc, const float* __restrict pa, const float* __restrict pb, float* __restrict tile) {
  v16 c[kMR][2] = {};
  for (int k = 0; k < kc; ++k) {
    v16 b0, b1;
    QMETER_LOAD16(b0, pb);
    QMETER_LOAD16(b1, pb + 16);
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      const float a = pa[i];
      c[i][0] += a * b0;
      c[i][1] += a * b1;
    }
    pa += kMR;
    pb += kNR;
  }
#pragma GCC unroll 8
  for (int i = 0; i < kMR; ++i) {
    QMETER_STORE16(tile + i * kNR, c[i][0]);
    QMETER_STORE16(tile + i * kNR + 16, c[i][1]);
  }
}

// Packs rows [i0, i0+mc) x depth [p0, p0+kc) of A into MR-row panels, k-major, zero padded.
void pack_a(const GemmShape& s, const float* a, int lda, int i0, int mc, int p0, int kc, float* out) {
  for (int r = 0; r < mc; r += kMR) {
    const int rows = std::min(kMR, mc - r);
    if (!s.trans_a) {
      for (int k = 0; k < kc; ++k) {
        float* o = out + k * kMR;
        for (int ii = 0; ii < rows; ++ii) o[ii] = a[static_cast<std::size_t>(i0 + r + ii) * lda + p0 + k];
        for (int ii = rows; ii < kMR; ++ii) o[ii] = 0.f;
      }
    } else {
      for (int k = 0; k < kc; ++k) {
        float* o = out + k * kMR;
        const float* src = a + static_cast<std::size_t>(p0 + k) * lda + i0 + r;
        for (int ii = 0; ii < rows; ++ii) o[ii] = src[ii];
        for (int ii = rows; ii < kMR; ++ii) o[ii] = 0.f;
      }
    }
    out += static_cast<std::size_t>(kc) * kMR;
  }
}

// Packs one NR-column panel (columns [j, j+NR) of depth [p0, p0+kc)) of B, zero padded.
void pack_b_panel(const GemmShape& s, const float* b, int ldb, int j, int n, int p0, int kc, float* out) {
  const int cols = std::min(kNR, n - j);
  if (!s.trans_b) {
    for (int k = 0; k < kc; ++k) {
      const float* src = b + static_cast<std::size_t>(p0 + k) * ldb + j;
      float* o = out + k * kNR;
      for (int jj = 0; jj < cols; ++jj) o[jj] = src[jj];
      for (int jj = cols; jj < kNR; ++jj) o[jj] = 0.f;
    }
  } else {
    for (int jj = 0; jj < kNR; ++jj) {
      if (jj < cols) {
        const float* src = b + static_cast<std::size_t>(j + jj) * ldb + p0;
        for (int k = 0; k < kc; ++k) out[k * kNR + jj] = src[k];
      } else {
        for (int k = 0; k < kc; ++k) out[k * kNR + jj] = 0.f;
      }
    }
  }
}

}  // namespace

namespace {

// The serial blocked GEMM on the sub-block rows [i_begin, i_end) x columns [j_begin, j_end) of C.
void gemm_block(const GemmShape& s, const float* a, int lda, const float* b, int ldb, float* c, int ldc, int i_begin,
                int i_end, int j_begin, int j_end) {
  static thread_local std::vector<float> packed_a, packed_b;
  packed_a.resize(static_cast<std::size_t>(kMC) * kKC);
  alignas(64) float tile[kMR * kNR];
  for (int jc = j_begin; jc < j_end; jc += kNC) {
    const int nc = std::min(kNC, j_end - jc);
    const int panels = (nc + kNR - 1) / kNR;
    packed_b.resize(static_cast<std::size_t>(panels) * kNR * kKC);
    for (int pc = 0; pc < s.k; pc += kKC) {
      const int kc = std::min(kKC, s.k - pc);
      const bool first = pc == 0 && !s.accumulate;
      for (int p = 0; p < panels; ++p)
        pack_b_panel(s, b, ldb, jc + p * kNR, jc + nc, pc, kc, packed_b.data() + static_cast<std::size_t>(p) * kNR * kc);
      for (int i0 = i_begin; i0 < i_end; i0 += kMC) {
        const int rows = std::min(kMC, i_end - i0);
        pack_a(s, a, lda, i0, rows, pc, kc, packed_a.data());
        for (int p = 0; p < panels; ++p) {
          const int j0 = jc + p * kNR;
          const int cols = std::min(kNR, jc + nc - j0);
          const float* pb = packed_b.data() + static_cast<std::size_t>(p) * kNR * kc;
          for (int r = 0; r < rows; r += kMR) {
            micro_kernel(kc, packed_a.data() + static_cast<std::size_t>(r) * kc, pb, tile);
            const int tr = std::min(kMR, rows - r);
            for (int ii = 0; ii < tr; ++ii) {
              float* crow = c + static_cast<std::size_t>(i0 + r + ii) * ldc + j0;
              const float* t = tile + ii * kNR;
              if (first)
                for (int jj = 0; jj < cols; ++jj) crow[jj] = t[jj];
              else
                for (int jj = 0; jj < cols; ++jj) crow[jj] += t[jj];
            }
          }
        }
      }
    }
  }
}

}  // namespace

void gemm(const GemmShape& s, const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
  if (s.m <= 0 || s.n <= 0) return;
  if (s.k <= 0) {
    if (!s.accumulate)
      for (int i = 0; i < s.m; ++i) std::fill_n(c + static_cast<std::size_t>(i) * ldc, s.n, 0.f);
    return;
  }
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const long work = static_cast<long>(s.m) * s.n * s.k;
  if (threads <= 1 || work < (1L << 21)) {
    gemm_block(s, a, lda, b, ldb, c, ldc, 0, s.m, 0, s.n);
    return;
  }
  // One parallel region per call, no barrier inside: each thread computes a contiguous slab of C
  // (rows, or columns when C is wider than tall), packing what it needs itself. Splitting C never
  // changes the order of any element's k-reduction, so the result is the same for every count.
  const bool split_rows = s.m >= s.n;
  const int extent = split_rows ? s.m : s.n;
  const int align = split_rows ? kMR : kNR;
#pragma omp parallel num_threads(threads)
  {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    const int units = (extent + align - 1) / align;
    const int begin = std::min(extent, units * tid / nt * align);
    const int end = std::min(extent, units * (tid + 1) / nt * align);
    if (begin < end) {
      if (split_rows)
        gemm_block(s, a, lda, b, ldb, c, ldc, begin, end, 0, s.n);
      else
        gemm_block(s, a, lda, b, ldb, c, ldc, 0, s.m, begin, end);
    }
  }
}

namespace {
template <typename T>
void gemm_naive(const GemmShape& s, const T* a, int lda, const T* b, int ldb, T* c, int ldc) {
  for (int i = 0; i < s.m; ++i)
    for (int j = 0; j < s.n; ++j) {
      T acc = 0;
      for (int k = 0; k < s.k; ++k) {
        const T av = s.trans_a ? a[static_cast<std::size_t>(k) * lda + i] : a[static_cast<std::size_t>(i) * lda + k];
        const T bv = s.trans_b ? b[static_cast<std::size_t>(j) * ldb + k] : b[static_cast<std::size_t>(k) * ldb + j];
        acc += av * bv;
      }
      T& out = c[static_cast<std::size_t>(i) * ldc + j];
      out = s.accumulate ? out + acc : acc;
    }
}
}  // namespace

void gemm(const GemmShape& s, const double* a, int lda, const double* b, int ldb, double* c, int ldc) {
  gemm_naive(s, a, lda, b, ldb, c, ldc);
}
void gemm_reference(const GemmShape& s, const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
  gemm_naive(s, a, lda, b, ldb, c, ldc);
}

}  // namespace qmeter::train
