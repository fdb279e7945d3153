// The generation engine's decode step on CUDA, captured once in a CUDA graph and replayed every step.
//
// Why a graph is legal: every shape is static. All `slots` rows are computed each step (rows past the
// active ones compute on zeros and are ignored); the self-attention cache is [slots, H, capacity, d_kv]
// and each slot's cross-attention K/V [slots, H, max_source, d_kv], per layer; what varies per step
// (input token, position, source length, sampling settings, the uniform drawn on the host from
// counter_uniform) is copied into one static input buffer before the replay, and the lengths become
// masks: self-attention keys t > pos and cross-attention keys t >= source length get -inf. The step
// writes each row's next token into a static output that is copied back after the replay. When a
// request needs a longer cache or source, the buffers grow (contents kept) and the graph is captured
// again.
//
// Same numerics as the CPU step (T5 attention without 1/sqrt(d_kv), float32 scores and softmax, the
// relative-position bias by distance from one [H, capacity] table) and the same sampler semantics
// (HF's temperature -> top-k -> top-p, then the first token whose cumulative probability in vocabulary
// order exceeds u · total), computed with ATen ops on the device.
#pragma once
#ifdef MENTOR_KD_WITH_CUDA
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "t5/model.h"

namespace mentor_kd::generate {

struct CudaRowInput {
  int64_t token = 0, pos = 0, source_length = 1;
  bool do_sample = false;
  double temperature = 1.0, top_p = 1.0, uniform = 0.0;
  int64_t top_k = 0;
};

class CudaDecodeStep {
 public:
  CudaDecodeStep(std::shared_ptr<t5::T5Model> model, int64_t slots);

  // Grows the cache to `capacity` positions and the cross K/V to `max_source` keys (never shrinks).
  void reserve(int64_t capacity, int64_t max_source);
  // Writes a request's cross K/V [L, 2, H, S, d_kv] (on the device, S <= max_source) into `slot`.
  void set_cross(int64_t slot, const at::Tensor& cross_kv);
  // Copies slot `from`'s first `positions` cache entries and its cross K/V into slot `to`.
  void move_slot(int64_t from, int64_t to, int64_t positions);
  // One step for rows 0..rows.size()-1 (<= slots); writes their next tokens into out.
  void step(const std::vector<CudaRowInput>& rows, int64_t* out);

  int64_t capacity() const { return capacity_; }
  int64_t max_source() const { return max_source_; }

 private:
  void body();  // the captured step: reads in_dev_, writes next_dev_
  void capture();

  std::shared_ptr<t5::T5Model> model_;
  t5::T5Config config_;
  at::ScalarType dtype_;
  at::Device device_;
  int64_t slots_, H_, dk_, I_, D_, F_, L_, V_;
  int64_t capacity_ = 0, max_source_ = 0;
  std::vector<at::Tensor> self_qkv_, cross_q_, cross_o_, ff_wi_;
  std::vector<at::Tensor> cache_k_, cache_v_, cross_k_, cross_v_;  // [slots, H, capacity | max_source, d_kv]
  at::Tensor bias_table_;                                          // [H, capacity] float32
  at::Tensor in_host_, in_dev_;                                    // [8, slots] float64 (pinned / device)
  at::Tensor next_dev_, next_host_;                                // [slots] int64
  c10::cuda::CUDAStream stream_;
  std::unique_ptr<at::cuda::CUDAGraph> graph_;
};

}  // namespace mentor_kd::generate
#endif  // MENTOR_KD_WITH_CUDA
