#pragma once
// Private: SmoothQuant (Xiao et al. 2023) W8A8 for one decoder layer: the per-input-channel
// smoothing s_j = max|X_j|^alpha / max|W_j|^(1-alpha) of the linears that follow an RMSNorm
// (q/k/v after the attention norm, gate/up after the FFN norm) is folded into the norm weight
// (X / s) and the weight columns (W * s); every linear then becomes int8 per output channel with
// per-token dynamic int8 activations (kQ8RowA8). o_proj and down_proj have no norm in front and
// are quantized without smoothing, as in the reference implementation for LLaMA.
#include <vector>

#include "calibration.h"

namespace qmeter::quant {

// The smoothing factors of one input given the activation and weight maxima per channel
// (clamped at 1e-5 like the reference implementation).
std::vector<float> smoothing_factors(const std::vector<float>& act_max, const std::vector<float>& weight_max, double alpha);

void smoothquant_layer(engine::Model& model, int layer, const CalibState& state, double alpha, engine::ThreadPool* pool);

}  // namespace qmeter::quant
