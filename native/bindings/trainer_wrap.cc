#include "bindings/trainer_wrap.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "bindings/batch_args.h"
#include "bindings/causal_model_wrap.h"
#include "bindings/consistency_args.h"
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
#include "t5/checkpoint.h"

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
    {
      t5::Seq2SeqBatch b = batch_from_js(arr.Get(i), where);
      mb.batch.input_ids = b.input_ids;
      mb.batch.attention_mask = b.attention_mask;
      mb.batch.labels = b.labels;
      mb.batch.decoder_input_ids = b.decoder_input_ids;
      mb.batch.decoder_attention_mask = b.decoder_attention_mask;
    }
    Napi::Value soft = arr.Get(i).As<Napi::Object>().Get("softLabels");
    if (!soft.IsUndefined() && !soft.IsNull()) {
      if (!soft.IsObject()) throw std::invalid_argument(where + ".softLabels must be {cache, exampleIds}");
      Napi::Object so = soft.As<Napi::Object>();
      mb.cache = SoftLabelCacheWrap::CacheFrom(so.Get("cache"), where + ".softLabels.cache");
      mb.example_ids = int_array(so.Get("exampleIds"), where + ".softLabels.exampleIds");
    }
    Napi::Value ce_weight = arr.Get(i).As<Napi::Object>().Get("ceWeight");
    if (!ce_weight.IsUndefined() && !ce_weight.IsNull()) {
      if (!ce_weight.IsNumber()) throw std::invalid_argument(where + ".ceWeight must be a number >= 0");
      mb.ce_weight = ce_weight.As<Napi::Number>().DoubleValue();  // the range is checked by the trainer
    }
    Napi::Value consistency = arr.Get(i).As<Napi::Object>().Get("consistency");
    if (!consistency.IsUndefined() && !consistency.IsNull())
      mb.consistency = consistency_pairs_from_js(consistency, where + ".consistency");  // checked by the trainer
    out.push_back(std::move(mb));
  }
  return out;
}

// Every key is required (lib/train/engine.ts fills in the library defaults, sharding included) except seed
// (unseeded when absent) and loss_chunk_rows (automatic when absent); unknown keys are an error.
train::TrainerOptions trainer_options_from_js(const Napi::Object& o) {
  static const char* const kKeys[] = {
      "learning_rate", "lr_scheduler_type", "warmup_steps",  "max_steps", "adam_beta1", "adam_beta2",
      "adam_epsilon",  "weight_decay",      "max_grad_norm", "lambda",    "tau",        "bf16",
      "seed",          "loss_chunk_rows",   "divergence",    "beta",      "alpha",      "activationCheckpointing",
      "sharding"};
  Napi::Array names = o.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); ++i) {
    const std::string k = names.Get(i).As<Napi::String>().Utf8Value();
    if (std::find_if(std::begin(kKeys), std::end(kKeys), [&](const char* x) { return k == x; }) == std::end(kKeys))
      throw std::invalid_argument("trainer: unknown option '" + k + "'");
  }
  auto present = [&](const char* key) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull())
      throw std::invalid_argument(std::string("trainer: option '") + key + "' is required");
    return v;
  };
  auto number = [&](const char* key) {
    Napi::Value v = present(key);
    if (!v.IsNumber()) throw std::invalid_argument(std::string("trainer: option '") + key + "' must be a number");
    return v.As<Napi::Number>().DoubleValue();
  };
  auto integer = [&](const char* key) {
    const double v = number(key);
    if (v != std::floor(v))
      throw std::invalid_argument(std::string("trainer: option '") + key + "' must be an integer");
    return static_cast<int64_t>(v);
  };
  train::TrainerOptions t;
  Napi::Value kind = present("lr_scheduler_type");
  if (!kind.IsString()) throw std::invalid_argument("trainer: option 'lr_scheduler_type' must be a string");
  t.lr_scheduler_type = train::schedule_kind_from_name(kind.As<Napi::String>().Utf8Value());
  t.learning_rate = number("learning_rate");
  t.warmup_steps = integer("warmup_steps");
  t.max_steps = integer("max_steps");
  t.adam_beta1 = number("adam_beta1");
  t.adam_beta2 = number("adam_beta2");
  t.adam_epsilon = number("adam_epsilon");
  t.weight_decay = number("weight_decay");
  t.max_grad_norm = number("max_grad_norm");
  t.lambda_ = number("lambda");
  t.tau = number("tau");
  Napi::Value div = present("divergence");
  if (!div.IsString()) throw std::invalid_argument("trainer: option 'divergence' must be a string");
  try {
    t.divergence = kd::divergence_from_name(div.As<Napi::String>().Utf8Value());
  } catch (const c10::Error&) {
    throw std::invalid_argument(
        "trainer: option 'divergence' must be one of forward-kl, reverse-kl, jsd, skew-kl, "
        "skew-reverse-kl, tvd, got '" +
        div.As<Napi::String>().Utf8Value() + "'");
  }
  t.beta = number("beta");
  t.alpha = number("alpha");
  Napi::Value bf16 = present("bf16");
  if (!bf16.IsBoolean()) throw std::invalid_argument("trainer: option 'bf16' must be true or false");
  t.bf16 = bf16.As<Napi::Boolean>().Value();
  t.loss_chunk_rows = get_int(o, "loss_chunk_rows", 0);
  Napi::Value checkpointing = present("activationCheckpointing");
  if (!checkpointing.IsString())
    throw std::invalid_argument("trainer: option 'activationCheckpointing' must be none, blocks or every-<k>");
  t.activation_checkpointing = t5::parse_activation_checkpointing(checkpointing.As<Napi::String>().Utf8Value(),
                                                                  "trainer: option 'activationCheckpointing'");
  Napi::Value sharding = present("sharding");
  if (!sharding.IsString()) throw std::invalid_argument("trainer: option 'sharding' must be none, zero1 or zero2");
  t.sharding = dist::sharding_from_name(sharding.As<Napi::String>().Utf8Value());
  Napi::Value seed = o.Get("seed");
  if (!seed.IsUndefined() && !seed.IsNull()) {
    int64_t s = get_int(o, "seed", 0);
    if (s < 0) throw std::invalid_argument("option 'seed' must be >= 0");
    t.seed = static_cast<uint64_t>(s);
  }
  t.validate();
  return t;
}

