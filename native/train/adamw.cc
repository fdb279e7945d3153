#include "train/adamw.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <stdexcept>
#include <unordered_map>

namespace mentor_kd::train {

void AdamWOptions::validate() const {
  auto in01 = [](double b) { return std::isfinite(b) && b >= 0 && b < 1; };
  if (!in01(beta1)) throw std::invalid_argument("adamw: adam_beta1 must be in [0, 1), got " + std::to_string(beta1));
  if (!in01(beta2)) throw std::invalid_argument("adamw: adam_beta2 must be in [0, 1), got " + std::to_string(beta2));
  if (!(std::isfinite(eps) && eps > 0)) throw std::invalid_argument("adamw: adam_epsilon must be > 0");
  if (!(std::isfinite(weight_decay) && weight_decay >= 0))
    throw std::invalid_argument("adamw: weight_decay must be >= 0");
}

bool AdamW::decays(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (name.find("bias") != std::string::npos) return false;
  if (ends_with("layer_norm.weight") || ends_with("final_layer_norm.weight") || name.find("norm") != std::string::npos)
    return false;
  return true;
}

AdamW::AdamW(const io::NamedTensors& params, AdamWOptions options) : options_(options) {
  options_.validate();
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    Slot s;
    s.name = name;
    s.param = p;
    auto f32 = p.options().dtype(at::kFloat);
    if (p.scalar_type() != at::kFloat) s.master = p.detach().to(at::kFloat).contiguous();
    s.exp_avg = at::zeros(p.sizes(), f32);
    s.exp_avg_sq = at::zeros(p.sizes(), f32);
    s.decay = decays(name);
    slots_.push_back(std::move(s));
  }
}

int64_t AdamW::num_decayed() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s.decay ? 1 : 0;
  return n;
}

void AdamW::step(double lr, double grad_scale) {
  at::NoGradGuard no_grad;
  for (auto& s : slots_) update(s, s.param.grad(), lr, grad_scale);
}

void AdamW::step_with_grads(const std::vector<at::Tensor>& grads, double lr, double grad_scale) {
  if (grads.size() != slots_.size())
    throw std::invalid_argument("adamw: " + std::to_string(grads.size()) + " gradients for " +
                                std::to_string(slots_.size()) + " parameters");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < slots_.size(); ++i) update(slots_[i], grads[i], lr, grad_scale);
}

void AdamW::update(Slot& s, const at::Tensor& g, double lr, double grad_scale) {
  if (!g.defined()) return;  // as torch.optim: no gradient, no update, no step
  s.step += 1;
  at::Tensor& target = s.master.defined() ? s.master : s.param;
  if (target.device().is_cpu() && target.is_contiguous()) {
    update_cpu(s, g, lr, grad_scale);
  } else {
    update_generic(s, g, lr, grad_scale);
  }
  if (s.master.defined()) s.param.detach().copy_(s.master);
}

int64_t AdamW::state_bytes() const {
  int64_t n = 0;
  for (const auto& [name, t] : state_tensors()) n += static_cast<int64_t>(t.nbytes());
  return n;
}

namespace {

struct AdamWCoefficients {
  float decay, b1, b2, one_minus_b1, one_minus_b2, step_size, inv_bc2_sqrt, eps, grad_scale;
};

// One pass over a range: read p, g, m, v; write p, m, v (the ATen composition makes ~20
// passes over memory). __restrict and the clones let the loop vectorise.
__attribute__((target_clones("avx512f", "avx2", "default"))) void adamw_range(float* __restrict p, float* __restrict m,
                                                                              float* __restrict v,
                                                                              const float* __restrict g, int64_t n,
                                                                              const AdamWCoefficients c) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * c.grad_scale;
    const float mi = m[i] * c.b1 + c.one_minus_b1 * gi;
    const float vi = v[i] * c.b2 + c.one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) * c.inv_bc2_sqrt + c.eps;
    p[i] = p[i] * c.decay - c.step_size * (mi / denom);
  }
}

}  // namespace

