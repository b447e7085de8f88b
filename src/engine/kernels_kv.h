#pragma once
// Private: the per-ISA tables of the quantized-KV inner loops (kv_kernels.h), defined in
// kv_attention.cpp (scalar reference) and kernels_kv_<isa>.cpp.
#include "qmeter/engine/kv_kernels.h"

namespace qmeter::engine::kernels {
namespace scalar {
extern const KvCodeOps kKvInt8Ops, kKvFp8Ops;
}
namespace avx2 {
extern const KvCodeOps kKvInt8Ops, kKvFp8Ops;
}
namespace avx512 {
extern const KvCodeOps kKvInt8Ops, kKvFp8Ops;
}
}  // namespace qmeter::engine::kernels
