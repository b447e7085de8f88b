#pragma once
// What every SIMD kernel file starts with: the intrinsics, with GCC 12's spurious warnings
// silenced (its intrinsic headers initialise "undefined" vectors from themselves,
// `__m512 __Y = __Y;`, which -Wuninitialized reports at every inlined use: GCC PR 105593), and
// one named target per instruction-set level, so each level's feature list is written once.
// A file opens its SIMD code with QMETER_KERNELS_BEGIN_<LEVEL> and closes it with
// QMETER_KERNELS_END: only the functions in between use the wider instructions, and the binary
// still runs on any x86-64 (kernels.cpp picks a level at run time).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#if defined(__clang__)
// clang (the fuzz build, -DQMETER_FUZZ=ON) ignores GCC's target pragma: its attribute pragma
// gives the functions in between the same features.
#define QMETER_KERNELS_BEGIN_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c\"))), apply_to = function)")
#define QMETER_KERNELS_BEGIN_AVX512 \
  _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c\"))), apply_to = function)")
#define QMETER_KERNELS_BEGIN_AVX512_VNNI \
  _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c\"))), apply_to = function)")
#define QMETER_KERNELS_BEGIN_AVX512_BF16 \
  _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c\"))), apply_to = function)")
#define QMETER_KERNELS_BEGIN_AMX_BF16 \
  _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c,amx-tile,amx-bf16\"))), apply_to = function)")
#define QMETER_KERNELS_END _Pragma("clang attribute pop")
#else
#define QMETER_KERNELS_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c\")")
#define QMETER_KERNELS_BEGIN_AVX512 \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c\")")
#define QMETER_KERNELS_BEGIN_AVX512_VNNI \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c\")")
#define QMETER_KERNELS_BEGIN_AVX512_BF16 \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c\")")
#define QMETER_KERNELS_BEGIN_AMX_BF16 \
  _Pragma("GCC push_options")     \
      _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c,amx-tile,amx-bf16\")")
#define QMETER_KERNELS_END _Pragma("GCC pop_options")
#endif
