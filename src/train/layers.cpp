// Layer math of the trainer. Every parallel loop writes disjoint outputs and every reduction runs
// in one fixed order, so the numbers do not depend on how many threads run them.
#include "qmeter/train/layers.h"

#include "qmeter/train/gemm.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace qmeter::train {

using std::size_t;

namespace {
// Below this many scalar operations a loop runs on the calling thread: waking a team costs more
// than the work, and on a loaded machine a descheduled worker stalls the whole barrier.
constexpr std::int64_t kParallelMinWork = 1 << 15;
}  // namespace

template <typename T>
void embedding_forward(const std::int32_t* ids, int rows, const T* table, int dim, T* out) {
#pragma omp parallel for schedule(static) if (static_cast<std::int64_t>(rows) * dim > kParallelMinWork)
  for (int r = 0; r < rows; ++r)
    std::copy_n(table + static_cast<size_t>(ids[r]) * dim, dim, out + static_cast<size_t>(r) * dim);
}

template <typename T>
void embedding_backward(const std::int32_t* ids, int rows, const T* d_out, int dim, T* d_table) {
  // Serial over rows (a token may repeat, so rows are not independent); cheap next to the GEMMs.
  for (int r = 0; r < rows; ++r) {
    T* dst = d_table + static_cast<size_t>(ids[r]) * dim;
    const T* src = d_out + static_cast<size_t>(r) * dim;
    for (int i = 0; i < dim; ++i) dst[i] += src[i];
  }
}

template <typename T>
void rmsnorm_forward(const T* x, const T* weight, int rows, int dim, double eps, T* y, T* inv_rms) {
#pragma omp parallel for schedule(static) if (static_cast<std::int64_t>(rows) * dim > kParallelMinWork)
  for (int r = 0; r < rows; ++r) {
    const T* xr = x + static_cast<size_t>(r) * dim;
    T ss = 0;
    for (int i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const T inv = static_cast<T>(1.0 / std::sqrt(static_cast<double>(ss) / dim + eps));
    inv_rms[r] = inv;
    T* yr = y + static_cast<size_t>(r) * dim;
    for (int i = 0; i < dim; ++i) yr[i] = xr[i] * inv * weight[i];
  }
}

template <typename T>
void rmsnorm_backward(const T* x, const T* weight, const T* inv_rms, const T* d_y, int rows, int dim,
                      T* d_x, T* d_weight, bool accumulate_dx) {
  // y_i = x_i r g_i with r = (mean x^2 + eps)^-1/2:
  // dx_i = r g_i dy_i - x_i r^3 / dim * sum_j g_j dy_j x_j ;  dg_i = sum_rows dy_i x_i r.
#pragma omp parallel for schedule(static) if (static_cast<std::int64_t>(rows) * dim > kParallelMinWork)
  for (int r = 0; r < rows; ++r) {
    const T* xr = x + static_cast<size_t>(r) * dim;
    const T* dyr = d_y + static_cast<size_t>(r) * dim;
    T* dxr = d_x + static_cast<size_t>(r) * dim;
    const T inv = inv_rms[r];
    T dot = 0;
    for (int i = 0; i < dim; ++i) dot += weight[i] * dyr[i] * xr[i];
    const T coef = dot * inv * inv * inv / static_cast<T>(dim);
    for (int i = 0; i < dim; ++i) {
      const T g = inv * weight[i] * dyr[i] - xr[i] * coef;
      dxr[i] = accumulate_dx ? dxr[i] + g : g;
    }
  }
  for (int r = 0; r < rows; ++r) {
    const T* xr = x + static_cast<size_t>(r) * dim;
    const T* dyr = d_y + static_cast<size_t>(r) * dim;
    const T inv = inv_rms[r];
    for (int i = 0; i < dim; ++i) d_weight[i] += dyr[i] * xr[i] * inv;
  }
}

template <typename T>
void rope_apply(T* x, int rows, int seq_len, int heads, int head_dim, double theta, bool inverse) {
  const int half = head_dim / 2;
  // cos/sin per (position, frequency), computed in double once per call.
  std::vector<T> cos_table(static_cast<size_t>(seq_len) * half), sin_table(cos_table.size());
  for (int p = 0; p < seq_len; ++p)
    for (int i = 0; i < half; ++i) {
      const double inv_freq = 1.0 / std::pow(theta, 2.0 * i / head_dim);
      const double angle = p * inv_freq;
      cos_table[static_cast<size_t>(p) * half + i] = static_cast<T>(std::cos(angle));
      sin_table[static_cast<size_t>(p) * half + i] = static_cast<T>(inverse ? -std::sin(angle) : std::sin(angle));
    }
  const int width = heads * head_dim;
#pragma omp parallel for schedule(static) if (static_cast<std::int64_t>(rows) * width > kParallelMinWork)
  for (int r = 0; r < rows; ++r) {
    const int p = r % seq_len;
    const T* c = cos_table.data() + static_cast<size_t>(p) * half;
    const T* s = sin_table.data() + static_cast<size_t>(p) * half;
    for (int h = 0; h < heads; ++h) {
      T* v = x + static_cast<size_t>(r) * width + static_cast<size_t>(h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const T x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c[i] - x1 * s[i];
        v[i + half] = x0 * s[i] + x1 * c[i];
      }
    }
  }
}

// Attention runs as small GEMMs per (sequence, head): S = Q K^T, O = P V and their transposes in
// the backward pass. The upper (future) triangle of P is zero, so it drops out of P V.
template <typename T>
void attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v, T* probs, T* out) {
  const int hd = s.head_dim, n = s.seq_len, group = s.heads / s.kv_heads;
  const int qw = s.heads * hd, kw = s.kv_heads * hd;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  const std::int64_t work = static_cast<std::int64_t>(s.batch) * s.heads * n * n * hd;
#pragma omp parallel for schedule(static) if (work > kParallelMinWork)
  for (int bh = 0; bh < s.batch * s.heads; ++bh) {
    const int b = bh / s.heads, h = bh % s.heads, kvh = h / group;
    const T* qb = q + static_cast<size_t>(b) * n * qw + h * hd;
    const T* kb = k + static_cast<size_t>(b) * n * kw + kvh * hd;
    const T* vb = v + static_cast<size_t>(b) * n * kw + kvh * hd;
    T* P = probs + static_cast<size_t>(bh) * n * n;
    gemm(GemmShape{n, n, hd, false, true, false}, qb, qw, kb, kw, P, n);
    for (int t = 0; t < n; ++t) {
      T* pr = P + static_cast<size_t>(t) * n;
      T mx = -INFINITY;
      for (int j = 0; j <= t; ++j) {
        pr[j] *= scale;
        mx = std::max(mx, pr[j]);
      }
      T sum = 0;
      for (int j = 0; j <= t; ++j) {
        pr[j] = std::exp(pr[j] - mx);
        sum += pr[j];
      }
      const T inv = 1 / sum;
      for (int j = 0; j <= t; ++j) pr[j] *= inv;
      for (int j = t + 1; j < n; ++j) pr[j] = 0;
    }
    gemm(GemmShape{n, hd, n, false, false, false}, P, n, vb, kw, out + static_cast<size_t>(b) * n * qw + h * hd, qw);
  }
}

