#include "bindings/causal_model_wrap.h"

#include <c10/core/InferenceMode.h>

#include <cmath>
#include <optional>
#include <string>

#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/instance_data.h"
#include "napi/js_args.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"

namespace mentor_kd {
namespace {

constexpr const char* kClassName = "CausalLM";

struct DeviceDtype {
  at::Device device{at::kCPU};
  at::ScalarType dtype = at::kFloat;
};

DeviceDtype device_dtype_from(const Napi::Object& o) {
  DeviceDtype out;
  out.device = device_from_name(get_string(o, "device", "cpu"));
  out.dtype = dtype_from_name(get_string(o, "dtype", "float32"));
  if (out.dtype == at::kHalf && out.device.is_cpu())
    throw std::invalid_argument("dtype float16 is supported on cuda only (use float32 or bfloat16 on cpu)");
  return out;
}

causal::LoadOptions load_options_from(const Napi::Object& o) {
  causal::LoadOptions out;
  out.allow_non_finite = get_bool(o, "allowNonFinite", false);
  Napi::Value budget = o.Get("memoryBudgetBytes");
  if (!budget.IsUndefined() && !budget.IsNull()) {
    const double b = get_number(o, "memoryBudgetBytes", 0);
    if (!(b >= 0)) throw std::invalid_argument("memoryBudgetBytes must be a number >= 0");
    out.memory_budget_bytes = b >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(b);
  }
  return out;
}

causal::CausalBatch batch_from(const Napi::Value& v) {
  if (!v.IsObject())
    throw std::invalid_argument("batch must be an object {inputIds, attentionMask?, labels?, positionIds?}");
  Napi::Object o = v.As<Napi::Object>();
  causal::CausalBatch b;
  b.input_ids = optional_tensor(o, "inputIds");
  b.attention_mask = optional_tensor(o, "attentionMask");
  b.labels = optional_tensor(o, "labels");
  b.position_ids = optional_tensor(o, "positionIds");
  if (!b.input_ids.defined()) throw std::invalid_argument("inputIds is required");
  return b;
}

// A sampling seed: a safe integer >= 0 (JS numbers above 2^53 would silently round), or none.
std::optional<uint64_t> seed_from(const Napi::Value& v, const std::string& name) {
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  const double s = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(s >= 0 && s <= 9007199254740991.0 && std::floor(s) == s))
    throw std::invalid_argument(name + " must be an integer in [0, 2^53)");
  return static_cast<uint64_t>(s);
}

}  // namespace

Napi::Function CausalModelWrap::Define(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         StaticMethod<&CausalModelWrap::Load>("load"),
                         StaticMethod<&CausalModelWrap::FromConfig>("fromConfig"),
                         InstanceMethod<&CausalModelWrap::Forward>("forward"),
                         InstanceMethod<&CausalModelWrap::Generate>("generate"),
                         InstanceMethod<&CausalModelWrap::Save>("save"),
                         InstanceMethod<&CausalModelWrap::ParameterNames>("parameterNames"),
                         InstanceMethod<&CausalModelWrap::GetParameter>("getParameter"),
                         InstanceMethod<&CausalModelWrap::GetGradient>("getGradient"),
                         InstanceMethod<&CausalModelWrap::SetParameter>("setParameter"),
                         InstanceMethod<&CausalModelWrap::ZeroGrad>("zeroGrad"),
                         InstanceMethod<&CausalModelWrap::Config>("config"),
                         InstanceMethod<&CausalModelWrap::Info>("info"),
                         InstanceMethod<&CausalModelWrap::Dispose>("dispose"),
                     });
}

CausalModelWrap::CausalModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CausalModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(
        info.Env(), "CausalLM cannot be constructed directly: use CausalLM.load(dir) or CausalLM.fromConfig(config)");
  model_ = *info[0].As<Napi::External<std::shared_ptr<causal::CausalLM>>>().Data();
}

Napi::Object CausalModelWrap::NewInstance(Napi::Env env, std::shared_ptr<causal::CausalLM> model) {
  std::shared_ptr<causal::CausalLM> holder = std::move(model);
  auto ext = Napi::External<std::shared_ptr<causal::CausalLM>>::New(env, &holder);
  return addon_data(env).constructors.at(kClassName).New({ext});
}

std::shared_ptr<causal::CausalLM> CausalModelWrap::ModelFrom(const Napi::Value& value, const char* what) {
  Napi::Env env = value.Env();
  Napi::FunctionReference& ctor = addon_data(env).constructors.at(kClassName);
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value()))
    throw std::invalid_argument(std::string(what) + " must be a native CausalLM");
  return ObjectWrap<CausalModelWrap>::Unwrap(value.As<Napi::Object>())->model(env);
}

