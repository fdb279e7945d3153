// The trainable parameters seen as one flat vector (registration order), split
// into one contiguous slice per rank for sharded optimizer state (ZeRO).
//
//   offsets[i] = Σ_{j<i} numel(p_j),   total = offsets[P]
//   slice(r)   = [min(r·S, total), min((r+1)·S, total)),  S = ceil(total / W)
//
// Every slice but the last has S elements, so an all-gather of S-element
// chunks (the last rank's padded) reassembles the flat vector on every rank.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mentor_kd::dist {

class FlatLayout {
 public:
  FlatLayout() = default;
  // Sizes of the parameters in flat order; world_size >= 1.
  FlatLayout(const std::vector<int64_t>& numels, int world_size);

  int64_t total() const { return offsets_.back(); }
  int world_size() const { return world_; }
  int64_t shard_size() const { return shard_; }
  int64_t begin(int rank) const;
  int64_t end(int rank) const;
  int64_t offset(size_t param) const { return offsets_[param]; }
  size_t num_params() const { return offsets_.size() - 1; }

  // The pieces of the flat range [a, b): (parameter, element offset in it, length,
  // offset from a), in order.
  struct Piece {
    size_t param;
    int64_t local, length, flat;
  };
  std::vector<Piece> pieces(int64_t a, int64_t b) const;

  // params' elements in [a, b) -> buffer[0, b−a) and back (params contiguous, one dtype).
  void pack(const std::vector<at::Tensor>& params, int64_t a, int64_t b, at::Tensor& buffer) const;
  void unpack(std::vector<at::Tensor>& params, int64_t a, int64_t b, const at::Tensor& buffer) const;

 private:
  std::vector<int64_t> offsets_{0};
  int world_ = 1;
  int64_t shard_ = 0;
};

}  // namespace mentor_kd::dist
