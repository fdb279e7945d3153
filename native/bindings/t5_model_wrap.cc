#include "bindings/t5_model_wrap.h"

#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <cstdlib>

#include "napi/async_worker.h"
#include "bindings/batch_args.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/instance_data.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"
#include "runtime/settings.h"
#include "t5/checkpoint.h"
#include "t5/lora.h"

namespace mentor_kd {
namespace {

constexpr const char* kClassName = "T5Model";

struct DeviceDtype {
  at::Device device{at::kCPU};
  at::ScalarType dtype = at::kFloat;
};

DeviceDtype device_dtype_from(const Napi::Value& v) {
  DeviceDtype out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsObject()) throw std::invalid_argument("options must be an object");
  Napi::Object o = v.As<Napi::Object>();
  out.device = device_from_name(get_string(o, "device", "cpu"));
  out.dtype = dtype_from_name(get_string(o, "dtype", "float32"));
  if (out.dtype == at::kHalf && out.device.is_cpu())
    throw std::invalid_argument("dtype float16 is supported on cuda only (use float32 or bfloat16 on cpu)");
  return out;
}

t5::LoadOptions load_options_from(const Napi::Value& v) {
  t5::LoadOptions out;
  if (!v.IsObject()) return out;
  Napi::Object o = v.As<Napi::Object>();
  out.allow_non_finite = get_bool(o, "allowNonFinite", false);
  Napi::Value budget = o.Get("memoryBudgetBytes");
  if (!budget.IsUndefined() && !budget.IsNull()) {
    double b = get_number(o, "memoryBudgetBytes", 0);
    if (!(b >= 0)) throw std::invalid_argument("memoryBudgetBytes must be a number >= 0");
    out.memory_budget_bytes = b >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(b);
  }
  return out;
}

}  // namespace

Napi::Function T5ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         StaticMethod<&T5ModelWrap::Load>("load"),
                         StaticMethod<&T5ModelWrap::FromConfig>("fromConfig"),
                         InstanceMethod<&T5ModelWrap::Forward>("forward"),
                         InstanceMethod<&T5ModelWrap::Generate>("generate"),
                         InstanceMethod<&T5ModelWrap::Save>("save"),
                         InstanceMethod<&T5ModelWrap::ParameterNames>("parameterNames"),
                         InstanceMethod<&T5ModelWrap::GetParameter>("getParameter"),
                         InstanceMethod<&T5ModelWrap::GetGradient>("getGradient"),
                         InstanceMethod<&T5ModelWrap::SetParameter>("setParameter"),
                         InstanceMethod<&T5ModelWrap::ZeroGrad>("zeroGrad"),
                         InstanceMethod<&T5ModelWrap::Config>("config"),
                         InstanceMethod<&T5ModelWrap::Info>("info"),
                         InstanceMethod<&T5ModelWrap::Dispose>("dispose"),
                         InstanceMethod<&T5ModelWrap::AddLora>("addLora"),
                         InstanceMethod<&T5ModelWrap::LoadLora>("loadLora"),
                         InstanceMethod<&T5ModelWrap::SaveLora>("saveLora"),
                         InstanceMethod<&T5ModelWrap::LoraParameterNames>("loraParameterNames"),
                         InstanceMethod<&T5ModelWrap::Merged>("merged"),
                     });
}

T5ModelWrap::T5ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T5ModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(
        info.Env(), "T5Model cannot be constructed directly: use T5Model.load(dir) or T5Model.fromConfig(config)");
  auto* holder = info[0].As<Napi::External<std::shared_ptr<t5::T5Model>>>().Data();
  model_ = *holder;
}

Napi::Object T5ModelWrap::NewInstance(Napi::Env env, std::shared_ptr<t5::T5Model> model) {
  std::shared_ptr<t5::T5Model> holder = std::move(model);
  auto ext = Napi::External<std::shared_ptr<t5::T5Model>>::New(env, &holder);
  return addon_data(env).constructors.at(kClassName).New({ext});
}