bool CausalModelWrap::IsInstance(const Napi::Value& value) {
  Napi::FunctionReference& ctor = addon_data(value.Env()).constructors.at(kClassName);
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(ctor.Value());
}

std::shared_ptr<causal::CausalLM> CausalModelWrap::model(Napi::Env env) const {
  if (!model_) throw std::runtime_error("this CausalLM was disposed");
  return model_;
}

Napi::Value CausalModelWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    std::string dir = string_arg(info, 0, "load(dir): dir");
    Napi::Object opts = options_arg(info, 1);
    DeviceDtype dd = device_dtype_from(opts);
    causal::LoadOptions lo = load_options_from(opts);
    auto result = std::make_shared<std::shared_ptr<causal::CausalLM>>();
    return PromiseWorker::Queue(
        env, Napi::Object(), [=] { *result = causal::CausalLM::load(dir, dd.device, dd.dtype, lo); },
        [=](Napi::Env e) -> Napi::Value { return NewInstance(e, *result); });
  });
}

Napi::Value CausalModelWrap::FromConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    std::string text = string_arg(info, 0, "fromConfig(configJson): configJson");
    Napi::Object opts = options_arg(info, 1);
    DeviceDtype dd = device_dtype_from(opts);
    const double seed = get_number(opts, "seed", 0);
    causal::CausalConfig config = causal::parse_causal_config(text, "config");
    causal::LoadOptions lo = load_options_from(opts);
    auto result = std::make_shared<std::shared_ptr<causal::CausalLM>>();
    return PromiseWorker::Queue(
        env, Napi::Object(),
        [=] { *result = causal::CausalLM::from_config(config, dd.device, dd.dtype, static_cast<uint64_t>(seed), lo); },
        [=](Napi::Env e) -> Napi::Value { return NewInstance(e, *result); });
  });
}

Napi::Value CausalModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    causal::CausalBatch batch = batch_from(info.Length() > 0 ? info[0] : env.Undefined());
    Napi::Object opts = options_arg(info, 1);
    causal::CausalForwardOptions fo;
    const bool backward = get_bool(opts, "backward", false);
    fo.need_logits = get_bool(opts, "returnLogits", false);
    const bool want_hidden = get_bool(opts, "returnHidden", false);
    if (backward && !batch.labels.defined()) throw std::invalid_argument("forward({backward: true}) needs labels");
    auto out = std::make_shared<causal::CausalForwardOutput>();
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> lock(m->mutex());
          if (backward) {
            at::AutoGradMode grad(true);
            *out = m->forward(batch, fo);
            out->loss.backward();
          } else {
            c10::InferenceMode inference;
            *out = m->forward(batch, fo);
          }
          // Results leave autograd here; the main thread only copies them.
          if (out->loss.defined()) out->loss = out->loss.detach();
          if (out->logits.defined()) out->logits = out->logits.detach();
          out->hidden = want_hidden ? out->hidden.detach() : at::Tensor();
        },
        [=](Napi::Env e) -> Napi::Value {
          Napi::Object r = Napi::Object::New(e);
          if (out->loss.defined()) {
            r.Set("loss", out->loss.item<double>());
            r.Set("numLossTokens", static_cast<double>(out->num_loss_tokens));
          }
          if (out->logits.defined()) r.Set("logits", tensor_to_js(e, out->logits));
          if (out->hidden.defined()) r.Set("hidden", tensor_to_js(e, out->hidden));
          return r;
        });
  });
}

Napi::Value CausalModelWrap::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    causal::CausalBatch batch = batch_from(info.Length() > 0 ? info[0] : env.Undefined());
    Napi::Object opts = options_arg(info, 1);
    causal::CausalGenerateOptions go;
    go.max_new_tokens = static_cast<int64_t>(get_number(opts, "maxNewTokens", 64));
    go.do_sample = get_bool(opts, "doSample", false);
    go.temperature = get_number(opts, "temperature", 1.0);
    go.top_k = static_cast<int64_t>(get_number(opts, "topK", 50));
    go.top_p = get_number(opts, "topP", 1.0);
    go.num_return_sequences = static_cast<int64_t>(get_number(opts, "numReturnSequences", 1));
    go.seed = seed_from(opts.Get("seed"), "seed");
    Napi::Value seeds = opts.Get("seeds");
    if (!seeds.IsUndefined() && !seeds.IsNull()) {
      if (!seeds.IsArray()) throw std::invalid_argument("seeds must be an array of integers >= 0 (one per prompt)");
      Napi::Array a = seeds.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        const std::string name = "seeds[" + std::to_string(i) + "]";
        std::optional<uint64_t> s = seed_from(a.Get(i), name);
        if (!s) throw std::invalid_argument(name + " must be an integer in [0, 2^53)");
        go.seeds.push_back(*s);
      }
    }
    if (go.seed && !go.seeds.empty()) throw std::invalid_argument("give seed or seeds, not both");
    auto out = std::make_shared<at::Tensor>();
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> lock(m->mutex());
          *out = m->generate(batch.input_ids, batch.attention_mask, go);
        },
        [=](Napi::Env e) -> Napi::Value { return tensor_to_js(e, *out); });
  });
}

