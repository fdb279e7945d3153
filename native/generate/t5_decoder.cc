#include "generate/t5_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "generate/counter_rng.h"
#include "generate/decode_attention.h"
#include "generate/sampler.h"
#include "t5/rms_norm.h"

namespace mentor_kd::generate {
namespace {

struct T5Prepared : PreparedRequest {
  at::Tensor cross_kv;  // [L, 2, H, S, d_kv]
};

const T5Prepared& prepared_of(const DecodeRow& r) { return *static_cast<const T5Prepared*>(r.prepared); }

}  // namespace

T5Decoder::T5Decoder(std::shared_ptr<t5::T5Model> model, int64_t slots, at::ScalarType dtype)
    : config_(model->config()), dtype_(dtype), slots_(slots) {
#ifdef MENTOR_KD_WITH_CUDA
  const bool on_cuda = model->device().is_cuda();
#else
  const bool on_cuda = false;
#endif
  if (!model->device().is_cpu() && !on_cuda)
    throw std::invalid_argument("the generation engine runs on the CPU or CUDA (use generate() on other devices)");
  if (config_.d_kv > 256) throw std::invalid_argument("the generation engine supports d_kv <= 256");
  // An adapted (LoRA) model decodes from a merged copy: the engine reads the base weights only.
  model_ = model->dtype() == dtype_ && !model->lora() ? model : model->converted(dtype_);
  H_ = config_.num_heads, dk_ = config_.d_kv, I_ = H_ * dk_, D_ = config_.d_model, F_ = config_.d_ff;
  const auto& blocks = model_->decoder_blocks();
  L_ = static_cast<int64_t>(blocks.size());
#ifdef MENTOR_KD_WITH_CUDA
  if (on_cuda) {
    // The step's own weights and buffers live in the CUDA step; the backend keeps what prepare() needs.
    for (const auto& b : blocks) cross_kv_w_.push_back(at::cat({b.cross_attn.k, b.cross_attn.v}, 0));
    cuda_ = std::make_unique<CudaDecodeStep>(model_, slots_);
    cache_ = SlotKvCache(0, slots_, H_, dk_, dtype_);  // the CUDA step holds the tensors
    return;
  }
#endif
  for (const auto& b : blocks) {
    self_qkv_.push_back(make_linear(at::cat({b.self_attn.q, b.self_attn.k, b.self_attn.v}, 0)));
    self_o_.push_back(make_linear(b.self_attn.o));
    self_norm_.push_back(b.self_norm);
    cross_q_.push_back(make_linear(b.cross_attn.q));
    cross_o_.push_back(make_linear(b.cross_attn.o));
    cross_norm_.push_back(b.cross_norm);
    cross_kv_w_.push_back(at::cat({b.cross_attn.k, b.cross_attn.v}, 0));
    ff_wi_.push_back(make_linear(config_.is_gated_act ? at::cat({b.ff.wi_0, b.ff.wi_1}, 0) : b.ff.wi));
    ff_wo_.push_back(make_linear(b.ff.wo));
    ff_norm_.push_back(b.ff_norm);
  }
  shared_ = model_->shared_weight().contiguous();  // the step copies embedding rows by offset
  final_norm_ = model_->decoder_final_norm();
  lm_head_ = make_linear(model_->lm_head_weight());
  const auto opts = at::TensorOptions().dtype(dtype_);
  ws_x_ = at::empty({slots_, D_}, opts);
  ws_h_ = at::empty({slots_, D_}, opts);
  ws_qkv_ = at::empty({slots_, 3 * I_}, opts);
  ws_attn_ = at::empty({slots_, I_}, opts);
  ws_q_ = at::empty({slots_, I_}, opts);
  ws_ff_ = at::empty({slots_, (config_.is_gated_act ? 2 : 1) * F_}, opts);
  ws_logits_ = at::empty({slots_, config_.vocab_size}, at::TensorOptions().dtype(at::kFloat));
  cache_ = SlotKvCache(L_, slots_, H_, dk_, dtype_);
}

std::shared_ptr<PreparedRequest> T5Decoder::prepare(const GenerationRequest& request) {
  const int64_t S = static_cast<int64_t>(request.input_ids.size());
  const at::Device device = model_->device();
  at::Tensor ids = at::tensor(request.input_ids, at::TensorOptions().dtype(at::kLong)).view({1, S}).to(device);
  at::Tensor mask = at::ones({1, S}, at::TensorOptions().dtype(at::kLong).device(device));
  at::Tensor enc = model_->encode(ids, mask, false);  // [1, S, D]
  auto p = std::make_shared<T5Prepared>();
  p->cross_kv = at::empty({L_, 2, H_, S, dk_}, at::TensorOptions().dtype(dtype_).device(device));
  for (int64_t l = 0; l < L_; ++l)
    p->cross_kv[l].copy_(at::linear(enc[0], cross_kv_w_[l]).view({S, 2, H_, dk_}).permute({1, 2, 0, 3}));
  return p;
}

void T5Decoder::ensure_capacity(const std::vector<DecodeRow>& rows) {
  int64_t need = 1;
  for (const auto& r : rows) need = std::max(need, r.step + 1);
  int64_t bound = need;
  for (const auto& r : rows) bound = std::max(bound, r.max_new_tokens);
  if (!cache_.reserve(need, bound)) return;
#ifdef MENTOR_KD_WITH_CUDA
  if (cuda_) return;  // the CUDA step grows its own cache to cache_.capacity() (next_tokens_cuda)
#endif
  // The decoder's relative-position bias by distance d = query - key (keys never follow the query):
  // HF's bucket of (key - query) = -d, looked up in block 0's table; one [H, capacity] table for every
  // layer and step.
  at::Tensor rel = -at::arange(cache_.capacity(), at::TensorOptions().dtype(at::kLong));
  at::Tensor buckets = t5::relative_position_bucket(rel, false, config_.relative_attention_num_buckets,
                                                    config_.relative_attention_max_distance);
  bias_table_ = at::embedding(model_->decoder_blocks()[0].self_attn.relative_attention_bias, buckets)
                    .t()
                    .to(at::kFloat)
                    .contiguous();
}

void T5Decoder::move_slot(int64_t from, int64_t to, const DecodeRow& row) {
  const int64_t pos = row.step;  // cache entries 0..step-1 are filled
#ifdef MENTOR_KD_WITH_CUDA
  if (cuda_) {
    cuda_->move_slot(from, to, pos);
    return;
  }
#endif
  cache_.move(from, to, pos);
}

void T5Decoder::next_tokens(const std::vector<DecodeRow>& rows, int64_t* next) {
  ensure_capacity(rows);
#ifdef MENTOR_KD_WITH_CUDA
  if (cuda_) {
    next_tokens_cuda(rows, next);
    return;
  }
#endif
  next_tokens_cpu(rows, next);
}

void T5Decoder::next_tokens_cpu(const std::vector<DecodeRow>& rows, int64_t* next) {
  const int64_t n = static_cast<int64_t>(rows.size());
  // Embedding rows straight into the residual stream x.
  const size_t es = c10::elementSize(dtype_);
  {
    const char* emb = static_cast<const char*>(shared_.data_ptr());
    char* xp = static_cast<char*>(ws_x_.data_ptr());
    for (int64_t i = 0; i < n; ++i) std::memcpy(xp + i * D_ * es, emb + rows[i].token * D_ * es, D_ * es);
  }
  at::Tensor x = ws_x_.narrow(0, 0, n), h = ws_h_.narrow(0, 0, n);
  const double eps = config_.layer_norm_epsilon;

  AttendRows self;
  self.heads = H_, self.d_kv = dk_;
  self.q_stride = 3 * I_;
  self.k.resize(n), self.v.resize(n), self.head_stride.assign(n, cache_.head_stride()), self.lengths.resize(n);
  self.bias = bias_table_.data_ptr<float>();
  self.bias_stride = cache_.capacity();
  AttendRows cross;
  cross.heads = H_, cross.d_kv = dk_;
  cross.q_stride = I_;
  cross.k.resize(n), cross.v.resize(n), cross.head_stride.resize(n), cross.lengths.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    self.lengths[i] = rows[i].step + 1;
    const int64_t S = prepared_of(rows[i]).cross_kv.size(3);
    cross.lengths[i] = S;
    cross.head_stride[i] = S * dk_;
  }
  auto act = [&](const at::Tensor& t) {
    switch (config_.act) {
      case t5::Activation::Relu: return at::relu(t);
      case t5::Activation::GeluNew: return at::gelu(t, "tanh");
      case t5::Activation::Gelu: return at::gelu(t);
      case t5::Activation::Silu: return at::silu(t);
    }
    return t;
  };
  void* attn_out = ws_attn_.data_ptr();
  for (int64_t l = 0; l < L_; ++l) {
    h.copy_(t5::rms_norm(x, self_norm_[l], eps));
    linear(self_qkv_[l], ws_h_, n, ws_qkv_, false);  // [n, 3I]
    const char* qkv_p = static_cast<const char*>(ws_qkv_.data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      const char* row = qkv_p + i * 3 * I_ * es;  // q | k | v
      cache_.write_position(l, i, rows[i].step, row + I_ * es, row + 2 * I_ * es);
      self.k[i] = cache_.k_data(l, i);
      self.v[i] = cache_.v_data(l, i);
    }
    self.q = qkv_p;
    attend_rows(self, dtype_, attn_out);
    linear(self_o_[l], ws_attn_, n, ws_x_, true);

    h.copy_(t5::rms_norm(x, cross_norm_[l], eps));
    linear(cross_q_[l], ws_h_, n, ws_q_, false);
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor kv = prepared_of(rows[i]).cross_kv[l];
      cross.k[i] = kv[0].data_ptr();
      cross.v[i] = kv[1].data_ptr();
    }
    cross.q = ws_q_.data_ptr();
    attend_rows(cross, dtype_, attn_out);
    linear(cross_o_[l], ws_attn_, n, ws_x_, true);

