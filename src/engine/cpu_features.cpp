#include "cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace qmeter::engine {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's __builtin_cpu_supports checks CPUID and, for AVX / AVX-512, that the OS saves the
  // YMM / ZMM state (XGETBV), so a feature reported here is safe to execute.
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
#if defined(__clang__) && __clang_major__ < 16 && defined(__x86_64__)
  // clang before 16 (the fuzz build's clang-14) knows no "f16c" here: CPUID.1:ECX bit 29. The OS
  // YMM-state check is the avx2 one above, which every F16C kernel path also requires.
  {
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    f.f16c = f.avx2 && __get_cpuid(1, &a1, &b1, &c1, &d1) && (c1 >> 29 & 1u);
  }
#else
  f.f16c = __builtin_cpu_supports("f16c");
#endif
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
#if defined(__x86_64__)
  // AMX: CPUID.(7,0):EDX bit 24 (AMX-TILE) and bit 22 (AMX-BF16). Linux keeps the 8 KiB tile
  // state disabled per process until it asks for it (ARCH_REQ_XCOMP_PERM for XTILEDATA); a
  // refusal (old kernel, a hypervisor without AMX state) leaves AMX off.
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1u) && (d >> 22 & 1u)) {
    constexpr long kArchReqXcompPerm = 0x1023;
    constexpr long kXfeatureXtiledata = 18;
    f.amx_bf16 = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace qmeter::engine