void AdamW::update_cpu(Slot& s, const at::Tensor& grad_in, double lr, double grad_scale) {
  at::Tensor grad = grad_in.scalar_type() == at::kFloat ? grad_in.contiguous() : grad_in.to(at::kFloat).contiguous();
  at::Tensor& target = s.master.defined() ? s.master : s.param;
  float* p = target.data_ptr<float>();
  float* m = s.exp_avg.data_ptr<float>();
  float* v = s.exp_avg_sq.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  const double bc1 = 1.0 - std::pow(options_.beta1, static_cast<double>(s.step));
  const double bc2 = 1.0 - std::pow(options_.beta2, static_cast<double>(s.step));
  AdamWCoefficients c;
  c.decay = s.decay ? static_cast<float>(1.0 - lr * options_.weight_decay) : 1.0f;
  c.b1 = static_cast<float>(options_.beta1);
  c.b2 = static_cast<float>(options_.beta2);
  c.one_minus_b1 = static_cast<float>(1.0 - options_.beta1);
  c.one_minus_b2 = static_cast<float>(1.0 - options_.beta2);
  c.step_size = static_cast<float>(lr / bc1);
  c.inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  c.eps = static_cast<float>(options_.eps);
  c.grad_scale = static_cast<float>(grad_scale);
  // Chunk boundaries depend only on the size, so results do not depend on the thread count.
  at::parallel_for(0, target.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    adamw_range(p + begin, m + begin, v + begin, g + begin, end - begin, c);
  });
}

void AdamW::update_generic(Slot& s, const at::Tensor& grad_in, double lr, double grad_scale) {
  at::Tensor& target = s.master.defined() ? s.master : s.param;
  at::Tensor t = target.detach();
  at::Tensor g = grad_in.to(at::kFloat);
  if (grad_scale != 1.0) g = g * grad_scale;
  const double bc1 = 1.0 - std::pow(options_.beta1, static_cast<double>(s.step));
  const double bc2 = 1.0 - std::pow(options_.beta2, static_cast<double>(s.step));
  if (s.decay && options_.weight_decay != 0) t.mul_(1.0 - lr * options_.weight_decay);
  s.exp_avg.mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
  s.exp_avg_sq.mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
  at::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(options_.eps);
  t.addcdiv_(s.exp_avg, denom, -lr / bc1);
}

io::NamedTensors AdamW::state_tensors() const {
  io::NamedTensors out;
  for (const auto& s : slots_) {
    out.emplace_back("exp_avg." + s.name, s.exp_avg);
    out.emplace_back("exp_avg_sq." + s.name, s.exp_avg_sq);
    out.emplace_back("step." + s.name, at::full({1}, s.step, at::TensorOptions().dtype(at::kLong)));
    if (s.master.defined()) out.emplace_back("master." + s.name, s.master);
  }
  return out;
}

void AdamW::load_state(const io::NamedTensors& tensors, const std::string& source) {
  std::unordered_map<std::string, const at::Tensor*> by_name;
  for (const auto& [n, t] : tensors) by_name[n] = &t;
  auto get = [&](const std::string& key, const Slot& s, bool shaped) -> const at::Tensor& {
    auto it = by_name.find(key);
    if (it == by_name.end()) throw std::runtime_error(source + ": optimizer state has no tensor '" + key + "'");
    if (shaped && it->second->sizes() != s.param.sizes())
      throw std::runtime_error(source + ": optimizer tensor '" + key + "' has shape [" +
                               c10::Join(", ", it->second->sizes()) + "] but parameter '" + s.name + "' has [" +
                               c10::Join(", ", s.param.sizes()) + "]");
    return *it->second;
  };
  at::NoGradGuard no_grad;
  // Validate everything before changing anything.
  for (const auto& s : slots_) {
    get("exp_avg." + s.name, s, true);
    get("exp_avg_sq." + s.name, s, true);
    get("step." + s.name, s, false);
    if (s.master.defined()) get("master." + s.name, s, true);
  }
  for (auto& s : slots_) {
    s.exp_avg.copy_(get("exp_avg." + s.name, s, true));
    s.exp_avg_sq.copy_(get("exp_avg_sq." + s.name, s, true));
    s.step = get("step." + s.name, s, false).to(at::kLong).reshape({-1})[0].item<int64_t>();
    if (s.master.defined()) s.master.copy_(get("master." + s.name, s, true));
  }
}

void AdamW::sync_masters_from_params() {
  at::NoGradGuard no_grad;
  for (auto& s : slots_)
    if (s.master.defined()) s.master.copy_(s.param.detach());
}

double global_grad_norm(const io::NamedTensors& params) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const auto& [name, p] : params) {
    const at::Tensor& g = p.grad();
    if (g.defined()) norms.push_back(at::linalg_vector_norm(g, 2, c10::nullopt, false, at::kFloat));
  }
  if (norms.empty()) return 0.0;
  return at::linalg_vector_norm(at::stack(norms), 2).item<double>();
}

double clip_coefficient(double norm, double max_norm) {
  if (!(max_norm > 0)) return 1.0;
  return std::min(1.0, max_norm / (norm + 1e-6));
}

}  // namespace mentor_kd::train