// A JS T5Model or CausalLM as the trainer's model.
std::shared_ptr<model::LanguageModel> language_model_from(const Napi::Value& value, const char* what) {
  if (CausalModelWrap::IsInstance(value)) return CausalModelWrap::ModelFrom(value, what);
  try {
    return T5ModelWrap::ModelFrom(value, what);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(std::string(what) + " must be a native T5Model or CausalLM");
  }
}

bool sync_requested(const Napi::CallbackInfo& info) {
  return info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined();
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
    throw Napi::TypeError::New(info.Env(),
                               "Trainer cannot be constructed directly: use Trainer.create(model, mentor, options)");
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
    auto student = language_model_from(info[0], "model");
    std::shared_ptr<model::LanguageModel> mentor;
    if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined())
      mentor = language_model_from(info[1], "mentor");
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
  o.Set("status", train::step_status_name(r.status));
  o.Set("step", static_cast<double>(r.step));
  o.Set("loss", r.loss);
  o.Set("ce", r.ce);
  o.Set("kl", r.kl);
  o.Set("consistency", r.consistency);
  o.Set("lr", r.lr);
  o.Set("gradNorm", r.grad_norm);
  o.Set("tokens", static_cast<double>(r.tokens));
  o.Set("sourceTokens", static_cast<double>(r.source_tokens));
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
    if (sync_requested(info)) {
      // DataParallel reduces a T5 model's gradients (parallel/grad_reducer.h).
      const auto* t5_student = dynamic_cast<const t5::T5Model*>(t->student().get());
      if (!t5_student)
        throw std::invalid_argument(std::string("setGradSync: data parallelism supports T5 students; this one is ") +
                                    t->student()->family());
      sync = GradSyncFrom(info[0], "setGradSync(dataParallel): dataParallel", t5_student);
    }
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
          o.Set("status", train::step_status_name(out->status));
          o.Set("loss", out->loss);
          o.Set("ce", out->ce);
          o.Set("kl", out->kl);
          o.Set("consistency", out->consistency);
          o.Set("tokens", static_cast<double>(out->tokens));
          return o;
        });
  });
}

Napi::Value TrainerWrap::SaveCheckpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto t = trainer();
    std::string dir = string_arg(info, 0, "saveCheckpoint(dir): dir");
    // saveCheckpoint(dir, {optimizerShardOnly: true}): this rank's optimizer shard only (train.sharding).
    bool shard_only = false;
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Value v = info[1].As<Napi::Object>().Get("optimizerShardOnly");
      shard_only = v.IsBoolean() && v.As<Napi::Boolean>().Value();
    }
    return PromiseWorker::Queue(
        env, Value(), [=] { shard_only ? t->save_optimizer_shard(dir) : t->save_checkpoint(dir); }, nullptr);
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
  return guard_js(
      env, [&]() -> Napi::Value { return Napi::Number::New(env, static_cast<double>(trainer()->global_step())); });
}

Napi::Value TrainerWrap::LrAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw std::invalid_argument("lrAt(step): step must be a number");
    return Napi::Number::New(env, trainer()->schedule().lr(info[0].As<Napi::Number>().Int64Value()));
  });
}

Napi::Value TrainerWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto t = trainer();
    const auto& o = t->options();
    Napi::Object r = Napi::Object::New(env);
    r.Set("globalStep", static_cast<double>(t->global_step()));
    r.Set("lr_scheduler_type", train::schedule_kind_name(o.lr_scheduler_type));
    r.Set("learning_rate", o.learning_rate);
    r.Set("warmup_steps", static_cast<double>(o.warmup_steps));
    r.Set("max_steps", static_cast<double>(o.max_steps));
    r.Set("weight_decay", o.weight_decay);
    r.Set("max_grad_norm", o.max_grad_norm);
    r.Set("lambda", o.lambda_);
    r.Set("tau", o.tau);
    r.Set("divergence", kd::divergence_name(o.divergence));
    r.Set("beta", o.beta);
    r.Set("alpha", o.alpha);
    r.Set("hasMentor", static_cast<bool>(t->mentor()));
    r.Set("family", t->student()->family());
    r.Set("device", t->student()->device().str());
    r.Set("bf16", t->autocast_on());
    r.Set("sharding", dist::sharding_name(o.sharding));
    r.Set("optimizerStateBytes", static_cast<double>(t->optimizer_state_bytes()));
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
void Init(Napi::Env env, Napi::Object train) {
  for (auto [name, ctor] : {std::pair{kTrainer, TrainerWrap::Define(env)},
                            std::pair{SoftLabelCacheWrap::kClassName, SoftLabelCacheWrap::Define(env)},
                            std::pair{SoftLabelWriterWrap::kClassName, SoftLabelWriterWrap::Define(env)}}) {
    addon_data(env).constructors[name] = Napi::Persistent(ctor);
    train.Set(name, ctor);
  }
}
}  // namespace

}  // namespace mentor_kd

MENTOR_KD_BINDING(train, mentor_kd::Init);