template <typename T>
void attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* probs,
                        const T* d_out, T* d_q, T* d_k, T* d_v) {
  const int hd = s.head_dim, n = s.seq_len, group = s.heads / s.kv_heads;
  const int qw = s.heads * hd, kw = s.kv_heads * hd;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  // One task per (sequence, kv head): it owns d_k and d_v of that kv head and d_q of its query
  // heads, and adds the query heads' contributions in head order.
  const std::int64_t work = static_cast<std::int64_t>(s.batch) * s.heads * n * n * hd;
#pragma omp parallel for schedule(static) if (work > kParallelMinWork)
  for (int bk = 0; bk < s.batch * s.kv_heads; ++bk) {
    const int b = bk / s.kv_heads, kvh = bk % s.kv_heads;
    std::vector<T> dS(static_cast<size_t>(n) * n);
    const T* kb = k + static_cast<size_t>(b) * n * kw + kvh * hd;
    const T* vb = v + static_cast<size_t>(b) * n * kw + kvh * hd;
    T* dkb = d_k + static_cast<size_t>(b) * n * kw + kvh * hd;
    T* dvb = d_v + static_cast<size_t>(b) * n * kw + kvh * hd;
    for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
      const bool first = h == kvh * group;
      const T* P = probs + static_cast<size_t>(b * s.heads + h) * n * n;
      const T* qb = q + static_cast<size_t>(b) * n * qw + h * hd;
      const T* dob = d_out + static_cast<size_t>(b) * n * qw + h * hd;
      T* dqb = d_q + static_cast<size_t>(b) * n * qw + h * hd;
      // dP = dO V^T ; dS = P * (dP - rowsum(P * dP)) * scale
      gemm(GemmShape{n, n, hd, false, true, false}, dob, qw, vb, kw, dS.data(), n);
      for (int t = 0; t < n; ++t) {
        const T* pr = P + static_cast<size_t>(t) * n;
        T* dr = dS.data() + static_cast<size_t>(t) * n;
        T weighted = 0;
        for (int j = 0; j <= t; ++j) weighted += pr[j] * dr[j];
        for (int j = 0; j <= t; ++j) dr[j] = pr[j] * (dr[j] - weighted) * scale;
        for (int j = t + 1; j < n; ++j) dr[j] = 0;
      }
      gemm(GemmShape{n, hd, n, false, false, false}, dS.data(), n, kb, kw, dqb, qw);     // dQ = dS K
      gemm(GemmShape{n, hd, n, true, false, !first}, dS.data(), n, qb, qw, dkb, kw);     // dK += dS^T Q
      gemm(GemmShape{n, hd, n, true, false, !first}, P, n, dob, qw, dvb, kw);            // dV += P^T dO
    }
  }
}

