#include "bindings/trainer_wrap.h"

#include <cmath>

#include "bindings/dist_wrap.h"
#include "bindings/t5_model_wrap.h"
#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/instance_data.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"

namespace mentor_kd {
namespace {

constexpr const char* kTrainer = "Trainer";
constexpr const char* kCache = "SoftLabelCache";
constexpr const char* kWriter = "SoftLabelWriter";

Napi::Object options_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw std::invalid_argument(std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw std::invalid_argument(std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t int_option(const Napi::Object& o, const char* key, int64_t fallback) {
  double v = get_number(o, key, static_cast<double>(fallback));
  if (!std::isfinite(v) || v != std::floor(v)) throw std::invalid_argument(std::string("option '") + key + "' must be an integer");
  return static_cast<int64_t>(v);
}

at::Tensor optional_tensor(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return at::Tensor();
  return tensor_from_js(v, where + "." + key);
}

std::vector<int64_t> int_array(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw std::invalid_argument(what + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) throw std::invalid_argument(what + "[" + std::to_string(i) + "] is not a number");
    double d = x.As<Napi::Number>().DoubleValue();
    if (d != std::floor(d) || d < 0) throw std::invalid_argument(what + "[" + std::to_string(i) + "] must be an integer >= 0");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

t5::Seq2SeqBatch batch_from_js(const Napi::Value& v, const std::string& where) {
  if (!v.IsObject()) throw std::invalid_argument(where + " must be an object {inputIds, attentionMask?, labels}");
  Napi::Object o = v.As<Napi::Object>();
  t5::Seq2SeqBatch b;
  b.input_ids = optional_tensor(o, "inputIds", where);
  b.attention_mask = optional_tensor(o, "attentionMask", where);
  b.labels = optional_tensor(o, "labels", where);
  b.decoder_input_ids = optional_tensor(o, "decoderInputIds", where);
  b.decoder_attention_mask = optional_tensor(o, "decoderAttentionMask", where);
  if (!b.input_ids.defined()) throw std::invalid_argument(where + ".inputIds is required");
  return b;
}

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
  t.schedule.warmup_steps = int_option(o, "warmupSteps", 0);
  t.schedule.total_steps = int_option(o, "totalSteps", 0);
  t.adamw.beta1 = get_number(o, "beta1", t.adamw.beta1);
  t.adamw.beta2 = get_number(o, "beta2", t.adamw.beta2);
  t.adamw.eps = get_number(o, "eps", t.adamw.eps);
  t.adamw.weight_decay = get_number(o, "weightDecay", t.adamw.weight_decay);
  t.max_grad_norm = get_number(o, "maxGradNorm", t.max_grad_norm);
  t.kd_lambda = get_number(o, "kdLambda", t.kd_lambda);
  t.kd_tau = get_number(o, "kdTau", t.kd_tau);
  t.mixed_precision = get_bool(o, "mixedPrecision", t.mixed_precision);
  t.loss_chunk_rows = int_option(o, "lossChunkRows", 0);
  Napi::Value seed = o.Get("seed");
  if (!seed.IsUndefined() && !seed.IsNull()) {
    int64_t s = int_option(o, "seed", 0);
    if (s < 0) throw std::invalid_argument("option 'seed' must be >= 0");
    t.seed = static_cast<uint64_t>(s);
  }
  t.validate();
  return t;
}

Napi::Object cache_info_to_js(Napi::Env env, const train::SoftLabelCacheInfo& i) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dir", i.dir);
  o.Set("vocabSize", static_cast<double>(i.vocab_size));
  o.Set("k", static_cast<double>(i.k));
  o.Set("tau", i.tau);
  o.Set("numExamples", static_cast<double>(i.num_examples));
  o.Set("numTokens", static_cast<double>(i.num_tokens));
  o.Set("indexDtype", i.index_dtype);
  o.Set("logprobDtype", i.logprob_dtype);
  o.Set("dataBytes", static_cast<double>(i.data_bytes));
  o.Set("bytesPerToken", i.num_tokens > 0 ? static_cast<double>(i.data_bytes) / static_cast<double>(i.num_tokens) : 0.0);
  Napi::Object meta = Napi::Object::New(env);
  for (const auto& [k, v] : i.metadata) meta.Set(k, v);
  o.Set("metadata", meta);
  return o;
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
    r.Set("mixedPrecision", o.mixed_precision && t->student()->device().is_cuda());
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

// ---------------------------------------------------------------------------
// SoftLabelCache

Napi::Function SoftLabelCacheWrap::Define(Napi::Env env) {
  return DefineClass(env, kCache,
                     {
                         StaticMethod<&SoftLabelCacheWrap::Open>("open"),
                         InstanceMethod<&SoftLabelCacheWrap::Info>("info"),
                         InstanceMethod<&SoftLabelCacheWrap::NumTokensOf>("numTokensOf"),
                         InstanceMethod<&SoftLabelCacheWrap::Gather>("gather"),
                     });
}

SoftLabelCacheWrap::SoftLabelCacheWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SoftLabelCacheWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "SoftLabelCache cannot be constructed directly: use SoftLabelCache.open(dir)");
  cache_ = *info[0].As<Napi::External<std::shared_ptr<const train::SoftLabelCache>>>().Data();
}

std::shared_ptr<const train::SoftLabelCache> SoftLabelCacheWrap::CacheFrom(const Napi::Value& value, const std::string& what) {
  Napi::Env env = value.Env();
  Napi::FunctionReference& ctor = addon_data(env).constructors.at(kCache);
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor.Value()))
    throw std::invalid_argument(what + " must be a native SoftLabelCache");
  return Unwrap(value.As<Napi::Object>())->cache_;
}

