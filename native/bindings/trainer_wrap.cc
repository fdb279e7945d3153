#include "bindings/trainer_wrap.h"

#include <cmath>

#include "bindings/batch_args.h"
#include "bindings/parallel_wrap.h"
#include "bindings/soft_label_cache_wrap.h"
#include "bindings/soft_label_writer_wrap.h"
#include "bindings/t5_model_wrap.h"
#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/instance_data.h"
#include "napi/js_args.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"

namespace mentor_kd {
namespace {

constexpr const char* kTrainer = "Trainer";

std::vector<train::MicroBatch> micro_batches_from_js(const Napi::Value& v) {
  if (!v.IsArray()) throw std::invalid_argument("microBatches must be an array of batches");
  Napi::Array arr = v.As<Napi::Array>();
  if (arr.Length() == 0) throw std::invalid_argument("microBatches is empty");
  std::vector<train::MicroBatch> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string where = "microBatches[" + std::to_string(i) + "]";
    train::MicroBatch mb;
    mb.batch = batch_from_js(arr.Get(i), where);
    Napi::Value soft = arr.Get(i).As<Napi::Object>().Get("softLabels");
    if (!soft.IsUndefined() && !soft.IsNull()) {
      if (!soft.IsObject()) throw std::invalid_argument(where + ".softLabels must be {cache, exampleIds}");
      Napi::Object so = soft.As<Napi::Object>();
      mb.cache = SoftLabelCacheWrap::CacheFrom(so.Get("cache"), where + ".softLabels.cache");
      mb.example_ids = int_array(so.Get("exampleIds"), where + ".softLabels.exampleIds");
    }
    out.push_back(std::move(mb));
  }
  return out;
}

train::TrainerOptions trainer_options_from_js(const Napi::Object& o) {
  train::TrainerOptions t;
  t.schedule.kind = train::schedule_kind_from_name(get_string(o, "schedule", "constant"));
  t.schedule.base_lr = get_number(o, "lr", t.schedule.base_lr);
  t.schedule.warmup_steps = get_int(o, "warmupSteps", 0);
  t.schedule.total_steps = get_int(o, "totalSteps", 0);
  t.adamw.beta1 = get_number(o, "beta1", t.adamw.beta1);
  t.adamw.beta2 = get_number(o, "beta2", t.adamw.beta2);
  t.adamw.eps = get_number(o, "eps", t.adamw.eps);
  t.adamw.weight_decay = get_number(o, "weightDecay", t.adamw.weight_decay);
  t.max_grad_norm = get_number(o, "maxGradNorm", t.max_grad_norm);
  t.kd_lambda = get_number(o, "kdLambda", t.kd_lambda);
  t.kd_tau = get_number(o, "kdTau", t.kd_tau);
  t.mixed_precision = get_bool(o, "mixedPrecision", t.mixed_precision);
  t.cpu_autocast = get_bool(o, "cpuAutocast", t.cpu_autocast);
  t.loss_chunk_rows = get_int(o, "lossChunkRows", 0);
  Napi::Value seed = o.Get("seed");
  if (!seed.IsUndefined() && !seed.IsNull()) {
    int64_t s = get_int(o, "seed", 0);
    if (s < 0) throw std::invalid_argument("option 'seed' must be >= 0");
    t.seed = static_cast<uint64_t>(s);
  }
  t.validate();
  return t;
}

}  // namespace

// ---------------------------------------------------------------------------
// Trainer

Napi::Function TrainerWrap::Define(Napi::Env env) {
  return DefineClass(env, kTrainer,
                     {
                         StaticMethod<&TrainerWrap::Create>("create"),
                         InstanceMethod<&TrainerWrap::Step>("step"),
                         InstanceMethod<&TrainerWrap::SetGradSync>("setGradSync"),
                         InstanceMethod<&TrainerWrap::EvaluateLoss>("evaluateLoss"),
                         InstanceMethod<&TrainerWrap::SaveCheckpoint>("saveCheckpoint"),
                         InstanceMethod<&TrainerWrap::LoadCheckpoint>("loadCheckpoint"),
                         InstanceMethod<&TrainerWrap::GlobalStep>("globalStep"),
                         InstanceMethod<&TrainerWrap::LrAt>("lrAt"),
                         InstanceMethod<&TrainerWrap::Info>("info"),
                         InstanceMethod<&TrainerWrap::Dispose>("dispose"),
                     });
}

TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "Trainer cannot be constructed directly: use Trainer.create(model, mentor, options)");
  trainer_ = *info[0].As<Napi::External<std::shared_ptr<train::Trainer>>>().Data();
}

std::shared_ptr<train::Trainer> TrainerWrap::trainer() const {
  if (!trainer_) throw std::runtime_error("this Trainer was disposed");
  return trainer_;
}

Napi::Value TrainerWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1) throw std::invalid_argument("Trainer.create(model, mentor, options): model is required");
    auto student = T5ModelWrap::ModelFrom(info[0], "model");
    std::shared_ptr<t5::T5Model> mentor;
    if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) mentor = T5ModelWrap::ModelFrom(info[1], "mentor");
    train::TrainerOptions opts = trainer_options_from_js(options_arg(info, 2, "options"));
    auto result = std::make_shared<std::shared_ptr<train::Trainer>>();
    return PromiseWorker::Queue(
        env, Napi::Object(), [=] { *result = std::make_shared<train::Trainer>(student, mentor, opts); },
        [=](Napi::Env e) -> Napi::Value {
          std::shared_ptr<train::Trainer> holder = *result;
          auto ext = Napi::External<std::shared_ptr<train::Trainer>>::New(e, &holder);
          return addon_data(e).constructors.at(kTrainer).New({ext});
        });
  });
}