template <typename T>
void swiglu_forward(const T* gate, const T* up, std::int64_t n, T* out) {
#pragma omp parallel for schedule(static) if (n * 8 > kParallelMinWork)
  for (std::int64_t i = 0; i < n; ++i) {
    const T a = gate[i];
    const T sig = 1 / (1 + std::exp(-a));
    out[i] = a * sig * up[i];
  }
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* d_out, std::int64_t n, T* d_gate, T* d_up) {
#pragma omp parallel for schedule(static) if (n * 8 > kParallelMinWork)
  for (std::int64_t i = 0; i < n; ++i) {
    const T a = gate[i];
    const T sig = 1 / (1 + std::exp(-a));
    const T silu = a * sig;
    d_up[i] = d_out[i] * silu;
    d_gate[i] = d_out[i] * up[i] * sig * (1 + a * (1 - sig));
  }
}

template <typename T>
double cross_entropy(T* logits, const std::int32_t* targets, int rows, int vocab, bool gradient, std::int64_t* counted) {
  std::int64_t count = 0;
  for (int r = 0; r < rows; ++r) count += targets[r] >= 0;
  std::vector<double> nll(rows, 0.0);
  const T grad_scale = count > 0 ? static_cast<T>(1.0 / static_cast<double>(count)) : T(0);
#pragma omp parallel for schedule(static) if (static_cast<std::int64_t>(rows) * vocab * 4 > kParallelMinWork)
  for (int r = 0; r < rows; ++r) {
    T* z = logits + static_cast<size_t>(r) * vocab;
    const int target = targets[r];
    if (target < 0) {
      if (gradient) std::fill_n(z, vocab, T(0));
      continue;
    }
    T mx = z[0];
    for (int i = 1; i < vocab; ++i) mx = std::max(mx, z[i]);
    double sum = 0;
    for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(z[i] - mx));
    const double log_sum = std::log(sum);
    nll[r] = log_sum - static_cast<double>(z[target] - mx);
    if (gradient) {
      for (int i = 0; i < vocab; ++i)
        z[i] = static_cast<T>(std::exp(static_cast<double>(z[i] - mx) - log_sum)) * grad_scale;
      z[target] -= grad_scale;
    }
  }
  double total = 0;
  for (int r = 0; r < rows; ++r) total += nll[r];
  if (counted) *counted = count;
  return total;
}

#define QMETER_INSTANTIATE_LAYERS(T)                                                                       \
  template void embedding_forward<T>(const std::int32_t*, int, const T*, int, T*);                        \
  template void embedding_backward<T>(const std::int32_t*, int, const T*, int, T*);                       \
  template void rmsnorm_forward<T>(const T*, const T*, int, int, double, T*, T*);                         \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, int, int, T*, T*, bool);      \
  template void rope_apply<T>(T*, int, int, int, int, double, bool);                                      \
  template void attention_forward<T>(const AttentionShape&, const T*, const T*, const T*, T*, T*);        \
  template void attention_backward<T>(const AttentionShape&, const T*, const T*, const T*, const T*,      \
                                      const T*, T*, T*, T*);                                              \
  template void swiglu_forward<T>(const T*, const T*, std::int64_t, T*);                                  \
  template void swiglu_backward<T>(const T*, const T*, const T*, std::int64_t, T*, T*);                   \
  template double cross_entropy<T>(T*, const std::int32_t*, int, int, bool, std::int64_t*);

QMETER_INSTANTIATE_LAYERS(float)
QMETER_INSTANTIATE_LAYERS(double)

}  // namespace qmeter::train
