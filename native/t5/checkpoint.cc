#include "t5/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include <stdexcept>

#include "t5/dropout.h"

namespace mentor_kd::t5 {
namespace {

thread_local int64_t t_every = 0;

// libtorch's autocast state per device type (torch 2.4 replaced the per-backend calls).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_enabled(at::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
void set_autocast_enabled(at::DeviceType t, bool on) { at::autocast::set_autocast_enabled(t, on); }
at::ScalarType autocast_dtype(at::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
void set_autocast_dtype(at::DeviceType t, at::ScalarType d) { at::autocast::set_autocast_dtype(t, d); }
#else
bool autocast_enabled(at::DeviceType t) {
  return t == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void set_autocast_enabled(at::DeviceType t, bool on) {
  t == at::kCPU ? at::autocast::set_cpu_enabled(on) : at::autocast::set_enabled(on);
}
at::ScalarType autocast_dtype(at::DeviceType t) {
  return t == at::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_autocast_dtype(at::DeviceType t, at::ScalarType d) {
  t == at::kCPU ? at::autocast::set_autocast_cpu_dtype(d) : at::autocast::set_autocast_gpu_dtype(d);
}
#endif

// Everything the recomputation needs to repeat the first forward exactly.
struct Recompute : torch::CustomClassHolder {
  BlockForward forward;
  std::vector<bool> input_defined;  // which of the block's inputs were given (undefined ones are not autograd inputs)
  std::vector<at::Tensor> parameters;
  DropoutStreamPosition stream;
  at::Tensor cpu_generator_state;     // when the dropout seeds came from the default CPU generator
  at::Tensor device_generator_state;  // an accelerator's default generator (at::dropout draws from it)
  at::Device device = at::kCPU;
  bool autocast = false;
  at::ScalarType autocast_dtype = at::kBFloat16;

  std::vector<at::Tensor> full_inputs(at::TensorList given) const {
    std::vector<at::Tensor> out;
    size_t j = 0;
    for (bool d : input_defined) out.push_back(d ? given[j++] : at::Tensor());
    return out;
  }
};

at::Generator default_generator(at::Device device) {
  return device.is_cpu() ? at::detail::getDefaultCPUGenerator() : at::globalContext().defaultGenerator(device);
}

at::Tensor generator_state(at::Device device) {
  at::Generator gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state().clone();
}

void set_generator_state(at::Device device, const at::Tensor& state) {
  at::Generator gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Puts the generators, the dropout stream and autocast where the first forward had them, and back.
class ReplayScope {
 public:
  explicit ReplayScope(const Recompute& r) : r_(r), stream_(r.stream), type_(r.device.type()) {
    if (r_.cpu_generator_state.defined()) {
      cpu_now_ = generator_state(at::kCPU);
      set_generator_state(at::kCPU, r_.cpu_generator_state);
    }
    if (r_.device_generator_state.defined()) {
      device_now_ = generator_state(r_.device);
      set_generator_state(r_.device, r_.device_generator_state);
    }
    autocast_was_ = autocast_enabled(type_);
    dtype_was_ = autocast_dtype(type_);
    set_autocast_dtype(type_, r_.autocast_dtype);
    set_autocast_enabled(type_, r_.autocast);
    if (r_.autocast) at::autocast::increment_nesting();
  }
  ~ReplayScope() {
    if (r_.autocast && at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set_autocast_enabled(type_, autocast_was_);
    set_autocast_dtype(type_, dtype_was_);
    if (device_now_.defined()) set_generator_state(r_.device, device_now_);
    if (cpu_now_.defined()) set_generator_state(at::kCPU, cpu_now_);
  }
  ReplayScope(const ReplayScope&) = delete;
  ReplayScope& operator=(const ReplayScope&) = delete;

 private:
  const Recompute& r_;
  DropoutStreamReplay stream_;
  at::DeviceType type_;
  at::Tensor cpu_now_, device_now_;
  bool autocast_was_ = false;
  at::ScalarType dtype_was_ = at::kBFloat16;
};

struct CheckpointFn : public torch::autograd::Function<CheckpointFn> {
  // inputs: the block's defined inputs; parameters: its weights. Runs with grad off (apply()).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::TensorList inputs, at::TensorList parameters,
                            const c10::intrusive_ptr<Recompute>& r) {
    ctx->save_for_backward(inputs.vec());
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(r);
    return r->forward(r->full_inputs(inputs));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto r = c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["recompute"].toCapsule());
    const std::vector<at::Tensor> saved = ctx->get_saved_variables();
    std::vector<at::Tensor> inputs;
    for (const at::Tensor& t : saved) inputs.push_back(t.detach().requires_grad_(t.requires_grad()));
    at::Tensor out;
    {
      at::AutoGradMode grad(true);
      ReplayScope replay(*r);
      out = r->forward(r->full_inputs(inputs));
    }
    // Differentiate the recomputed block w.r.t. whatever needs a gradient; the autograd engine
    // accumulates the parameters' through this node's edges (their hooks fire as usual).
    std::vector<at::Tensor> wrt;
    for (const at::Tensor& t : inputs)
      if (t.requires_grad()) wrt.push_back(t);
    for (const at::Tensor& p : r->parameters)
      if (p.requires_grad()) wrt.push_back(p);
    std::vector<at::Tensor> grads;
    if (!wrt.empty() && out.requires_grad())
      grads = torch::autograd::grad({out}, wrt, {grad_out[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                    /*allow_unused=*/true);
    torch::autograd::variable_list result;
    size_t j = 0;
    for (const at::Tensor& t : inputs)
      result.push_back(t.requires_grad() && j < grads.size() ? grads[j++] : at::Tensor());
    for (const at::Tensor& p : r->parameters)
      result.push_back(p.requires_grad() && j < grads.size() ? grads[j++] : at::Tensor());
    result.emplace_back();  // the Recompute argument
    return result;
  }
};

}  // namespace

int64_t parse_activation_checkpointing(const std::string& value, const std::string& field) {
  if (value == "none") return 0;
  if (value == "blocks") return 1;
  const std::string prefix = "every-";
  if (value.rfind(prefix, 0) == 0 && value.size() > prefix.size() && value.size() <= prefix.size() + 6 &&
      value.find_first_not_of("0123456789", prefix.size()) == std::string::npos) {
    const int64_t k = std::stoll(value.substr(prefix.size()));
    if (k >= 1) return k;
  }
  throw std::invalid_argument(field + " must be none, blocks or every-<k> (k >= 1), got '" + value + "'");
}

std::string activation_checkpointing_name(int64_t every) {
  if (every <= 0) return "none";
  if (every == 1) return "blocks";
  return "every-" + std::to_string(every);
}

ActivationCheckpointScope::ActivationCheckpointScope(int64_t every) : saved_(t_every) { t_every = every; }
ActivationCheckpointScope::~ActivationCheckpointScope() { t_every = saved_; }

bool checkpoint_block_now(size_t index) {
  return t_every > 0 && at::GradMode::is_enabled() && index % static_cast<size_t>(t_every) == 0;
}

at::Tensor checkpointed_block(const BlockForward& forward, const std::vector<at::Tensor>& inputs,
                              const std::vector<at::Tensor>& parameters) {
  if (inputs.empty() || !inputs[0].defined()) throw std::logic_error("checkpointed_block: the block input is missing");
  auto r = c10::make_intrusive<Recompute>();
  r->forward = forward;
  std::vector<at::Tensor> given;
  for (const at::Tensor& t : inputs) {
    r->input_defined.push_back(t.defined());
    if (t.defined()) given.push_back(t);
  }
  for (const at::Tensor& p : parameters)
    if (p.defined()) r->parameters.push_back(p);
  r->device = inputs[0].device();
  r->stream = dropout_stream_position();
  // Without a keyed stream the CPU masks' seeds come from the default generator; on an
  // accelerator at::dropout draws from the device's: record what the forward will draw from.
  if (!r->stream.active) r->cpu_generator_state = generator_state(at::kCPU);
  if (!r->device.is_cpu()) r->device_generator_state = generator_state(r->device);
  r->autocast = autocast_enabled(r->device.type());
  r->autocast_dtype = autocast_dtype(r->device.type());
  return CheckpointFn::apply(at::TensorList(given), at::TensorList(r->parameters), r);
}

}  // namespace mentor_kd::t5
