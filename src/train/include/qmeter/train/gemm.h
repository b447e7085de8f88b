#pragma once
// Dense f32/f64 matrix multiply used by the trainer's forward and backward passes.
// C[i][j] (+)= sum_k A(i,k) * B(k,j), all row-major with leading dimensions, where
// A(i,k) = trans_a ? a[k*lda + i] : a[i*lda + k] and B(k,j) = trans_b ? b[j*ldb + k] : b[k*ldb + j].
// Determinism: every C element is reduced over k in one fixed order by one thread, and the work
// is split over blocks of C only, so the result does not depend on the thread count.
#include <cstddef>

namespace qmeter::train {

struct GemmShape {
  int m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  bool accumulate = false;  // C += A*B instead of C = A*B
};

// Cache-blocked, packed, SIMD (AVX-512 / AVX2 picked at run time) and OpenMP-parallel.
void gemm(const GemmShape& s, const float* a, int lda, const float* b, int ldb, float* c, int ldc);
// Plain triple loop (reference for tests; the double path of the gradient checks).
void gemm(const GemmShape& s, const double* a, int lda, const double* b, int ldb, double* c, int ldc);
void gemm_reference(const GemmShape& s, const float* a, int lda, const float* b, int ldb, float* c, int ldc);

}  // namespace qmeter::train
