// A GPU load for bench/gpu/nvml_check.sh: a shared-memory tiled SGEMM in a loop, in phases of
// BUSY_MS busy and IDLE_MS idle (so the power trace has edges the counter and the sampled power
// must agree on), for SECONDS in total. No library beyond the CUDA runtime.
//   gpu_load [seconds=20] [n=4096] [busy_ms=1500] [idle_ms=500]
// Prints one line per phase and a summary with the achieved TFLOP/s.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#define CHECK(call)                                                                        \
  do {                                                                                     \
    cudaError_t err_ = (call);                                                             \
    if (err_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "gpu_load: %s failed: %s\n", #call, cudaGetErrorString(err_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

constexpr int kTile = 32;

// C = A * B for n x n row-major matrices, n a multiple of kTile; each block computes one tile.
__global__ void sgemm_tiled(const float* a, const float* b, float* c, int n) {
  __shared__ float as[kTile][kTile];
  __shared__ float bs[kTile][kTile];
  int row = blockIdx.y * kTile + threadIdx.y;
  int col = blockIdx.x * kTile + threadIdx.x;
  float acc = 0.f;
  for (int k0 = 0; k0 < n; k0 += kTile) {
    as[threadIdx.y][threadIdx.x] = a[row * n + k0 + threadIdx.x];
    bs[threadIdx.y][threadIdx.x] = b[(k0 + threadIdx.y) * n + col];
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTile; ++k) acc += as[threadIdx.y][k] * bs[k][threadIdx.x];
    __syncthreads();
  }
  c[row * n + col] = acc;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 20.0;
  int n = argc > 2 ? std::atoi(argv[2]) : 4096;
  int busy_ms = argc > 3 ? std::atoi(argv[3]) : 1500;
  int idle_ms = argc > 4 ? std::atoi(argv[4]) : 500;
  if (seconds <= 0 || n < kTile || n % kTile != 0 || busy_ms <= 0 || idle_ms < 0) {
    std::fprintf(stderr, "usage: gpu_load [seconds>0] [n, a multiple of %d] [busy_ms>0] [idle_ms>=0]\n", kTile);
    return 2;
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("gpu_load: %s, %d x %d SGEMM, %d ms busy / %d ms idle for %.1f s\n", prop.name, n, n, busy_ms, idle_ms,
              seconds);
  std::size_t bytes = static_cast<std::size_t>(n) * n * sizeof(float);
  std::vector<float> host(static_cast<std::size_t>(n) * n);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>((i * 2654435761u) % 1000) / 1000.f;
  float *a = nullptr, *b = nullptr, *c = nullptr;
  CHECK(cudaMalloc(&a, bytes));
  CHECK(cudaMalloc(&b, bytes));
  CHECK(cudaMalloc(&c, bytes));
  CHECK(cudaMemcpy(a, host.data(), bytes, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(b, host.data(), bytes, cudaMemcpyHostToDevice));
  dim3 block(kTile, kTile), grid(n / kTile, n / kTile);
  sgemm_tiled<<<grid, block>>>(a, b, c, n);  // warm-up
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());

  double start = now_s(), end = start + seconds, busy_total = 0;
  long long gemms = 0;
  int phase = 0;
  while (now_s() < end) {
    double phase_start = now_s(), phase_end = std::min(end, phase_start + busy_ms / 1000.0);
    long long phase_gemms = 0;
    while (now_s() < phase_end) {
      for (int k = 0; k < 4; ++k) sgemm_tiled<<<grid, block>>>(a, b, c, n);
      CHECK(cudaDeviceSynchronize());
      phase_gemms += 4;
    }
    double busy = now_s() - phase_start;
    busy_total += busy;
    gemms += phase_gemms;
    std::printf("gpu_load: phase %d busy %.2f s, %lld GEMMs, %.2f TFLOP/s\n", phase++, busy, phase_gemms,
                2.0 * n * n * static_cast<double>(n) * phase_gemms / busy / 1e12);
    std::fflush(stdout);
    double rest = std::min(idle_ms / 1000.0, end - now_s());
    if (rest > 0) std::this_thread::sleep_for(std::chrono::duration<double>(rest));
  }
  float probe = 0;
  CHECK(cudaMemcpy(&probe, c, sizeof probe, cudaMemcpyDeviceToHost));
  std::printf("gpu_load: done: %lld GEMMs in %.2f s busy (%.2f s total), %.2f TFLOP/s while busy, c[0]=%g\n", gemms,
              busy_total, now_s() - start, 2.0 * n * n * static_cast<double>(n) * gemms / busy_total / 1e12, probe);
  CHECK(cudaFree(a));
  CHECK(cudaFree(b));
  CHECK(cudaFree(c));
  return 0;
}
