#include "generate/engine.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "generate/counter_rng.h"
#include "generate/decode_attention.h"
#include "generate/sampler.h"
#include "t5/rms_norm.h"

namespace mentor_kd::generate {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GenerationEngine::GenerationEngine(std::shared_ptr<t5::T5Model> model, const EngineOptions& options)
    : config_(model->config()), dtype_(options.dtype), slots_(options.slots) {
  if (slots_ < 1 || slots_ > 4096)
    throw std::invalid_argument("slots must be in [1, 4096], got " + std::to_string(slots_));
  if (dtype_ != at::kFloat && dtype_ != at::kBFloat16)
    throw std::invalid_argument("the generation engine's dtype must be float32 or bfloat16");
#ifdef MENTOR_KD_WITH_CUDA
  const bool on_cuda = model->device().is_cuda();
#else
  const bool on_cuda = false;
#endif
  if (!model->device().is_cpu() && !on_cuda)
    throw std::invalid_argument("the generation engine runs on the CPU or CUDA (use generate() on other devices)");
  if (config_.d_kv > 256) throw std::invalid_argument("the generation engine supports d_kv <= 256");
  c10::InferenceMode inference;
  // An adapted (LoRA) model decodes from a merged copy: the engine reads the base weights only.
  model_ = model->dtype() == dtype_ && !model->lora() ? model : model->converted(dtype_);
  H_ = config_.num_heads, dk_ = config_.d_kv, I_ = H_ * dk_, D_ = config_.d_model, F_ = config_.d_ff;
  const auto& blocks = model_->decoder_blocks();
  L_ = static_cast<int64_t>(blocks.size());
#ifdef MENTOR_KD_WITH_CUDA
  if (on_cuda) {
    // The step's own weights and buffers live in the CUDA step; the engine keeps what encode() needs.
    for (const auto& b : blocks) cross_kv_w_.push_back(at::cat({b.cross_attn.k, b.cross_attn.v}, 0));
    cuda_ = std::make_unique<CudaDecodeStep>(model_, slots_);
    cache_k_.resize(L_);
    cache_v_.resize(L_);
    rows_.reserve(slots_);
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
  cache_k_.resize(L_);
  cache_v_.resize(L_);
  rows_.reserve(slots_);
}

GenerationEngine::Linear GenerationEngine::make_linear(const at::Tensor& weight) const {
  Linear l;
  if (dtype_ == at::kFloat)
    l.packed = PackedLinear(weight.contiguous());
  else
    l.weight = weight;
  return l;
}

void GenerationEngine::linear(const Linear& w, const at::Tensor& in, int64_t n, const at::Tensor& out,
                              bool accumulate) const {
  if (w.packed.defined()) {
    w.packed.apply(in.data_ptr<float>(), in.size(1), n, out.data_ptr<float>(), out.size(1), accumulate);
    return;
  }
  at::Tensor o = out.narrow(0, 0, n), y = at::linear(in.narrow(0, 0, n).narrow(1, 0, w.weight.size(1)), w.weight);
  if (accumulate)
    o.add_(y);
  else
    o.copy_(y);
}

void GenerationEngine::submit(std::vector<GenerationRequest> requests, const std::string& where) {
  for (size_t i = 0; i < requests.size(); ++i)
    validate_request(requests[i], config_, where + "[" + std::to_string(i) + "]");
  std::lock_guard<std::mutex> lock(queue_mutex_);
  for (auto& r : requests) incoming_.push_back(std::move(r));
}

bool GenerationEngine::idle() {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  return incoming_.empty() && queue_.empty() && rows_.empty();
}

bool GenerationEngine::is_eos(int64_t id) const {
  for (int64_t e : config_.eos_token_ids)
    if (e == id) return true;
  return false;
}

void GenerationEngine::encode(Pending& p) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t S = static_cast<int64_t>(p.request.input_ids.size());
  const at::Device device = model_->device();
  at::Tensor ids = at::tensor(p.request.input_ids, at::TensorOptions().dtype(at::kLong)).view({1, S}).to(device);
  at::Tensor mask = at::ones({1, S}, at::TensorOptions().dtype(at::kLong).device(device));
  at::Tensor enc = model_->encode(ids, mask, false);  // [1, S, D]
  p.cross_kv = at::empty({L_, 2, H_, S, dk_}, at::TensorOptions().dtype(dtype_).device(device));
  for (int64_t l = 0; l < L_; ++l)
    p.cross_kv[l].copy_(at::linear(enc[0], cross_kv_w_[l]).view({S, 2, H_, dk_}).permute({1, 2, 0, 3}));
  stats_.encoder_passes++;
  stats_.encode_seconds += seconds_since(t0);
}

void GenerationEngine::take_incoming_locked() {
  for (auto& r : incoming_) {
    auto p = std::make_shared<Pending>();
    p->request = std::move(r);
    p->result.tag = p->request.tag;
    p->result.sequences.resize(p->request.samples);
    queue_.push_back(std::move(p));
  }
  incoming_.clear();
}

void GenerationEngine::admit() {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    take_incoming_locked();
  }
  while (static_cast<int64_t>(rows_.size()) < slots_ && !queue_.empty()) {
    std::shared_ptr<Pending> p = queue_.front();
    if (!p->cross_kv.defined()) encode(*p);
    Row r;
    r.req = p;
    r.sample = p->next_sample++;
    r.pos = 0;
    r.last = config_.decoder_start_token_id;
    r.tokens.reserve(std::min<int64_t>(p->request.max_new_tokens, 512));
    if (p->next_sample == p->request.samples) queue_.pop_front();
    rows_.push_back(std::move(r));
  }
}