std::shared_ptr<t5::T5Model> T5ModelWrap::ModelFrom(const Napi::Value& value, const char* what) {
  Napi::Env env = value.Env();
  Napi::FunctionReference& ctor = addon_data(env).constructors.at(kClassName);
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value()))
    throw std::invalid_argument(std::string(what) + " must be a native T5Model");
  return ObjectWrap<T5ModelWrap>::Unwrap(value.As<Napi::Object>())->model(env);
}

std::shared_ptr<t5::T5Model> T5ModelWrap::model(Napi::Env env) const {
  if (!model_) throw std::runtime_error("this T5Model was disposed");
  return model_;
}

Napi::Value T5ModelWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    std::string dir = string_arg(info, 0, "load(dir): dir");
    DeviceDtype dd = device_dtype_from(info.Length() > 1 ? info[1] : env.Undefined());
    t5::LoadOptions lo = load_options_from(info.Length() > 1 ? info[1] : env.Undefined());
    auto result = std::make_shared<std::shared_ptr<t5::T5Model>>();
    return PromiseWorker::Queue(
        env, Napi::Object(), [=] { *result = t5::T5Model::load(dir, dd.device, dd.dtype, lo); },
        [=](Napi::Env e) -> Napi::Value { return NewInstance(e, *result); });
  });
}

Napi::Value T5ModelWrap::FromConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    std::string text = string_arg(info, 0, "fromConfig(configJson): configJson");
    Napi::Object opts = options_arg(info, 1);
    DeviceDtype dd = device_dtype_from(opts);
    double seed = get_number(opts, "seed", 0);
    t5::T5Config config = t5::parse_t5_config(text, "config");
    t5::LoadOptions lo = load_options_from(opts);
    auto result = std::make_shared<std::shared_ptr<t5::T5Model>>();
    return PromiseWorker::Queue(
        env, Napi::Object(),
        [=] { *result = t5::T5Model::from_config(config, dd.device, dd.dtype, static_cast<uint64_t>(seed), lo); },
        [=](Napi::Env e) -> Napi::Value { return NewInstance(e, *result); });
  });
}

Napi::Value T5ModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    t5::Seq2SeqBatch batch = batch_from_js(info.Length() > 0 ? info[0] : env.Undefined());
    Napi::Object opts = options_arg(info, 1);
    t5::ForwardOptions fo;
    fo.train = get_bool(opts, "train", false);
    const bool backward = get_bool(opts, "backward", false);
    fo.activation_checkpointing = t5::parse_activation_checkpointing(
        get_string(opts, "activationCheckpointing", "none"), "forward: option 'activationCheckpointing'");
    const bool want_logits = get_bool(opts, "returnLogits", false);
    fo.need_logits = want_logits;
    fo.need_encoder_hidden = get_bool(opts, "returnEncoderHidden", false);
    const bool want_decoder_hidden = get_bool(opts, "returnDecoderHidden", false);
    if (backward && !batch.labels.defined()) throw std::invalid_argument("forward({backward: true}) needs labels");
    auto out = std::make_shared<t5::ForwardOutput>();
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> lock(m->mutex());
          // runtime.configure({modelProfile}) (MENTOR_KD_PROFILE=trace.json) writes a chrome://tracing
          // profile of each forward call.
          std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
          if (const std::string path = runtime::model_profile_path(); !path.empty())
            profile = std::make_unique<torch::autograd::profiler::RecordProfile>(path);
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
          if (out->encoder_hidden.defined()) out->encoder_hidden = out->encoder_hidden.detach();
          out->decoder_hidden = want_decoder_hidden ? out->decoder_hidden.detach() : at::Tensor();
        },
        [=](Napi::Env e) -> Napi::Value {
          Napi::Object r = Napi::Object::New(e);
          if (out->loss.defined()) {
            r.Set("loss", out->loss.item<double>());
            r.Set("numLossTokens", static_cast<double>(out->num_loss_tokens));
          }
          if (out->logits.defined()) r.Set("logits", tensor_to_js(e, out->logits));
          if (out->encoder_hidden.defined()) r.Set("encoderHidden", tensor_to_js(e, out->encoder_hidden));
          if (out->decoder_hidden.defined()) r.Set("decoderHidden", tensor_to_js(e, out->decoder_hidden));
          return r;
        });
  });
}

