#include "bindings/soft_label_writer_wrap.h"

#include "bindings/batch_args.h"
#include "bindings/soft_label_cache_wrap.h"
#include "bindings/t5_model_wrap.h"
#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/instance_data.h"
#include "napi/js_args.h"
#include "napi/tensor_convert.h"

namespace mentor_kd {

Napi::Function SoftLabelWriterWrap::Define(Napi::Env env) {
  return DefineClass(env, kClassName,
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
    if (!o.Get("tau").IsNumber()) throw std::invalid_argument("SoftLabelWriter: options.tau is required (a number)");
    const std::string lp = get_string(o, "logprobDtype", "float32");
    at::ScalarType lp_t = lp == "float32" ? at::kFloat : lp == "float16" ? at::kHalf : at::ScalarType::Undefined;
    if (lp_t == at::ScalarType::Undefined)
      throw std::invalid_argument("option 'logprobDtype' must be float32 or float16");
    state_ = std::make_shared<State>();
    state_->writer =
        std::make_unique<train::SoftLabelWriter>(dir, get_int(o, "vocabSize", 0), get_int(o, "k", 32),
                                                 get_number(o, "tau", 0), lp_t, get_int(o, "shardBytes", 0), meta);
  });
}

// add(mentor, batch, firstExample) -> Promise<rows added>
Napi::Value SoftLabelWriterWrap::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    auto mentor = T5ModelWrap::ModelFrom(info.Length() > 0 ? info[0] : env.Undefined(), "mentor");
    t5::Seq2SeqBatch batch = batch_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "batch");
    const int64_t first = first_example_arg(info, "add(mentor, batch, firstExample)");
    return QueueAdd(env, [=](train::SoftLabelWriter& w) {
      std::lock_guard<std::mutex> m(mentor->mutex());
      return w.add(*mentor, batch, first);
    });
  });
}

// addLogits(mentorLogits, labels, firstExample) -> Promise<rows added>
Napi::Value SoftLabelWriterWrap::AddLogits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard_js(env, [&]() -> Napi::Value {
    at::Tensor logits = tensor_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "mentorLogits");
    at::Tensor labels = tensor_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "labels");
    const int64_t first = first_example_arg(info, "addLogits(logits, labels, firstExample)");
    return QueueAdd(env, [=](train::SoftLabelWriter& w) { return w.add_logits(logits, labels, first); });
  });
}

int64_t SoftLabelWriterWrap::first_example_arg(const Napi::CallbackInfo& info, const char* call) {
  if (info.Length() < 3 || !info[2].IsNumber())
    throw std::invalid_argument(std::string(call) + ": firstExample must be a number");
  return info[2].As<Napi::Number>().Int64Value();
}

// One add at a time on a worker thread (the writer appends in order); resolves to the rows added.
Napi::Value SoftLabelWriterWrap::QueueAdd(Napi::Env env, std::function<int64_t(train::SoftLabelWriter&)> add) {
  auto st = state_;
  auto added = std::make_shared<int64_t>(0);
  return PromiseWorker::Queue(
      env, Value(),
      [=] {
        std::lock_guard<std::mutex> w(st->mutex);
        if (!st->writer) throw std::runtime_error("soft-label writer: already finished or aborted");
        *added = add(*st->writer);
      },
      [=](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*added)); });
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
    if (!w.owns_lock())
      throw std::runtime_error("soft-label writer: cannot abort while add() or finish() runs; await it first");
    if (state_->writer) {
      state_->writer->abort();
      state_->writer.reset();
    }
    return env.Undefined();
  });
}

}  // namespace mentor_kd