Napi::Value CausalModelWrap::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::string dir = string_arg(info, 0, "save(dir): dir");
    Napi::Object opts = options_arg(info, 1);
    const int64_t shard = static_cast<int64_t>(get_number(opts, "maxShardBytes", 0));
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> lock(m->mutex());
          m->save(dir, shard);
        },
        nullptr);
  });
}

Napi::Value CausalModelWrap::ParameterNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    Napi::Array arr = Napi::Array::New(env, m->parameters().size());
    uint32_t i = 0;
    for (const auto& p : m->parameters()) arr.Set(i++, p.first);
    return arr;
  });
}

Napi::Value CausalModelWrap::GetParameter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::lock_guard<std::mutex> lock(m->mutex());
    return tensor_to_js(env, m->parameter(string_arg(info, 0, "name")));
  });
}

Napi::Value CausalModelWrap::GetGradient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::lock_guard<std::mutex> lock(m->mutex());
    at::Tensor g = m->parameter(string_arg(info, 0, "name")).grad();
    if (!g.defined()) return env.Null();
    return tensor_to_js(env, g);
  });
}

Napi::Value CausalModelWrap::SetParameter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::string name = string_arg(info, 0, "name");
    at::Tensor value = tensor_from_js(info.Length() > 1 ? info[1] : env.Undefined(), name);
    std::lock_guard<std::mutex> lock(m->mutex());
    m->set_parameter(name, value);
    return env.Undefined();
  });
}

Napi::Value CausalModelWrap::ZeroGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::lock_guard<std::mutex> lock(m->mutex());
    m->zero_grad();
    return env.Undefined();
  });
}

Napi::Value CausalModelWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    return Napi::String::New(env, causal::causal_config_to_json(m->config(), dtype_name(m->dtype())));
  });
}

Napi::Value CausalModelWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    const auto& c = m->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("modelType", c.model_type);
    o.Set("dtype", dtype_name(m->dtype()));
    o.Set("device", m->device().str());
    o.Set("numParameters", static_cast<double>(m->num_parameters()));
    o.Set("vocabSize", static_cast<double>(c.vocab_size));
    o.Set("hiddenSize", static_cast<double>(c.hidden_size));
    o.Set("numHiddenLayers", static_cast<double>(c.num_hidden_layers));
    o.Set("numAttentionHeads", static_cast<double>(c.num_attention_heads));
    o.Set("numKeyValueHeads", static_cast<double>(c.num_key_value_heads));
    o.Set("padTokenId",
          c.pad_token_id >= 0 ? Napi::Value(Napi::Number::New(env, static_cast<double>(c.pad_token_id))) : env.Null());
    o.Set("bosTokenId",
          c.bos_token_id >= 0 ? Napi::Value(Napi::Number::New(env, static_cast<double>(c.bos_token_id))) : env.Null());
    Napi::Array eos = Napi::Array::New(env, c.eos_token_ids.size());
    for (size_t i = 0; i < c.eos_token_ids.size(); ++i)
      eos.Set(static_cast<uint32_t>(i), static_cast<double>(c.eos_token_ids[i]));
    o.Set("eosTokenIds", eos);
    o.Set("tieWordEmbeddings", c.tie_word_embeddings);
    o.Set("sourceDir", m->source_dir);
    return o;
  });
}

Napi::Value CausalModelWrap::Dispose(const Napi::CallbackInfo& info) {
  // Work already queued holds its own reference and finishes first.
  model_.reset();
  return info.Env().Undefined();
}

namespace {
void Init(Napi::Env env, Napi::Object model) {
  Napi::Function ctor = CausalModelWrap::Define(env);
  addon_data(env).constructors[kClassName] = Napi::Persistent(ctor);
  model.Set(kClassName, ctor);
}
}  // namespace

}  // namespace mentor_kd

MENTOR_KD_BINDING(model, mentor_kd::Init);
