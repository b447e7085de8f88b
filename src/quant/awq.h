#pragma once
// Private: AWQ (Lin et al. 2023) for one decoder layer: activation-aware scale search per set of
// linears sharing an input (20-point grid of the exponent in [0, 1], folded into the preceding
// RMSNorm or linear), then the weight-clipping search, then group-wise asymmetric RTN.
#include "calibration.h"
#include "qmeter/quant/quantize.h"

namespace qmeter::quant {

void awq_quantize_layer(engine::Model& model, int layer, const CalibState& state, int bits, int group_size,
                        engine::ThreadPool* pool);

}  // namespace qmeter::quant
