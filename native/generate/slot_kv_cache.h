// The self-attention K/V cache of the generation engine's decoders (T5Decoder, CausalDecoder) and of
// T5's static generate(): per layer one pair K, V of [slots, heads, capacity, d], slot i holding row i
// (an engine's active row, a static batch's row), position t of a slot holding the key / value the
// row computed for its t-th input. The pointer accessors (write_position, k_data) are for CPU tensors.
//
// - Growth: reserve(need, bound) makes room for `need` positions when they do not fit, doubling (at
//   least 64 positions, but no more than `bound`, the most positions any row can reach, unless `need`
//   is more), by copying every layer's pair into a bigger one. Positions past what a row has written are left
//   uninitialised: attention reads a row's first `length` positions only, all written before.
// - Move: the engine keeps its active rows dense in slots 0..n-1, so a row may change slot when
//   another finishes. A move copies the row's written positions into the new slot, every layer. It is
//   legal because a slot is nothing but storage: positions are absolute within the row (no slot
//   index enters the keys, values, RoPE or the position bias), the destination's row has finished,
//   and two slots never overlap in memory.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mentor_kd::generate {

class SlotKvCache {
 public:
  SlotKvCache() = default;
  // Nothing is allocated before the first reserve(). With layers = 0 it only keeps the capacity (a
  // backend whose step holds its own cache, e.g. the CUDA step, follows it).
  SlotKvCache(int64_t layers, int64_t slots, int64_t heads, int64_t d, at::TensorOptions options);

  int64_t capacity() const { return capacity_; }
  // Elements from one head of a slot to the next (a key's position t is at + t * d).
  int64_t head_stride() const { return capacity_ * d_; }

  // Grows to fit `need` positions (see above); returns whether it grew.
  bool reserve(int64_t need, int64_t bound);
  // Copies slot `from`'s first `positions` positions into slot `to`, every layer.
  void move(int64_t from, int64_t to, int64_t positions);
  // Writes a prompt's K / V [heads, P, d] into `slot`'s positions 0..P-1 of `layer`.
  void write_prefix(int64_t layer, int64_t slot, const at::Tensor& k, const at::Tensor& v);
  // Writes one position of `slot` in `layer`: head g's key from k + g * d elements, its value from
  // v + g * d (e.g. the k and v parts of a fused qkv row).
  void write_position(int64_t layer, int64_t slot, int64_t pos, const void* k, const void* v);

  // Layer `layer`'s keys / values [slots, heads, capacity, d].
  const at::Tensor& k(int64_t layer) const { return k_[layer]; }
  const at::Tensor& v(int64_t layer) const { return v_[layer]; }
  // Base of `slot`'s keys / values in `layer` (head g at + g * head_stride()), for attend_rows.
  const void* k_data(int64_t layer, int64_t slot) const { return slot_data(k_[layer], slot); }
  const void* v_data(int64_t layer, int64_t slot) const { return slot_data(v_[layer], slot); }

 private:
  const char* slot_data(const at::Tensor& t, int64_t slot) const {
    return static_cast<const char*>(t.data_ptr()) + slot * heads_ * capacity_ * d_ * element_size_;
  }

  int64_t slots_ = 0, heads_ = 0, d_ = 0, capacity_ = 0;
  at::TensorOptions options_;
  size_t element_size_ = 4;
  std::vector<at::Tensor> k_, v_;  // per layer [slots, heads, capacity, d]
};

}  // namespace mentor_kd::generate
