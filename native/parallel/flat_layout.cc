#include "parallel/flat_layout.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace mentor_kd::dist {

FlatLayout::FlatLayout(const std::vector<int64_t>& numels, int world_size) : world_(world_size) {
  if (world_size < 1) throw std::invalid_argument("FlatLayout: world_size must be >= 1");
  for (int64_t n : numels) offsets_.push_back(offsets_.back() + n);
  shard_ = (total() + world_ - 1) / world_;
}

int64_t FlatLayout::begin(int rank) const { return std::min<int64_t>(static_cast<int64_t>(rank) * shard_, total()); }
int64_t FlatLayout::end(int rank) const {
  return std::min<int64_t>((static_cast<int64_t>(rank) + 1) * shard_, total());
}

std::vector<FlatLayout::Piece> FlatLayout::pieces(int64_t a, int64_t b) const {
  std::vector<Piece> out;
  if (a >= b) return out;
  // The first parameter whose range ends after a.
  size_t i = static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), a) - offsets_.begin()) - 1;
  for (; i + 1 < offsets_.size() && offsets_[i] < b; ++i) {
    const int64_t lo = std::max(a, offsets_[i]);
    const int64_t hi = std::min(b, offsets_[i + 1]);
    if (lo < hi) out.push_back(Piece{i, lo - offsets_[i], hi - lo, lo - a});
  }
  return out;
}

void FlatLayout::pack(const std::vector<at::Tensor>& params, int64_t a, int64_t b, at::Tensor& buffer) const {
  at::NoGradGuard no_grad;
  for (const Piece& p : pieces(a, b))
    buffer.narrow(0, p.flat, p.length).copy_(params[p.param].detach().view(-1).narrow(0, p.local, p.length));
}

void FlatLayout::unpack(std::vector<at::Tensor>& params, int64_t a, int64_t b, const at::Tensor& buffer) const {
  at::NoGradGuard no_grad;
  for (const Piece& p : pieces(a, b))
    params[p.param].detach().view(-1).narrow(0, p.local, p.length).copy_(buffer.narrow(0, p.flat, p.length));
}

}  // namespace mentor_kd::dist