void GenerationEngine::ensure_capacity(int64_t need) {
  if (need <= capacity_) return;
  int64_t bound = need;
  for (const auto& r : rows_) bound = std::max(bound, r.req->request.max_new_tokens);
  const int64_t next = std::min(bound, std::max<int64_t>({need, 2 * capacity_, 64}));
#ifdef MENTOR_KD_WITH_CUDA
  if (cuda_) {
    capacity_ = next;  // the CUDA step grows its own cache (next_tokens_cuda)
    return;
  }
#endif
  auto opts = at::TensorOptions().dtype(dtype_);
  for (int64_t l = 0; l < L_; ++l) {
    at::Tensor k = at::empty({slots_, H_, next, dk_}, opts), v = at::empty({slots_, H_, next, dk_}, opts);
    if (capacity_ > 0) {
      k.narrow(2, 0, capacity_).copy_(cache_k_[l]);
      v.narrow(2, 0, capacity_).copy_(cache_v_[l]);
    }
    cache_k_[l] = k;
    cache_v_[l] = v;
  }
  capacity_ = next;
  // The decoder's relative-position bias by distance d = query - key (keys never follow the query):
  // HF's bucket of (key - query) = -d, looked up in block 0's table; one [H, capacity] table for every
  // layer and step.
  at::Tensor rel = -at::arange(capacity_, at::TensorOptions().dtype(at::kLong));
  at::Tensor buckets = t5::relative_position_bucket(rel, false, config_.relative_attention_num_buckets,
                                                    config_.relative_attention_max_distance);
  bias_table_ = at::embedding(model_->decoder_blocks()[0].self_attn.relative_attention_bias, buckets)
                    .t()
                    .to(at::kFloat)
                    .contiguous();
}

void GenerationEngine::move_row(int64_t from, int64_t to) {
  const int64_t pos = rows_[from].pos;
#ifdef MENTOR_KD_WITH_CUDA
  if (cuda_) {
    cuda_->move_slot(from, to, pos);
    rows_[to] = std::move(rows_[from]);
    return;
  }
#endif
  if (pos > 0) {
    for (int64_t l = 0; l < L_; ++l) {
      cache_k_[l][to].narrow(1, 0, pos).copy_(cache_k_[l][from].narrow(1, 0, pos));
      cache_v_[l][to].narrow(1, 0, pos).copy_(cache_v_[l][from].narrow(1, 0, pos));
    }
  }
  rows_[to] = std::move(rows_[from]);
}