Napi::Value SoftLabelCacheWrap::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    std::string dir = string_arg(info, 0, "SoftLabelCache.open(dir): dir");
    auto result = std::make_shared<std::shared_ptr<const train::SoftLabelCache>>();
    return PromiseWorker::Queue(
        env, Napi::Object(), [=] { *result = std::make_shared<const train::SoftLabelCache>(dir); },
        [=](Napi::Env e) -> Napi::Value {
          std::shared_ptr<const train::SoftLabelCache> holder = *result;
          auto ext = Napi::External<std::shared_ptr<const train::SoftLabelCache>>::New(e, &holder);
          return addon_data(e).constructors.at(kCache).New({ext});
        });
  });
}

Napi::Value SoftLabelCacheWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value { return cache_info_to_js(env, cache_->info()); });
}

Napi::Value SoftLabelCacheWrap::NumTokensOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw std::invalid_argument("numTokensOf(example): example must be a number");
    return Napi::Number::New(env, static_cast<double>(cache_->num_tokens_of(info[0].As<Napi::Number>().Int64Value())));
  });
}

Napi::Value SoftLabelCacheWrap::Gather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto ids = int_array(info.Length() > 0 ? info[0] : env.Undefined(), "exampleIds");
    at::Tensor labels = tensor_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "labels");
    kd::TopK t = cache_->gather(ids, labels, -100);
    Napi::Object o = Napi::Object::New(env);
    o.Set("indices", tensor_to_js(env, t.indices));
    o.Set("logprobs", tensor_to_js(env, t.logprobs));
    o.Set("restMass", tensor_to_js(env, t.rest_mass));
    return o;
  });
}

// ---------------------------------------------------------------------------
// SoftLabelWriter

Napi::Function SoftLabelWriterWrap::Define(Napi::Env env) {
  return DefineClass(env, kWriter,
                     {
                         InstanceMethod<&SoftLabelWriterWrap::Add>("add"),
                         InstanceMethod<&SoftLabelWriterWrap::AddLogits>("addLogits"),
                         InstanceMethod<&SoftLabelWriterWrap::Finish>("finish"),
                         InstanceMethod<&SoftLabelWriterWrap::Abort>("abort"),
                     });
}