Napi::Value T5ModelWrap::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    t5::Seq2SeqBatch batch = batch_from_js(info.Length() > 0 ? info[0] : env.Undefined());
    Napi::Object opts = options_arg(info, 1);
    t5::GenerateOptions go;
    go.max_new_tokens = static_cast<int64_t>(get_number(opts, "maxNewTokens", 64));
    go.do_sample = get_bool(opts, "doSample", false);
    go.temperature = get_number(opts, "temperature", 1.0);
    go.top_k = static_cast<int64_t>(get_number(opts, "topK", 50));
    go.top_p = get_number(opts, "topP", 1.0);
    go.num_return_sequences = static_cast<int64_t>(get_number(opts, "numReturnSequences", 1));
    Napi::Value seed = opts.Get("seed");
    if (!seed.IsUndefined() && !seed.IsNull()) {
      double s = get_number(opts, "seed", 0);
      if (s < 0) throw std::invalid_argument("seed must be >= 0");
      go.seed = static_cast<uint64_t>(s);
    }
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

Napi::Value T5ModelWrap::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::string dir = string_arg(info, 0, "save(dir): dir");
    Napi::Object opts = options_arg(info, 1);
    int64_t shard = static_cast<int64_t>(get_number(opts, "maxShardBytes", 0));
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> lock(m->mutex());
          m->save(dir, shard);
        },
        nullptr);
  });
}

Napi::Value T5ModelWrap::ParameterNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    Napi::Array arr = Napi::Array::New(env, m->parameters().size());
    uint32_t i = 0;
    for (const auto& p : m->parameters()) arr.Set(i++, p.first);
    return arr;
  });
}

Napi::Value T5ModelWrap::GetParameter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::lock_guard<std::mutex> lock(m->mutex());
    return tensor_to_js(env, m->parameter(string_arg(info, 0, "name")));
  });
}

Napi::Value T5ModelWrap::GetGradient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::lock_guard<std::mutex> lock(m->mutex());
    at::Tensor g = m->parameter(string_arg(info, 0, "name")).grad();
    if (!g.defined()) return env.Null();
    return tensor_to_js(env, g);
  });
}

Napi::Value T5ModelWrap::SetParameter(const Napi::CallbackInfo& info) {
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

Napi::Value T5ModelWrap::ZeroGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::lock_guard<std::mutex> lock(m->mutex());
    m->zero_grad();
    return env.Undefined();
  });
}

Napi::Value T5ModelWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    return Napi::String::New(env, t5::t5_config_to_json(m->config(), dtype_name(m->dtype())));
  });
}