void GenerationEngine::step(std::vector<GenerationResult>& finished) {
  const auto t0 = std::chrono::steady_clock::now();
  const double encode_before = stats_.encode_seconds;
  const int64_t n = static_cast<int64_t>(rows_.size());
  int64_t need = 1;
  for (const auto& r : rows_) need = std::max(need, r.pos + 1);
  ensure_capacity(need);
  std::vector<int64_t> next(n);
#ifdef MENTOR_KD_WITH_CUDA
  if (cuda_)
    next_tokens_cuda(next.data());
  else
#endif
    next_tokens_cpu(next.data());
  stats_.steps++;
  stats_.row_steps += n;
  finish_rows(next, finished);
  stats_.decode_seconds += seconds_since(t0) - (stats_.encode_seconds - encode_before);
}

void GenerationEngine::next_tokens_cpu(int64_t* next) {
  const int64_t n = static_cast<int64_t>(rows_.size());
  // Embedding rows straight into the residual stream x.
  const size_t es = c10::elementSize(dtype_);
  {
    const char* emb = static_cast<const char*>(shared_.data_ptr());
    char* xp = static_cast<char*>(ws_x_.data_ptr());
    for (int64_t i = 0; i < n; ++i) std::memcpy(xp + i * D_ * es, emb + rows_[i].last * D_ * es, D_ * es);
  }
  at::Tensor x = ws_x_.narrow(0, 0, n), h = ws_h_.narrow(0, 0, n);
  const double eps = config_.layer_norm_epsilon;

  AttendRows self;
  self.heads = H_, self.d_kv = dk_;
  self.q_stride = 3 * I_;
  self.k.resize(n), self.v.resize(n), self.head_stride.assign(n, capacity_ * dk_), self.lengths.resize(n);
  self.bias = bias_table_.data_ptr<float>();
  self.bias_stride = capacity_;
  AttendRows cross;
  cross.heads = H_, cross.d_kv = dk_;
  cross.q_stride = I_;
  cross.k.resize(n), cross.v.resize(n), cross.head_stride.resize(n), cross.lengths.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    self.lengths[i] = rows_[i].pos + 1;
    const int64_t S = rows_[i].req->cross_kv.size(3);
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
    char* qkv_p = static_cast<char*>(ws_qkv_.data_ptr());
    char* kc = static_cast<char*>(cache_k_[l].data_ptr());
    char* vc = static_cast<char*>(cache_v_[l].data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = rows_[i].pos;
      for (int64_t hd = 0; hd < H_; ++hd) {
        const int64_t dst = ((i * H_ + hd) * capacity_ + pos) * dk_;
        std::memcpy(kc + dst * es, qkv_p + (i * 3 * I_ + I_ + hd * dk_) * es, dk_ * es);
        std::memcpy(vc + dst * es, qkv_p + (i * 3 * I_ + 2 * I_ + hd * dk_) * es, dk_ * es);
      }
      self.k[i] = kc + i * H_ * capacity_ * dk_ * es;
      self.v[i] = vc + i * H_ * capacity_ * dk_ * es;
    }
    self.q = qkv_p;
    attend_rows(self, dtype_, attn_out);
    linear(self_o_[l], ws_attn_, n, ws_x_, true);

    h.copy_(t5::rms_norm(x, cross_norm_[l], eps));
    linear(cross_q_[l], ws_h_, n, ws_q_, false);
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor kv = rows_[i].req->cross_kv[l];
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
  if (dtype_ == at::kFloat)
    linear(lm_head_, ws_h_, n, ws_logits_, false);
  else
    logits.copy_(at::linear(h, lm_head_.weight));

  std::vector<RowSampling> rs(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto& req = rows_[i].req->request;
    rs[i].do_sample = req.do_sample;
    rs[i].temperature = req.temperature;
    rs[i].top_k = req.top_k;
    rs[i].top_p = req.top_p;
    rs[i].seed = req.seed;
    rs[i].sample = static_cast<uint64_t>(rows_[i].sample);
    rs[i].step = static_cast<uint64_t>(rows_[i].pos);
  }
  sample_rows(logits, rs, next);
}

