#pragma once
// Forward and backward passes of the layers of a LLaMA-family transformer, on row-major
// activations of `rows` tokens (a batch of sequences of `seq_len` tokens laid end to end, so a
// row's position is row % seq_len). Instantiated for float (training) and double (gradient
// checks). Backward functions ADD into parameter gradients (d_weight) and overwrite input
// gradients unless the name says accumulate. Parallel loops only split independent outputs, so
// results are the same for every thread count.
#include <cstdint>

namespace qmeter::train {

// out[r] = table[ids[r]] (rows x dim).
template <typename T>
void embedding_forward(const std::int32_t* ids, int rows, const T* table, int dim, T* out);
template <typename T>
void embedding_backward(const std::int32_t* ids, int rows, const T* d_out, int dim, T* d_table);

// y = x / sqrt(mean(x^2) + eps) * weight; inv_rms[r] is saved for the backward pass.
template <typename T>
void rmsnorm_forward(const T* x, const T* weight, int rows, int dim, double eps, T* y, T* inv_rms);
// d_x = (accumulate ? d_x + ... : ...); d_weight += ...
template <typename T>
void rmsnorm_backward(const T* x, const T* weight, const T* inv_rms, const T* d_y, int rows, int dim,
                      T* d_x, T* d_weight, bool accumulate_dx);

// Rotary position embedding in Hugging Face's rotate-half layout: within each head of
// `head_dim`, element i pairs with i + head_dim/2 and turns by pos * theta^(-2i/head_dim).
// inverse = true applies the transposed rotation (the backward pass). In place.
template <typename T>
void rope_apply(T* x, int rows, int seq_len, int heads, int head_dim, double theta, bool inverse);

// Causal grouped-query attention: q is rows x (heads*head_dim), k and v are
// rows x (kv_heads*head_dim); query head h reads kv head h / (heads/kv_heads).
// probs (batch*heads*seq_len*seq_len) keeps the softmax for the backward pass.
struct AttentionShape {
  int batch = 0, seq_len = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int rows() const { return batch * seq_len; }
};
template <typename T>
void attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v, T* probs, T* out);
template <typename T>
void attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* probs,
                        const T* d_out, T* d_q, T* d_k, T* d_v);

// SwiGLU: out = silu(gate) * up, elementwise over n values.
template <typename T>
void swiglu_forward(const T* gate, const T* up, std::int64_t n, T* out);
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* d_out, std::int64_t n, T* d_gate, T* d_up);

// Mean cross-entropy of logits (rows x vocab) against targets (-1 = ignored row position).
// Replaces logits by d(mean loss)/d(logits) when `gradient` is true. Returns the summed NLL
// (in double) and sets *counted to the number of scored targets.
template <typename T>
double cross_entropy(T* logits, const std::int32_t* targets, int rows, int vocab, bool gradient, std::int64_t* counted);

}  // namespace qmeter::train