Napi::Value T5ModelWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    const auto& c = m->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("dtype", dtype_name(m->dtype()));
    o.Set("device", m->device().str());
    o.Set("numParameters", static_cast<double>(m->num_parameters()));
    o.Set("vocabSize", static_cast<double>(c.vocab_size));
    o.Set("dModel", static_cast<double>(c.d_model));
    o.Set("numLayers", static_cast<double>(c.num_layers));
    o.Set("numDecoderLayers", static_cast<double>(c.num_decoder_layers));
    o.Set("padTokenId", static_cast<double>(c.pad_token_id));
    o.Set("decoderStartTokenId", static_cast<double>(c.decoder_start_token_id));
    Napi::Array eos = Napi::Array::New(env, c.eos_token_ids.size());
    for (size_t i = 0; i < c.eos_token_ids.size(); ++i)
      eos.Set(static_cast<uint32_t>(i), static_cast<double>(c.eos_token_ids[i]));
    o.Set("eosTokenIds", eos);
    o.Set("tieWordEmbeddings", c.tie_word_embeddings);
    o.Set("sourceDir", m->source_dir);
    int64_t trainable = 0;
    for (const auto& [name, t] : m->trainable_parameters()) trainable += t.numel();
    o.Set("numTrainableParameters", static_cast<double>(trainable));
    if (const auto& l = m->lora()) {
      Napi::Object lo = Napi::Object::New(env);
      lo.Set("r", static_cast<double>(l->r));
      lo.Set("lora_alpha", l->lora_alpha);
      lo.Set("lora_dropout", l->lora_dropout);
      Napi::Array tm = Napi::Array::New(env, l->target_modules.size());
      for (size_t i = 0; i < l->target_modules.size(); ++i) tm.Set(static_cast<uint32_t>(i), l->target_modules[i]);
      lo.Set("target_modules", tm);
      o.Set("lora", lo);
    } else {
      o.Set("lora", env.Null());
    }
    return o;
  });
}

// addLora({r, lora_alpha, lora_dropout, target_modules, seed, field}): `field` names the settings in errors.
Napi::Value T5ModelWrap::AddLora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    Napi::Object o = options_arg(info, 0, "addLora(options)");
    t5::LoraConfig c;
    c.r = get_int(o, "r", 0);
    c.lora_alpha = get_number(o, "lora_alpha", 0);
    c.lora_dropout = get_number(o, "lora_dropout", 0);
    const std::string field = get_string(o, "field", "lora");
    Napi::Value tm = o.Get("target_modules");
    if (!tm.IsArray()) throw std::invalid_argument(field + ".target_modules must be a list of module names");
    Napi::Array arr = tm.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr.Get(i);
      if (!v.IsString()) throw std::invalid_argument(field + ".target_modules must hold module names");
      c.target_modules.push_back(v.As<Napi::String>().Utf8Value());
    }
    const double seed = get_number(o, "seed", 0);
    t5::validate_lora_config(c, m->config(), field);
    std::lock_guard<std::mutex> lock(m->mutex());
    m->add_lora(c, static_cast<uint64_t>(seed));
    return env.Undefined();
  });
}

Napi::Value T5ModelWrap::LoadLora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::string dir = string_arg(info, 0, "loadLora(dir): dir");
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> lock(m->mutex());
          m->load_lora(dir);
        },
        nullptr);
  });
}

Napi::Value T5ModelWrap::SaveLora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    std::string dir = string_arg(info, 0, "saveLora(dir): dir");
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> lock(m->mutex());
          m->save_lora(dir);
        },
        nullptr);
  });
}

Napi::Value T5ModelWrap::LoraParameterNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    Napi::Array arr = Napi::Array::New(env, m->lora_parameters().size());
    uint32_t i = 0;
    for (const auto& p : m->lora_parameters()) arr.Set(i++, p.first);
    return arr;
  });
}

// A copy of the model in its dtype with any LoRA adapters merged into the weights (W + B·A·alpha/r).
Napi::Value T5ModelWrap::Merged(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto m = model(env);
    auto result = std::make_shared<std::shared_ptr<t5::T5Model>>();
    return PromiseWorker::Queue(
        env, Napi::Object(),
        [=] {
          std::lock_guard<std::mutex> lock(m->mutex());
          *result = m->converted(m->dtype());
        },
        [=](Napi::Env e) -> Napi::Value { return NewInstance(e, *result); });
  });
}

Napi::Value T5ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  // Work already queued holds its own reference and finishes first.
  model_.reset();
  return info.Env().Undefined();
}

namespace {
void Init(Napi::Env env, Napi::Object model) {
  Napi::Function ctor = T5ModelWrap::Define(env);
  addon_data(env).constructors[kClassName] = Napi::Persistent(ctor);
  model.Set(kClassName, ctor);
}
}  // namespace

}  // namespace mentor_kd

MENTOR_KD_BINDING(model, mentor_kd::Init);
