// Round-to-nearest quantizers and GPTQ for one linear layer (see linear_quant.h).
#include "qmeter/quant/linear_quant.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "qmeter/core/error.h"
#include "qmeter/engine/packed_formats.h"

namespace qmeter::quant {

using engine::f16_to_f32;
using engine::f32_to_f16;

namespace {

float f16_round(float v) { return f16_to_f32(f32_to_f16(v)); }

template <typename Fn>
void parallel_rows(engine::ThreadPool* pool, int n, Fn&& fn) {
  if (pool == nullptr || pool->size() <= 1 || n < 64) {
    fn(0, n);
    return;
  }
  pool->parallel_for(n, fn, 16);
}

}  // namespace

void group_params(const float* w, int n, int stride, int bits, bool symmetric, float& scale, std::uint8_t& zero) {
  const int maxq = (1 << bits) - 1;
  float lo = 0.0f, hi = 0.0f;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, w[static_cast<std::size_t>(i) * stride]);
    hi = std::max(hi, w[static_cast<std::size_t>(i) * stride]);
  }
  if (symmetric) {
    const int half = 1 << (bits - 1);
    scale = f16_round(std::max(-lo, hi) / static_cast<float>(half - 1));
    zero = static_cast<std::uint8_t>(half);
  } else {
    scale = f16_round((hi - lo) / static_cast<float>(maxq));
    if (scale > 0.0f) zero = static_cast<std::uint8_t>(std::clamp(std::lround(-lo / scale), 0L, static_cast<long>(maxq)));
    else zero = 0;
  }
  if (!(scale > 0.0f)) scale = 1.0f;  // an all-zero group: any scale represents it exactly
}

std::uint8_t quantize_value(float w, float scale, std::uint8_t zero, int bits) {
  const long q = std::lround(w / scale) + zero;
  return static_cast<std::uint8_t>(std::clamp(q, 0L, static_cast<long>((1 << bits) - 1)));
}

std::vector<float> GroupQuantized::dequantized() const {
  std::vector<float> out(static_cast<std::size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const std::size_t g = static_cast<std::size_t>(r) * n_groups + c / group_size;
      out[static_cast<std::size_t>(r) * cols + c] =
          scales[g] * static_cast<float>(static_cast<int>(codes[static_cast<std::size_t>(r) * cols + c]) - zeros[g]);
    }
  return out;
}

std::vector<std::byte> GroupQuantized::pack() const {
  return engine::pack_q4_group(rows, cols, bits, group_size, codes.data(), scales.data(), zeros.data());
}

GroupQuantized quantize_rtn_groups(const float* w, int rows, int cols, int bits, int group_size, bool symmetric) {
  GroupQuantized q;
  q.rows = rows;
  q.cols = cols;
  q.bits = bits;
  q.group_size = group_size;
  q.n_groups = engine::q4_group_count(cols, group_size);
  q.codes.resize(static_cast<std::size_t>(rows) * cols);
  q.scales.resize(static_cast<std::size_t>(rows) * q.n_groups);
  q.zeros.resize(q.scales.size());
  for (int r = 0; r < rows; ++r)
    for (int g = 0; g < q.n_groups; ++g) {
      const int c0 = g * group_size, n = std::min(cols, c0 + group_size) - c0;
      const float* wg = w + static_cast<std::size_t>(r) * cols + c0;
      const std::size_t gi = static_cast<std::size_t>(r) * q.n_groups + g;
      group_params(wg, n, 1, bits, symmetric, q.scales[gi], q.zeros[gi]);
      for (int i = 0; i < n; ++i)
        q.codes[static_cast<std::size_t>(r) * cols + c0 + i] = quantize_value(wg[i], q.scales[gi], q.zeros[gi], bits);
    }
  return q;
}

