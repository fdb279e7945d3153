#include "generate/causal_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "causal/rotary_embedding.h"
#include "generate/decode_attention.h"
#include "generate/sampler.h"
#include "t5/rms_norm.h"

namespace mentor_kd::generate {
namespace {

struct CausalPrepared : PreparedRequest {
  int64_t prompt_length = 0;
  std::vector<at::Tensor> k, v;  // per layer [Hkv, P, d], the engine's dtype
  at::Tensor logits;             // [V] float32: the first new token's
};

const CausalPrepared& prepared_of(const DecodeRow& r) { return *static_cast<const CausalPrepared*>(r.prepared); }

// Cache positions the row has filled after its last step: the prompt, then one per token fed.
int64_t filled(const DecodeRow& r) { return r.fresh ? 0 : prepared_of(r).prompt_length + r.step - 1; }

}  // namespace

CausalDecoder::CausalDecoder(std::shared_ptr<causal::CausalLM> model, int64_t slots, at::ScalarType dtype)
    : model_(std::move(model)), config_(model_->config()), dtype_(dtype), slots_(slots) {
  if (!model_->device().is_cpu())
    throw std::invalid_argument("the generation engine serves causal models on the CPU (use generate() on " +
                                model_->device().str() + ")");
  H_ = config_.num_attention_heads, Hkv_ = config_.num_key_value_heads, d_ = config_.head_dim();
  D_ = config_.hidden_size, I_ = config_.intermediate_size;
  if (d_ > 256) throw std::invalid_argument("the generation engine supports head_dim <= 256");
  qkv_width_ = (H_ + 2 * Hkv_) * d_;
  auto in_dtype = [&](const at::Tensor& t) { return t.defined() ? t.to(dtype_).contiguous() : t; };
  const auto& src = model_->layers();
  L_ = static_cast<int64_t>(src.size());
  for (const auto& w : src) {
    Layer l;
    l.input_norm = in_dtype(w.input_norm);
    l.post_norm = in_dtype(w.post_attention_norm);
    l.qkv = DecodeLinear(in_dtype(at::cat({w.attn.q, w.attn.k, w.attn.v}, 0)), dtype_);
    if (w.attn.q_bias.defined()) l.qkv_bias = in_dtype(at::cat({w.attn.q_bias, w.attn.k_bias, w.attn.v_bias}, 0));
    l.o = DecodeLinear(in_dtype(w.attn.o), dtype_);
    l.o_bias = in_dtype(w.attn.o_bias);
    l.gate_up = DecodeLinear(in_dtype(at::cat({w.mlp.gate, w.mlp.up}, 0)), dtype_);
    l.down = DecodeLinear(in_dtype(w.mlp.down), dtype_);
    layers_.push_back(std::move(l));
  }
  embed_ = in_dtype(model_->embed_weight());  // the step copies embedding rows by offset
  final_norm_ = in_dtype(model_->final_norm_weight());
  lm_head_ = DecodeLinear(in_dtype(model_->lm_head_weight()), dtype_);
  const auto opts = at::TensorOptions().dtype(dtype_);
  ws_x_ = at::empty({slots_, D_}, opts);
  ws_h_ = at::empty({slots_, D_}, opts);
  ws_qkv_ = at::empty({slots_, qkv_width_}, opts);
  ws_attn_ = at::empty({slots_, H_ * d_}, opts);
  ws_ff_ = at::empty({slots_, 2 * I_}, opts);
  ws_logits_ = at::empty({slots_, config_.vocab_size}, at::TensorOptions().dtype(at::kFloat));
  cache_ = SlotKvCache(L_, slots_, Hkv_, d_, dtype_);
}

std::shared_ptr<PreparedRequest> CausalDecoder::prepare(const GenerationRequest& request) {
  const int64_t P = static_cast<int64_t>(request.input_ids.size());
  at::Tensor ids = at::tensor(request.input_ids, at::TensorOptions().dtype(at::kLong));
  std::vector<causal::KvCacheLayer> caches;
  auto p = std::make_shared<CausalPrepared>();
  p->logits = model_->prefill(ids, caches).contiguous();
  p->prompt_length = P;
  for (const auto& c : caches) {
    p->k.push_back(c.k[0].narrow(1, 0, P).to(dtype_).contiguous());
    p->v.push_back(c.v[0].narrow(1, 0, P).to(dtype_).contiguous());
  }
  return p;
}

void CausalDecoder::ensure_capacity(const std::vector<DecodeRow>& rows) {
  int64_t need = 1, bound = 1;
  for (const auto& r : rows) {
    const int64_t P = prepared_of(r).prompt_length;
    need = std::max(need, P + r.step + 1);
    bound = std::max(bound, P + r.max_new_tokens);
  }
  cache_.reserve(need, bound);
}

void CausalDecoder::move_slot(int64_t from, int64_t to, const DecodeRow& row) { cache_.move(from, to, filled(row)); }

void CausalDecoder::rotary(const std::vector<int64_t>& positions, at::Tensor& cos, at::Tensor& sin) const {
  const int64_t n = static_cast<int64_t>(positions.size());
  auto lopts = at::TensorOptions().dtype(at::kLong);
  if (config_.rope_scaling != causal::RopeScaling::Dynamic) {
    const causal::RotaryTables t =
        causal::rotary_tables(config_, at::tensor(positions, lopts).view({n, 1}), 1, dtype_);  // [n, 1, 1, d]
    cos = t.cos.view({n, 1, d_});
    sin = t.sin.view({n, 1, d_});
    return;
  }
  // Dynamic NTK scaling: the base depends on the keys the row's attention sees (its position + 1).
  std::vector<at::Tensor> c(n), s(n);
  for (int64_t i = 0; i < n; ++i) {
    const causal::RotaryTables t =
        causal::rotary_tables(config_, at::full({1, 1}, positions[i], lopts), positions[i] + 1, dtype_);
    c[i] = t.cos.view({1, 1, d_});
    s[i] = t.sin.view({1, 1, d_});
  }
  cos = at::cat(c, 0);
  sin = at::cat(s, 0);
}

void CausalDecoder::next_tokens(const std::vector<DecodeRow>& rows, int64_t* next) {
  ensure_capacity(rows);
  const int64_t n = static_cast<int64_t>(rows.size());
  const size_t es = c10::elementSize(dtype_);
  // Fresh rows: their prompt's K/V into their slots; they compute at position P (overwritten by their
  // first real input next step) and take their logits from the prefill.
  std::vector<int64_t> pos(n);
  for (int64_t i = 0; i < n; ++i) {
    const DecodeRow& r = rows[i];
    const CausalPrepared& p = prepared_of(r);
    if (r.fresh) {
      for (int64_t l = 0; l < L_; ++l) cache_.write_prefix(l, i, p.k[l], p.v[l]);
      pos[i] = p.prompt_length;
    } else {
      pos[i] = p.prompt_length + r.step - 1;
    }
  }
  {
    const char* emb = static_cast<const char*>(embed_.data_ptr());
    char* xp = static_cast<char*>(ws_x_.data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t token = rows[i].fresh ? 0 : rows[i].token;
      std::memcpy(xp + i * D_ * es, emb + token * D_ * es, D_ * es);
    }
  }
  at::Tensor cos, sin;
  rotary(pos, cos, sin);
  at::Tensor x = ws_x_.narrow(0, 0, n), h = ws_h_.narrow(0, 0, n), qkv = ws_qkv_.narrow(0, 0, n);
  at::Tensor q = qkv.narrow(1, 0, H_ * d_).view({n, H_, d_});
  at::Tensor k = qkv.narrow(1, H_ * d_, Hkv_ * d_).view({n, Hkv_, d_});
  const int64_t half = d_ / 2;
  // x·cos + rotate_half(x)·sin, rotate_half(x) = cat(-x[d/2:], x[:d/2]), written back over x.
  auto rope = [&](const at::Tensor& t) {
    at::Tensor rotated = at::cat({-t.narrow(-1, half, half), t.narrow(-1, 0, half)}, -1);
    t.copy_(t * cos + rotated * sin);
  };
  const double eps = config_.rms_norm_eps;

  AttendRows attn;
  attn.heads = H_, attn.d_kv = d_, attn.kv_group = H_ / Hkv_;
  attn.divisor = static_cast<float>(std::sqrt(static_cast<double>(d_)));
  attn.q_stride = qkv_width_;
  attn.k.resize(n), attn.v.resize(n), attn.head_stride.assign(n, cache_.head_stride()), attn.lengths.resize(n);
  for (int64_t i = 0; i < n; ++i) attn.lengths[i] = pos[i] + 1;
  for (int64_t l = 0; l < L_; ++l) {
    const Layer& w = layers_[l];
    h.copy_(t5::rms_norm(x, w.input_norm, eps));
    w.qkv.apply(ws_h_, n, ws_qkv_, false);  // [n, (H + 2 Hkv) d]
    if (w.qkv_bias.defined()) qkv.add_(w.qkv_bias);
    rope(q);
    rope(k);
    const char* qkv_p = static_cast<const char*>(ws_qkv_.data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      const char* row = qkv_p + i * qkv_width_ * es;  // q [H d] | k [Hkv d] | v [Hkv d]
      cache_.write_position(l, i, pos[i], row + H_ * d_ * es, row + (H_ + Hkv_) * d_ * es);
      attn.k[i] = cache_.k_data(l, i);
      attn.v[i] = cache_.v_data(l, i);
    }
    attn.q = qkv_p;
    attend_rows(attn, dtype_, ws_attn_.data_ptr());
    w.o.apply(ws_attn_, n, ws_x_, true);
    if (w.o_bias.defined()) x.add_(w.o_bias);

    h.copy_(t5::rms_norm(x, w.post_norm, eps));
    w.gate_up.apply(ws_h_, n, ws_ff_, false);  // [n, 2I]: gate | up
    at::Tensor gate = ws_ff_.narrow(0, 0, n).narrow(1, 0, I_);
    gate.copy_(at::silu(gate).mul_(ws_ff_.narrow(0, 0, n).narrow(1, I_, I_)));  // feeds down from the first I columns
    w.down.apply(ws_ff_, n, ws_x_, true);
  }
  h.copy_(t5::rms_norm(x, final_norm_, eps));
  lm_head_.apply(ws_h_, n, ws_logits_, false);  // [n, V] float32
  at::Tensor logits = ws_logits_.narrow(0, 0, n);
  std::vector<RowSampling> rs(n);
  for (int64_t i = 0; i < n; ++i) {
    rs[i] = rows[i].sampling;
    if (rows[i].fresh) logits[i].copy_(prepared_of(rows[i]).logits);
  }
  sample_rows(logits, rs, next);
}

}  // namespace mentor_kd::generate
