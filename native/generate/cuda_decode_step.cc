#include "generate/cuda_decode_step.h"

#ifdef MENTOR_KD_WITH_CUDA
#include <c10/core/InferenceMode.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "t5/rms_norm.h"

namespace mentor_kd::generate {
namespace {

// Rows of the static input buffer in_dev_ [8, slots] (float64 holds every id and position exactly).
enum InputRow : int64_t { kToken = 0, kPos, kSource, kSample, kTemperature, kTopK, kTopP, kUniform, kInputRows };

at::Tensor grown(const at::Tensor& old, int64_t dim, int64_t size) {
  std::vector<int64_t> shape = old.sizes().vec();
  shape[dim] = size;
  at::Tensor t = at::zeros(shape, old.options());
  t.narrow(dim, 0, old.size(dim)).copy_(old);
  return t;
}

}  // namespace

CudaDecodeStep::CudaDecodeStep(std::shared_ptr<t5::T5Model> model, int64_t slots)
    : model_(std::move(model)),
      config_(model_->config()),
      dtype_(model_->dtype()),
      device_(model_->device().has_index() ? model_->device() : at::Device(at::kCUDA, c10::cuda::current_device())),
      slots_(slots),
      stream_(c10::cuda::getStreamFromPool(false, model_->device().index())) {
  if (!device_.is_cuda()) throw std::invalid_argument("CudaDecodeStep: the model must be on a CUDA device");
  c10::cuda::CUDAGuard guard(device_);
  H_ = config_.num_heads, dk_ = config_.d_kv, I_ = H_ * dk_, D_ = config_.d_model, F_ = config_.d_ff;
  V_ = config_.vocab_size;
  const auto& blocks = model_->decoder_blocks();
  L_ = static_cast<int64_t>(blocks.size());
  for (const auto& b : blocks) {
    self_qkv_.push_back(at::cat({b.self_attn.q, b.self_attn.k, b.self_attn.v}, 0));
    cross_q_.push_back(b.cross_attn.q);
    cross_o_.push_back(b.cross_attn.o);
    ff_wi_.push_back(config_.is_gated_act ? at::cat({b.ff.wi_0, b.ff.wi_1}, 0) : b.ff.wi);
  }
  const auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  for (int64_t l = 0; l < L_; ++l) {
    cache_k_.push_back(at::zeros({slots_, H_, 0, dk_}, opts));
    cache_v_.push_back(at::zeros({slots_, H_, 0, dk_}, opts));
    cross_k_.push_back(at::zeros({slots_, H_, 0, dk_}, opts));
    cross_v_.push_back(at::zeros({slots_, H_, 0, dk_}, opts));
  }
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  in_host_ = at::zeros({kInputRows, slots_}, f64.pinned_memory(true));
  in_dev_ = at::zeros({kInputRows, slots_}, f64.device(device_));
  next_dev_ = at::zeros({slots_}, at::TensorOptions().dtype(at::kLong).device(device_));
  next_host_ = at::zeros({slots_}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
}

void CudaDecodeStep::reserve(int64_t capacity, int64_t max_source) {
  if (capacity <= capacity_ && max_source <= max_source_) return;
  c10::cuda::CUDAGuard guard(device_);
  c10::cuda::CUDAStreamGuard on(stream_);
  c10::InferenceMode inference;
  if (capacity > capacity_) {
    for (int64_t l = 0; l < L_; ++l) {
      cache_k_[l] = grown(cache_k_[l], 2, capacity);
      cache_v_[l] = grown(cache_v_[l], 2, capacity);
    }
    capacity_ = capacity;
    // Bias by distance d = query - key, as the CPU step's table (engine.cc).
    at::Tensor rel = -at::arange(capacity_, at::TensorOptions().dtype(at::kLong).device(device_));
    at::Tensor buckets = t5::relative_position_bucket(rel, false, config_.relative_attention_num_buckets,
                                                      config_.relative_attention_max_distance);
    bias_table_ = at::embedding(model_->decoder_blocks()[0].self_attn.relative_attention_bias, buckets)
                      .t()
                      .to(at::kFloat)
                      .contiguous();
  }
  if (max_source > max_source_) {
    for (int64_t l = 0; l < L_; ++l) {
      cross_k_[l] = grown(cross_k_[l], 2, max_source);
      cross_v_[l] = grown(cross_v_[l], 2, max_source);
    }
    max_source_ = max_source;
  }
  graph_.reset();  // the buffers moved: capture again before the next step
}

void CudaDecodeStep::set_cross(int64_t slot, const at::Tensor& cross_kv) {
  c10::cuda::CUDAGuard guard(device_);
  // The encoder wrote cross_kv on the caller's stream; the copies below run on stream_.
  c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
  c10::cuda::CUDAStreamGuard on(stream_);
  c10::InferenceMode inference;
  const int64_t S = cross_kv.size(3);
  if (S > max_source_) throw std::logic_error("CudaDecodeStep::set_cross: source longer than reserved");
  for (int64_t l = 0; l < L_; ++l) {
    cross_k_[l][slot].narrow(1, 0, S).copy_(cross_kv[l][0]);
    cross_v_[l][slot].narrow(1, 0, S).copy_(cross_kv[l][1]);
  }
}

void CudaDecodeStep::move_slot(int64_t from, int64_t to, int64_t positions) {
  c10::cuda::CUDAGuard guard(device_);
  c10::cuda::CUDAStreamGuard on(stream_);
  c10::InferenceMode inference;
  for (int64_t l = 0; l < L_; ++l) {
    if (positions > 0) {
      cache_k_[l][to].narrow(1, 0, positions).copy_(cache_k_[l][from].narrow(1, 0, positions));
      cache_v_[l][to].narrow(1, 0, positions).copy_(cache_v_[l][from].narrow(1, 0, positions));
    }
    cross_k_[l][to].copy_(cross_k_[l][from]);
    cross_v_[l][to].copy_(cross_v_[l][from]);
  }
}

void CudaDecodeStep::body() {
  const int64_t S = slots_, C = capacity_, M = max_source_;
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(device_);
  const double eps = config_.layer_norm_epsilon;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  at::Tensor tok = in_dev_[kToken].to(at::kLong), pos = in_dev_[kPos].to(at::kLong);
  at::Tensor src = in_dev_[kSource].to(at::kLong);

  // Masks and bias, shared by every layer: [S, H, C] self (bias + future keys at -inf), [S, 1, M] cross.
  at::Tensor dist = pos.unsqueeze(1) - at::arange(C, lopt).unsqueeze(0);  // [S, C]
  at::Tensor self_bias = bias_table_.index_select(1, dist.clamp_min(0).flatten()).view({H_, S, C}).permute({1, 0, 2});
  self_bias = self_bias.masked_fill((dist < 0).unsqueeze(1), neg_inf);
  at::Tensor cross_bias =
      at::zeros({S, 1, M}, at::TensorOptions().dtype(at::kFloat).device(device_))
          .masked_fill((at::arange(M, lopt).unsqueeze(0) >= src.unsqueeze(1)).unsqueeze(1), neg_inf);
  at::Tensor write_at = pos.view({S, 1, 1, 1}).expand({S, H_, 1, dk_});

  auto attend = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias) {
    // q [S, H, dk]; k, v [S, H, T, dk]; bias [S, H | 1, T] float32 -> [S, I]
    at::Tensor scores = at::matmul(q.unsqueeze(2), k.transpose(2, 3)).squeeze(2).to(at::kFloat) + bias;
    at::Tensor p = at::softmax(scores, -1).to(dtype_);
    return at::matmul(p.unsqueeze(2), v).squeeze(2).reshape({S, I_});
  };
  auto act = [&](const at::Tensor& t) {
    switch (config_.act) {
      case t5::Activation::Relu: return at::relu(t);
      case t5::Activation::GeluNew: return at::gelu(t, "tanh");
      case t5::Activation::Gelu: return at::gelu(t);
      case t5::Activation::Silu: return at::silu(t);
    }
    return t;
  };

  const auto& blocks = model_->decoder_blocks();
  at::Tensor x = at::embedding(model_->shared_weight(), tok);  // [S, D]
  for (int64_t l = 0; l < L_; ++l) {
    const auto& b = blocks[l];
    at::Tensor qkv = at::linear(t5::rms_norm(x, b.self_norm, eps), self_qkv_[l]).view({S, 3, H_, dk_});
    cache_k_[l].scatter_(2, write_at, qkv.select(1, 1).unsqueeze(2));
    cache_v_[l].scatter_(2, write_at, qkv.select(1, 2).unsqueeze(2));
    x = x + at::linear(attend(qkv.select(1, 0), cache_k_[l], cache_v_[l], self_bias), b.self_attn.o);

    at::Tensor q = at::linear(t5::rms_norm(x, b.cross_norm, eps), cross_q_[l]).view({S, H_, dk_});
    x = x + at::linear(attend(q, cross_k_[l], cross_v_[l], cross_bias), cross_o_[l]);

    at::Tensor a = at::linear(t5::rms_norm(x, b.ff_norm, eps), ff_wi_[l]);
    at::Tensor g = config_.is_gated_act ? act(a.narrow(1, 0, F_)) * a.narrow(1, F_, F_) : act(a);
    x = x + at::linear(g, b.ff.wo);
  }
  at::Tensor h = t5::rms_norm(x, model_->decoder_final_norm(), eps);
  if (config_.tie_word_embeddings) h = h * std::pow(static_cast<double>(D_), -0.5);
  at::Tensor logits = at::linear(h, model_->lm_head_weight()).to(at::kFloat);  // [S, V]

  // Sampler: temperature, top-k (keep >= the k-th largest, ties kept), top-p (HF: drop the tokens whose
  // ascending cumulative probability is <= 1 - top_p, never the most likely), then the first token
  // whose cumulative probability in vocabulary order exceeds u · total.
  at::Tensor greedy = logits.argmax(-1);
  at::Tensor s = logits / in_dev_[kTemperature].to(at::kFloat).unsqueeze(1);
  at::Tensor k = in_dev_[kTopK].to(at::kLong);
  k = at::where((k > 0).logical_and(k < V_), k, at::full_like(k, V_));
  at::Tensor kth = std::get<0>(s.sort(-1, true)).gather(1, (k - 1).unsqueeze(1));
  s = s.masked_fill(s < kth, neg_inf);
  auto asc = s.sort(-1, false);
  at::Tensor cum_asc = at::softmax(std::get<0>(asc), -1).cumsum(-1);
  at::Tensor top_p = in_dev_[kTopP].to(at::kFloat).unsqueeze(1);
  at::Tensor drop_sorted = (cum_asc <= 1 - top_p).logical_and(at::arange(V_, lopt).unsqueeze(0) < V_ - 1);
  at::Tensor drop = at::zeros_like(drop_sorted).scatter(1, std::get<1>(asc), drop_sorted);
  s = s.masked_fill(drop.logical_and(top_p < 1), neg_inf);
  at::Tensor cum = at::softmax(s, -1).to(at::kDouble).cumsum(-1);  // [S, V]
  at::Tensor target = (in_dev_[kUniform] * cum.select(1, V_ - 1)).unsqueeze(1);
  at::Tensor drawn = at::searchsorted(cum, target, false, true).squeeze(1).clamp_max(V_ - 1);
  next_dev_.copy_(at::where(in_dev_[kSample] > 0.5, drawn, greedy));
}

void CudaDecodeStep::capture() {
  // Warm-up on the side stream first (cuBLAS handles, workspaces, lazy kernels), then capture.
  body();
  stream_.synchronize();
  graph_ = std::make_unique<at::cuda::CUDAGraph>();
  graph_->capture_begin();
  body();
  graph_->capture_end();
}

void CudaDecodeStep::step(const std::vector<CudaRowInput>& rows, int64_t* out) {
  const int64_t n = static_cast<int64_t>(rows.size());
  if (n > slots_) throw std::logic_error("CudaDecodeStep::step: more rows than slots");
  c10::cuda::CUDAGuard guard(device_);
  c10::cuda::CUDAStreamGuard on(stream_);
  c10::InferenceMode inference;
  double* in = in_host_.data_ptr<double>();
  for (int64_t i = 0; i < slots_; ++i) {
    CudaRowInput r = i < n ? rows[i] : CudaRowInput{};  // idle slots: token 0 at position 0, one source key
    in[kToken * slots_ + i] = static_cast<double>(r.token);
    in[kPos * slots_ + i] = static_cast<double>(r.pos);
    in[kSource * slots_ + i] = static_cast<double>(std::max<int64_t>(1, r.source_length));
    in[kSample * slots_ + i] = r.do_sample ? 1.0 : 0.0;
    in[kTemperature * slots_ + i] = r.do_sample ? r.temperature : 1.0;
    in[kTopK * slots_ + i] = static_cast<double>(r.top_k);
    in[kTopP * slots_ + i] = r.top_p;
    in[kUniform * slots_ + i] = r.uniform;
  }
  in_dev_.copy_(in_host_, /*non_blocking=*/true);
  if (!graph_) capture();
  graph_->replay();
  next_host_.copy_(next_dev_, /*non_blocking=*/true);
  stream_.synchronize();
  const int64_t* next = next_host_.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) out[i] = next[i];
}

}  // namespace mentor_kd::generate
#endif  // MENTOR_KD_WITH_CUDA