std::vector<float> RowQuantized8::dequantized() const {
  std::vector<float> out(static_cast<std::size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      out[static_cast<std::size_t>(r) * cols + c] = scales[r] * codes[static_cast<std::size_t>(r) * cols + c];
  return out;
}

std::vector<std::byte> RowQuantized8::pack() const { return engine::pack_q8_row(rows, cols, codes.data(), scales.data()); }
std::vector<std::byte> RowQuantized8::pack_a8() const { return engine::pack_q8_row_a8(rows, cols, codes.data(), scales.data()); }

RowQuantized8 quantize_rtn_rows8(const float* w, int rows, int cols) {
  RowQuantized8 q;
  q.rows = rows;
  q.cols = cols;
  q.codes.resize(static_cast<std::size_t>(rows) * cols);
  q.scales.resize(rows);
  for (int r = 0; r < rows; ++r) {
    const float* wr = w + static_cast<std::size_t>(r) * cols;
    float amax = 0.0f;
    for (int c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(wr[c]));
    const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
    q.scales[r] = s;
    for (int c = 0; c < cols; ++c)
      q.codes[static_cast<std::size_t>(r) * cols + c] = static_cast<std::int8_t>(std::clamp(std::lround(wr[c] / s), -127L, 127L));
  }
  return q;
}

std::vector<double> hessian_from_inputs(const float* x, int n, int cols, engine::ThreadPool* pool) {
  std::vector<double> h(static_cast<std::size_t>(cols) * cols, 0.0);
  const double f = 2.0 / std::max(n, 1);
  parallel_rows(pool, cols, [&](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      double* hi = h.data() + static_cast<std::size_t>(i) * cols;
      for (int t = 0; t < n; ++t) {
        const float* xt = x + static_cast<std::size_t>(t) * cols;
        const double xi = xt[i] * f;
        if (xi == 0.0) continue;
        for (int j = 0; j <= i; ++j) hi[j] += xi * xt[j];
      }
    }
  });
  for (int i = 0; i < cols; ++i)
    for (int j = i + 1; j < cols; ++j) h[static_cast<std::size_t>(i) * cols + j] = h[static_cast<std::size_t>(j) * cols + i];
  return h;
}

namespace {

// In-place lower Cholesky A = L L^T (upper part left untouched); false when not positive definite.
bool cholesky_lower(std::vector<double>& a, int n) {
  for (int j = 0; j < n; ++j) {
    double* aj = a.data() + static_cast<std::size_t>(j) * n;
    double d = aj[j];
    for (int k = 0; k < j; ++k) d -= aj[k] * aj[k];
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    aj[j] = d;
    for (int i = j + 1; i < n; ++i) {
      double* ai = a.data() + static_cast<std::size_t>(i) * n;
      double s = ai[j];
      for (int k = 0; k < j; ++k) s -= ai[k] * aj[k];
      ai[j] = s / d;
    }
  }
  return true;
}

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U), as GPTQ uses it.
std::vector<double> upper_cholesky_of_inverse(std::vector<double> h, int n) {
  if (!cholesky_lower(h, n)) throw Error("gptq: the damped Hessian is not positive definite");
  // Linv = L^-1 (lower), by forward substitution column by column.
  std::vector<double> linv(static_cast<std::size_t>(n) * n, 0.0);
  for (int c = 0; c < n; ++c) {
    for (int i = c; i < n; ++i) {
      double s = i == c ? 1.0 : 0.0;
      for (int k = c; k < i; ++k) s -= h[static_cast<std::size_t>(i) * n + k] * linv[static_cast<std::size_t>(k) * n + c];
      linv[static_cast<std::size_t>(i) * n + c] = s / h[static_cast<std::size_t>(i) * n + i];
    }
  }
  // Hinv = Linv^T Linv
  std::vector<double> hinv(static_cast<std::size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) {
      double s = 0.0;
      for (int k = i; k < n; ++k) s += linv[static_cast<std::size_t>(k) * n + i] * linv[static_cast<std::size_t>(k) * n + j];
      hinv[static_cast<std::size_t>(i) * n + j] = hinv[static_cast<std::size_t>(j) * n + i] = s;
    }
  if (!cholesky_lower(hinv, n)) throw Error("gptq: the inverse Hessian is not positive definite");
  std::vector<double> u(static_cast<std::size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) u[static_cast<std::size_t>(j) * n + i] = hinv[static_cast<std::size_t>(i) * n + j];
  return u;
}

}  // namespace

