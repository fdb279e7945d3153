// MCC-KD's consistency term (Chen et al., "MCC-KD: Multi-CoT Consistent Knowledge
// Distillation", Findings of EMNLP 2023, arXiv 2310.14747): the student's answer
// distributions after two rationales of the same question are pulled together by the
// bidirectional KL, at each answer token j:
//
//   sym(a, b, j) = ½·[ KL(p_a,j ‖ p_b,j) + KL(p_b,j ‖ p_a,j) ],   p = softmax(logits), τ = 1
//
// (the authors' kl_div_loss in homzer/MCC-KD src/utils.py: plain softmax, the mean of the two
// directions). The caller (lib/train/mcc-kd.ts) lists the position pairs and weighs each, so the
// mean over a question's answer tokens, its rationale pairs and the step's questions, and α, are
// all in `weight`; this op returns Σ_pairs weight·sym, differentiable through both sides.
//
// Only the answer positions are projected to logits (W·h for those rows, [U,V] with U the
// distinct positions, a few per question), not the micro-batch's [N,V]: the fused CE/KD loss
// never materialises those either.
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace mentor_kd::train {

// Position pairs of one micro-batch: rows of the flattened [N = B·T] decoder positions.
struct ConsistencyPairs {
  at::Tensor a, b;    // [P] int64: position of answer token j after rationale a / rationale b
  at::Tensor weight;  // [P] float64 (or float32), >= 0: this pair-position's weight in the loss

  bool defined() const { return a.defined(); }
  int64_t size() const { return a.defined() ? a.size(0) : 0; }
};

// Checks shapes, dtypes and ranges (positions in [0, rows), weights finite and >= 0),
// throwing std::invalid_argument naming `where` and the tensor. Moves nothing.
void check_consistency_pairs(const ConsistencyPairs& pairs, int64_t rows, const std::string& where);

// Σ_p weight[p]·sym(a[p], b[p]) for hidden [N,d] (the lm head's input) and head weight W [V,d];
// a 0-dim tensor in W's dtype's accumulation type (fp32 for fp32/bf16 heads), with autograd
// through hidden and W. P = 0 gives 0.
at::Tensor answer_consistency(const at::Tensor& hidden, const at::Tensor& W, const ConsistencyPairs& pairs);

}  // namespace mentor_kd::train
