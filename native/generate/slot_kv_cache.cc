#include "generate/slot_kv_cache.h"

#include <algorithm>
#include <cstring>

namespace mentor_kd::generate {

SlotKvCache::SlotKvCache(int64_t layers, int64_t slots, int64_t heads, int64_t d, at::TensorOptions options)
    : slots_(slots), heads_(heads), d_(d), options_(options), element_size_(options.dtype().itemsize()) {
  k_.resize(layers);
  v_.resize(layers);
}

bool SlotKvCache::reserve(int64_t need, int64_t bound) {
  if (need <= capacity_) return false;
  const int64_t next = std::min(std::max(bound, need), std::max<int64_t>({need, 2 * capacity_, 64}));
  for (size_t l = 0; l < k_.size(); ++l) {
    at::Tensor k = at::empty({slots_, heads_, next, d_}, options_), v = at::empty({slots_, heads_, next, d_}, options_);
    if (capacity_ > 0) {
      k.narrow(2, 0, capacity_).copy_(k_[l]);
      v.narrow(2, 0, capacity_).copy_(v_[l]);
    }
    k_[l] = k;
    v_[l] = v;
  }
  capacity_ = next;
  return true;
}

void SlotKvCache::move(int64_t from, int64_t to, int64_t positions) {
  if (positions == 0) return;
  for (size_t l = 0; l < k_.size(); ++l) {
    k_[l][to].narrow(1, 0, positions).copy_(k_[l][from].narrow(1, 0, positions));
    v_[l][to].narrow(1, 0, positions).copy_(v_[l][from].narrow(1, 0, positions));
  }
}

void SlotKvCache::write_prefix(int64_t layer, int64_t slot, const at::Tensor& k, const at::Tensor& v) {
  const int64_t P = k.size(1);
  k_[layer][slot].narrow(1, 0, P).copy_(k);
  v_[layer][slot].narrow(1, 0, P).copy_(v);
}

void SlotKvCache::write_position(int64_t layer, int64_t slot, int64_t pos, const void* k, const void* v) {
  const size_t es = element_size_, row = d_ * es;
  char* kc = static_cast<char*>(k_[layer].data_ptr());
  char* vc = static_cast<char*>(v_[layer].data_ptr());
  const char* ks = static_cast<const char*>(k);
  const char* vs = static_cast<const char*>(v);
  for (int64_t g = 0; g < heads_; ++g) {
    const int64_t dst = ((slot * heads_ + g) * capacity_ + pos) * d_;
    std::memcpy(kc + dst * es, ks + g * row, row);
    std::memcpy(vc + dst * es, vs + g * row, row);
  }
}

}  // namespace mentor_kd::generate