GroupQuantized gptq_quantize(const float* w_in, int rows, int cols, const std::vector<double>& hessian,
                             const GptqOptions& o, engine::ThreadPool* pool) {
  const std::size_t n = static_cast<std::size_t>(cols);
  std::vector<double> h = hessian;
  std::vector<float> w(w_in, w_in + static_cast<std::size_t>(rows) * cols);
  for (std::size_t i = 0; i < n; ++i)
    if (h[i * n + i] == 0.0) {  // a dead input: its weights cannot matter
      h[i * n + i] = 1.0;
      for (int r = 0; r < rows; ++r) w[r * n + i] = 0.0f;
    }
  GroupQuantized q;
  q.rows = rows;
  q.cols = cols;
  q.bits = o.bits;
  q.group_size = o.group_size;
  q.n_groups = engine::q4_group_count(cols, o.group_size);
  q.codes.resize(static_cast<std::size_t>(rows) * cols);
  q.scales.resize(static_cast<std::size_t>(rows) * q.n_groups);
  q.zeros.resize(q.scales.size());
  auto set_group_params = [&](const std::vector<float>& src, int g) {  // src: [rows][cols], original column order
    const int c0 = g * o.group_size, len = std::min(cols, c0 + o.group_size) - c0;
    for (int r = 0; r < rows; ++r) {
      const std::size_t gi = static_cast<std::size_t>(r) * q.n_groups + g;
      group_params(src.data() + r * n + c0, len, 1, o.bits, o.symmetric, q.scales[gi], q.zeros[gi]);
    }
  };

  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (o.act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return h[a * n + a] > h[b * n + b]; });
    for (int g = 0; g < q.n_groups; ++g) set_group_params(w, g);  // static groups
  }
  double mean_diag = 0.0;
  for (std::size_t i = 0; i < n; ++i) mean_diag += h[i * n + i];
  mean_diag /= static_cast<double>(n);
  // Permuted, damped Hessian and its inverse's upper Cholesky factor.
  std::vector<double> hp(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) hp[i * n + j] = h[perm[i] * n + perm[j]];
  for (std::size_t i = 0; i < n; ++i) hp[i * n + i] += o.damp * mean_diag;
  const std::vector<double> u = upper_cholesky_of_inverse(std::move(hp), cols);

  // wp: weights in visiting order [rows][cols] (updated in place as GPTQ goes).
  std::vector<float> wp(w.size());
  for (int r = 0; r < rows; ++r)
    for (std::size_t i = 0; i < n; ++i) wp[r * n + i] = w[r * n + perm[i]];
  std::vector<float> err(static_cast<std::size_t>(rows) * o.block);
  for (int i1 = 0; i1 < cols; i1 += o.block) {
    const int i2 = std::min(cols, i1 + o.block), count = i2 - i1;
    for (int i = i1; i < i2; ++i) {
      const int col = perm[i];
      const int g = col / o.group_size;
      if (!o.act_order && col % o.group_size == 0) {
        // Dynamic groups: parameters from the current (error-compensated) weights of the group.
        const int c0 = col, len = std::min(cols, c0 + o.group_size) - c0;
        for (int r = 0; r < rows; ++r) {
          const std::size_t gi = static_cast<std::size_t>(r) * q.n_groups + g;
          group_params(wp.data() + r * n + c0, len, 1, o.bits, o.symmetric, q.scales[gi], q.zeros[gi]);
        }
      }
      const double d = u[static_cast<std::size_t>(i) * n + i];
      parallel_rows(pool, rows, [&](int rb, int re) {
        for (int r = rb; r < re; ++r) {
          float* wr = wp.data() + r * n;
          const std::size_t gi = static_cast<std::size_t>(r) * q.n_groups + g;
          const std::uint8_t code = quantize_value(wr[i], q.scales[gi], q.zeros[gi], o.bits);
          q.codes[r * n + col] = code;
          const float deq = q.scales[gi] * static_cast<float>(static_cast<int>(code) - q.zeros[gi]);
          const double e = (wr[i] - deq) / d;
          err[static_cast<std::size_t>(r) * o.block + (i - i1)] = static_cast<float>(e);
          const double* ui = u.data() + static_cast<std::size_t>(i) * n;
          for (int j = i + 1; j < i2; ++j) wr[j] -= static_cast<float>(e * ui[j]);
        }
      });
    }
    // Lazy batch update of the remaining columns: W[:, i2:] -= Err @ U[i1:i2, i2:].
    if (i2 < cols) {
      parallel_rows(pool, rows, [&](int rb, int re) {
        std::vector<double> acc(n - i2);
        for (int r = rb; r < re; ++r) {
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int k = 0; k < count; ++k) {
            const double e = err[static_cast<std::size_t>(r) * o.block + k];
            const double* uk = u.data() + static_cast<std::size_t>(i1 + k) * n + i2;
            for (std::size_t j = 0; j < acc.size(); ++j) acc[j] += e * uk[j];
          }
          float* wr = wp.data() + r * n + i2;
          for (std::size_t j = 0; j < acc.size(); ++j) wr[j] -= static_cast<float>(acc[j]);
        }
      });
    }
  }
  return q;
}

}  // namespace qmeter::quant