#ifdef MENTOR_KD_WITH_CUDA
void GenerationEngine::next_tokens_cuda(int64_t* next) {
  const int64_t n = static_cast<int64_t>(rows_.size());
  int64_t max_source = 1;
  for (const auto& r : rows_) max_source = std::max(max_source, r.req->cross_kv.size(3));
  cuda_->reserve(capacity_, max_source);
  std::vector<CudaRowInput> in(n);
  for (int64_t i = 0; i < n; ++i) {
    Row& r = rows_[i];
    if (r.cross_pending) {
      cuda_->set_cross(i, r.req->cross_kv);
      r.cross_pending = false;
    }
    const auto& req = r.req->request;
    in[i].token = r.last;
    in[i].pos = r.pos;
    in[i].source_length = r.req->cross_kv.size(3);
    in[i].do_sample = req.do_sample;
    in[i].temperature = req.temperature;
    in[i].top_k = req.top_k;
    in[i].top_p = req.top_p;
    // The same uniform as the CPU sampler draws (counter_rng.h), so a seed means the same stream.
    in[i].uniform =
        req.do_sample ? counter_uniform(req.seed, static_cast<uint64_t>(r.sample), static_cast<uint64_t>(r.pos)) : 0;
  }
  cuda_->step(in, next);
}
#endif

void GenerationEngine::finish_rows(const std::vector<int64_t>& next, std::vector<GenerationResult>& finished) {
  const int64_t n = static_cast<int64_t>(rows_.size());
  std::vector<int64_t> holes;
  for (int64_t i = 0; i < n; ++i) {
    Row& r = rows_[i];
    r.tokens.push_back(next[i]);
    r.last = next[i];
    r.pos++;
    stats_.new_tokens++;
    const auto& req = r.req->request;
    const int64_t limit = req.sample_max_new_tokens.empty() ? req.max_new_tokens : req.sample_max_new_tokens[r.sample];
    if (!is_eos(next[i]) && static_cast<int64_t>(r.tokens.size()) < limit) continue;
    Pending& p = *r.req;
    std::vector<int64_t> seq;
    seq.reserve(r.tokens.size() + 1);
    seq.push_back(config_.decoder_start_token_id);
    seq.insert(seq.end(), r.tokens.begin(), r.tokens.end());
    p.result.new_tokens += static_cast<int64_t>(r.tokens.size());
    p.result.sequences[r.sample] = std::move(seq);
    if (++p.samples_done == p.request.samples) {
      finished.push_back(std::move(p.result));
      stats_.requests_done++;
    }
    r.req.reset();
    holes.push_back(i);
  }
  // Refill each finished row's slot at once with the next pending (request, sample); then close the
  // remaining holes by moving the last active rows down, so the active rows stay slots 0..n-1.
  std::vector<int64_t> open;
  for (int64_t hole : holes) {
    Row fresh;
    bool got = false;
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      take_incoming_locked();
    }
    if (!queue_.empty()) {
      std::shared_ptr<Pending> p = queue_.front();
      if (!p->cross_kv.defined()) encode(*p);
      fresh.req = p;
      fresh.sample = p->next_sample++;
      fresh.last = config_.decoder_start_token_id;
      if (p->next_sample == p->request.samples) queue_.pop_front();
      got = true;
    }
    if (got)
      rows_[hole] = std::move(fresh);
    else
      open.push_back(hole);
  }
  // Close holes lowest first with the highest active row.
  std::sort(open.begin(), open.end());
  std::vector<bool> is_open(rows_.size(), false);
  for (int64_t o : open) is_open[o] = true;
  for (int64_t o : open) {
    while (!rows_.empty() && is_open[rows_.size() - 1]) {
      is_open.pop_back();
      rows_.pop_back();
    }
    if (o >= static_cast<int64_t>(rows_.size())) break;
    const int64_t last = static_cast<int64_t>(rows_.size()) - 1;
    move_row(last, o);
    is_open[o] = false;
    rows_.pop_back();
    is_open.pop_back();
  }
  while (!rows_.empty() && !rows_.back().req) rows_.pop_back();
}

std::vector<GenerationResult> GenerationEngine::run_until_finished() {
  c10::InferenceMode inference;
  std::vector<GenerationResult> finished;
  while (finished.empty()) {
    admit();
    if (rows_.empty()) break;
    step(finished);
  }
  return finished;
}

std::vector<GenerationResult> GenerationEngine::run_all() {
  std::vector<GenerationResult> all;
  for (;;) {
    auto part = run_until_finished();
    if (part.empty()) break;
    for (auto& r : part) all.push_back(std::move(r));
  }
  return all;
}

}  // namespace mentor_kd::generate