namespace {
Napi::Object step_result_to_js(Napi::Env env, const train::StepResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", static_cast<double>(r.step));
  o.Set("loss", r.loss);
  o.Set("ce", r.ce);
  o.Set("kl", r.kl);
  o.Set("lr", r.lr);
  o.Set("gradNorm", r.grad_norm);
  o.Set("tokens", static_cast<double>(r.tokens));
  o.Set("sourceTokens", static_cast<double>(r.source_tokens));
  o.Set("finite", r.finite);
  o.Set("seconds", r.seconds);
  Napi::Object t = Napi::Object::New(env);
  t.Set("forward", r.forward_seconds);
  t.Set("backward", r.backward_seconds);
  t.Set("optimizer", r.optimizer_seconds);
  o.Set("timings", t);
  return o;
}
}  // namespace

Napi::Value TrainerWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto t = trainer();
    auto mbs = micro_batches_from_js(info.Length() > 0 ? info[0] : env.Undefined());
    auto out = std::make_shared<train::StepResult>();
    return PromiseWorker::Queue(
        env, Value(), [=] { *out = t->step(mbs); },
        [=](Napi::Env e) -> Napi::Value { return step_result_to_js(e, *out); });
  });
}

// setGradSync(dataParallel | null): data-parallel steps over the DataParallel's process group.
Napi::Value TrainerWrap::SetGradSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto t = trainer();
    std::shared_ptr<dist::GradSync> sync;
    if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined())
      sync = GradSyncFrom(info[0], "setGradSync(dataParallel): dataParallel", t->student().get());
    t->set_grad_sync(std::move(sync));
    return env.Undefined();
  });
}

Napi::Value TrainerWrap::EvaluateLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto t = trainer();
    auto mbs = micro_batches_from_js(info.Length() > 0 ? info[0] : env.Undefined());
    auto out = std::make_shared<train::LossResult>();
    return PromiseWorker::Queue(
        env, Value(), [=] { *out = t->evaluate_loss(mbs); },
        [=](Napi::Env e) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          o.Set("loss", out->loss);
          o.Set("ce", out->ce);
          o.Set("kl", out->kl);
          o.Set("tokens", static_cast<double>(out->tokens));
          o.Set("finite", out->finite);
          return o;
        });
  });
}

Napi::Value TrainerWrap::SaveCheckpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto t = trainer();
    std::string dir = string_arg(info, 0, "saveCheckpoint(dir): dir");
    return PromiseWorker::Queue(env, Value(), [=] { t->save_checkpoint(dir); }, nullptr);
  });
}

Napi::Value TrainerWrap::LoadCheckpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto t = trainer();
    std::string dir = string_arg(info, 0, "loadCheckpoint(dir): dir");
    return PromiseWorker::Queue(
        env, Value(), [=] { t->load_checkpoint(dir); },
        [=](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(t->global_step())); });
  });
}

Napi::Value TrainerWrap::GlobalStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value { return Napi::Number::New(env, static_cast<double>(trainer()->global_step())); });
}

Napi::Value TrainerWrap::LrAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw std::invalid_argument("lrAt(step): step must be a number");
    return Napi::Number::New(env, trainer()->options().schedule.lr(info[0].As<Napi::Number>().Int64Value()));
  });
}

Napi::Value TrainerWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto t = trainer();
    const auto& o = t->options();
    Napi::Object r = Napi::Object::New(env);
    r.Set("globalStep", static_cast<double>(t->global_step()));
    r.Set("schedule", train::schedule_kind_name(o.schedule.kind));
    r.Set("lr", o.schedule.base_lr);
    r.Set("warmupSteps", static_cast<double>(o.schedule.warmup_steps));
    r.Set("totalSteps", static_cast<double>(o.schedule.total_steps));
    r.Set("weightDecay", o.adamw.weight_decay);
    r.Set("maxGradNorm", o.max_grad_norm);
    r.Set("kdLambda", o.kd_lambda);
    r.Set("kdTau", o.kd_tau);
    r.Set("hasMentor", static_cast<bool>(t->mentor()));
    r.Set("device", t->student()->device().str());
    const at::Device device = t->student()->device();
    r.Set("mixedPrecision", device.is_cuda() && t->autocast_on(device));
    r.Set("cpuAutocast", device.is_cpu() && t->autocast_on(device));
    Napi::Array decayed = Napi::Array::New(env);
    Napi::Array exempt = Napi::Array::New(env);
    for (const auto& [name, p] : t->student()->parameters()) {
      Napi::Array& dst = train::AdamW::decays(name) ? decayed : exempt;
      dst.Set(dst.Length(), name);
    }
    r.Set("decayParameters", decayed);
    r.Set("noDecayParameters", exempt);
    return r;
  });
}

Napi::Value TrainerWrap::Dispose(const Napi::CallbackInfo& info) {
  trainer_.reset();
  return info.Env().Undefined();
}

namespace {
void Init(Napi::Env env, Napi::Object exports) {
  for (auto [name, ctor] : {std::pair{kTrainer, TrainerWrap::Define(env)}, std::pair{SoftLabelCacheWrap::kClassName, SoftLabelCacheWrap::Define(env)},
                            std::pair{SoftLabelWriterWrap::kClassName, SoftLabelWriterWrap::Define(env)}}) {
    addon_data(env).constructors[name] = Napi::Persistent(ctor);
    exports.Set(name, ctor);
  }
}
}  // namespace

}  // namespace mentor_kd

MENTOR_KD_BINDING(trainer, mentor_kd::Init);