// new SoftLabelWriter(dir, {vocabSize, k, tau, logprobDtype?, shardBytes?, metadata?})
SoftLabelWriterWrap::SoftLabelWriterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SoftLabelWriterWrap>(info) {
  Napi::Env env = info.Env();
  guard_js(env, [&] {
    std::string dir = string_arg(info, 0, "SoftLabelWriter(dir, options): dir");
    Napi::Object o = options_arg(info, 1, "options");
    std::map<std::string, std::string> meta;
    Napi::Value mv = o.Get("metadata");
    if (mv.IsObject()) {
      Napi::Object mo = mv.As<Napi::Object>();
      Napi::Array keys = mo.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
        Napi::Value val = mo.Get(k);
        if (!val.IsString()) throw std::invalid_argument("options.metadata['" + k + "'] must be a string");
        meta[k] = val.As<Napi::String>().Utf8Value();
      }
    }
    const std::string lp = get_string(o, "logprobDtype", "float32");
    at::ScalarType lp_t = lp == "float32" ? at::kFloat : lp == "float16" ? at::kHalf : at::ScalarType::Undefined;
    if (lp_t == at::ScalarType::Undefined) throw std::invalid_argument("option 'logprobDtype' must be float32 or float16");
    state_ = std::make_shared<State>();
    state_->writer = std::make_unique<train::SoftLabelWriter>(dir, int_option(o, "vocabSize", 0), int_option(o, "k", 32),
                                                              get_number(o, "tau", 2.0), lp_t,
                                                              int_option(o, "shardBytes", 0), meta);
  });
}

Napi::Value SoftLabelWriterWrap::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto mentor = T5ModelWrap::ModelFrom(info.Length() > 0 ? info[0] : env.Undefined(), "mentor");
    t5::Seq2SeqBatch batch = batch_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "batch");
    if (info.Length() < 3 || !info[2].IsNumber()) throw std::invalid_argument("add(mentor, batch, firstExample): firstExample must be a number");
    const int64_t first = info[2].As<Napi::Number>().Int64Value();
    auto st = state_;
    auto added = std::make_shared<int64_t>(0);
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> w(st->mutex);
          if (!st->writer) throw std::runtime_error("soft-label writer: already finished or aborted");
          std::lock_guard<std::mutex> m(mentor->mutex());
          *added = st->writer->add(*mentor, batch, first);
        },
        [=](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*added)); });
  });
}

Napi::Value SoftLabelWriterWrap::AddLogits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    at::Tensor logits = tensor_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "mentorLogits");
    at::Tensor labels = tensor_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "labels");
    if (info.Length() < 3 || !info[2].IsNumber()) throw std::invalid_argument("addLogits(logits, labels, firstExample): firstExample must be a number");
    const int64_t first = info[2].As<Napi::Number>().Int64Value();
    auto st = state_;
    auto added = std::make_shared<int64_t>(0);
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> w(st->mutex);
          if (!st->writer) throw std::runtime_error("soft-label writer: already finished or aborted");
          *added = st->writer->add_logits(logits, labels, first);
        },
        [=](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*added)); });
  });
}

Napi::Value SoftLabelWriterWrap::Finish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    int64_t expected = -1;
    if (info.Length() > 0 && info[0].IsNumber()) expected = info[0].As<Napi::Number>().Int64Value();
    auto st = state_;
    auto out = std::make_shared<train::SoftLabelCacheInfo>();
    return PromiseWorker::Queue(
        env, Value(),
        [=] {
          std::lock_guard<std::mutex> w(st->mutex);
          if (!st->writer) throw std::runtime_error("soft-label writer: already finished or aborted");
          *out = st->writer->finish(expected);
          st->writer.reset();
        },
        [=](Napi::Env e) -> Napi::Value { return cache_info_to_js(e, *out); });
  });
}

Napi::Value SoftLabelWriterWrap::Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    std::unique_lock<std::mutex> w(state_->mutex, std::try_to_lock);
    if (!w.owns_lock()) throw std::runtime_error("soft-label writer: cannot abort while add() or finish() runs; await it first");
    if (state_->writer) {
      state_->writer->abort();
      state_->writer.reset();
    }
    return env.Undefined();
  });
}

namespace {
void Init(Napi::Env env, Napi::Object exports) {
  for (auto [name, ctor] : {std::pair{kTrainer, TrainerWrap::Define(env)}, std::pair{kCache, SoftLabelCacheWrap::Define(env)},
                            std::pair{kWriter, SoftLabelWriterWrap::Define(env)}}) {
    addon_data(env).constructors[name] = Napi::Persistent(ctor);
    exports.Set(name, ctor);
  }
}
}  // namespace

}  // namespace mentor_kd

MENTOR_KD_BINDING(trainer, mentor_kd::Init);
