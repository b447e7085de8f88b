#pragma once
// What the CPU this process runs on can execute (CPUID + the OS's saved register state), read
// once. Private to the engine: kernels use it to pick their instruction-set variant at run time,
// so one binary runs on any x86-64.
namespace qmeter::engine {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512bf16 = false;
  bool amx_bf16 = false;  // AMX-TILE + AMX-BF16 and the OS granted this process the tile state
};

// Detected once on first use (thread-safe).
const CpuFeatures& cpu_features();

}  // namespace qmeter::engine
