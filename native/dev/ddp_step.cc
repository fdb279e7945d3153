#include "dev/ddp_step.h"

#ifdef MENTOR_KD_WITH_C10D

#include <chrono>
#include <cmath>
#include <stdexcept>

namespace mentor_kd::dist {

DdpStepResult forward_backward(GradReducer& reducer, const std::vector<t5::Seq2SeqBatch>& micro_batches, bool train,
                               bool zero_grad, bool overlap) {
  const auto t0 = std::chrono::steady_clock::now();
  if (micro_batches.empty()) throw std::invalid_argument("microBatches is empty");
  Group& g = *reducer.group();
  t5::T5Model& m = *reducer.model();
  std::lock_guard<std::mutex> lock(m.mutex());

  // Validate everything before the first collective, so a bad batch fails on
  // this rank alone and leaves the group in step.
  std::vector<t5::Seq2SeqBatch> prepared;
  std::vector<int64_t> tokens;
  DdpStepResult r;
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    if (!micro_batches[i].labels.defined())
      throw std::invalid_argument("microBatches[" + std::to_string(i) + "].labels is required");
    try {
      prepared.push_back(m.prepare(micro_batches[i]));
    } catch (const std::exception& e) {
      throw std::invalid_argument("microBatches[" + std::to_string(i) + "]: " + e.what());
    }
    tokens.push_back(prepared.back().labels.ne(-100).sum().item<int64_t>());
    r.local_tokens += tokens.back();
  }
  if (zero_grad) m.zero_grad();

  at::Tensor count = at::full({1}, r.local_tokens, at::TensorOptions().dtype(at::kLong).device(g.comm_device()));
  g.run("token count", [&] { g.allreduce(count); });
  r.global_tokens = count.cpu().item<int64_t>();
  if (r.global_tokens == 0)
    throw std::invalid_argument("train step: no target tokens on any rank (every label is -100)");

  size_t last = micro_batches.size();  // the last micro-batch with tokens gets the armed backward
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] > 0) last = i;
  double local_sum = 0;
  bool armed = false;
  for (size_t i = 0; i < prepared.size(); ++i) {
    if (tokens[i] == 0) continue;  // its mean loss is NaN; it contributes nothing
    at::AutoGradMode grad(true);
    t5::ForwardOptions fo;
    fo.train = train;
    fo.need_logits = false;
    t5::ForwardOutput out = m.forward(prepared[i], fo);
    local_sum += out.loss.item<double>() * static_cast<double>(tokens[i]);
    if (i == last && overlap) {
      g.run("allreduceGradients (overlapped)", [&] { reducer.prepare_for_backward(1.0); });
      armed = true;
    }
    (out.loss * (static_cast<double>(tokens[i]) / static_cast<double>(r.global_tokens))).backward();
  }
  // Every rank runs the same sequence of collectives, tokens or not.
  if (!armed && overlap) g.run("allreduceGradients (overlapped)", [&] { reducer.prepare_for_backward(1.0); });
  if (!overlap) reducer.prepare_for_backward(1.0);
  g.run("allreduceGradients", [&] { r.reduce = reducer.finish_backward(); });

  at::Tensor sums = at::tensor({local_sum}, at::TensorOptions().dtype(at::kDouble)).to(g.comm_device());
  g.run("loss sums", [&] { g.allreduce(sums); });
  r.loss = sums.cpu().item<double>() / static_cast<double>(r.global_tokens);
  r.local_loss = r.local_tokens > 0 ? local_sum / static_cast<double>(r.local_tokens) : 0.0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

void sgd_step(t5::T5Model& model, double lr) {
  if (!std::isfinite(lr)) throw std::invalid_argument("lr must be finite");
  std::lock_guard<std::mutex> lock(model.mutex());
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : model.parameters()) {
    const at::Tensor& g = p.grad();
    if (g.defined()) const_cast<at::Tensor&>(p).add_(g, -lr);
  }
  model.zero_grad();
}

}  // namespace mentor_kd::dist

#endif  // MENTOR_KD_WITH_C10D