    h.copy_(t5::rms_norm(x, ff_norm_[l], eps));
    linear(ff_wi_[l], ws_h_, n, ws_ff_, false);
    at::Tensor a = ws_ff_.narrow(0, 0, n);
    if (config_.is_gated_act) {
      // act(a0) * a1 written over a0, so ws_ff_'s first F columns feed wo.
      at::Tensor a0 = a.narrow(1, 0, F_);
      a0.copy_(act(a0).mul_(a.narrow(1, F_, F_)));
    } else {
      a.copy_(act(a));
    }
    linear(ff_wo_[l], ws_ff_, n, ws_x_, true);
  }
  h.copy_(t5::rms_norm(x, final_norm_, eps));
  if (config_.tie_word_embeddings) h.mul_(std::pow(static_cast<double>(D_), -0.5));
  at::Tensor logits = ws_logits_.narrow(0, 0, n);  // [n, V] float32
  linear(lm_head_, ws_h_, n, ws_logits_, false);   // bf16: oneDNN's GEMM, then copied into float32

  std::vector<RowSampling> rs(n);
  for (int64_t i = 0; i < n; ++i) rs[i] = rows[i].sampling;
  sample_rows(logits, rs, next);
}

#ifdef MENTOR_KD_WITH_CUDA
void T5Decoder::next_tokens_cuda(const std::vector<DecodeRow>& rows, int64_t* next) {
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t max_source = 1;
  for (const auto& r : rows) max_source = std::max(max_source, prepared_of(r).cross_kv.size(3));
  cuda_->reserve(cache_.capacity(), max_source);
  std::vector<CudaRowInput> in(n);
  for (int64_t i = 0; i < n; ++i) {
    const DecodeRow& r = rows[i];
    const at::Tensor& cross_kv = prepared_of(r).cross_kv;
    if (r.fresh) cuda_->set_cross(i, cross_kv);
    const RowSampling& s = r.sampling;
    in[i].token = r.token;
    in[i].pos = r.step;
    in[i].source_length = cross_kv.size(3);
    in[i].do_sample = s.do_sample;
    in[i].temperature = s.temperature;
    in[i].top_k = s.top_k;
    in[i].top_p = s.top_p;
    // The same uniform as the CPU sampler draws (counter_rng.h), so a seed means the same stream.
    in[i].uniform = s.do_sample ? counter_uniform(s.seed, s.sample, s.step) : 0;
  }
  cuda_->step(in, next);
}
#endif

}  // namespace mentor_kd::generate
