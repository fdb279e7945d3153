// The one AsyncWorker every long native call goes through.
//
// Work runs on a libuv pool thread (never on the JS thread); the result is
// converted to JS on the main thread. The worker holds a strong reference to
// the owning JS object for its whole life, so a model cannot be garbage
// collected (and its finalizer cannot free the C++ side) while work on it is
// in flight. Exceptions become Promise rejections via napi/errors.h.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>

#include "napi/errors.h"
#include "runtime/settings.h"

namespace mentor_kd {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Resolve = std::function<Napi::Value(Napi::Env)>;

  // owner may be empty (free functions).
  static Napi::Promise Queue(Napi::Env env, Napi::Object owner, Work work, Resolve resolve) {
    auto* w = new PromiseWorker(env, owner, std::move(work), std::move(resolve));
    auto promise = w->deferred_.Promise();
    w->Napi::AsyncWorker::Queue();
    return promise;
  }

 protected:
  PromiseWorker(Napi::Env env, Napi::Object owner, Work work, Resolve resolve)
      : Napi::AsyncWorker(env, "mentor_kd"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        resolve_(std::move(resolve)) {
    if (!owner.IsEmpty()) owner_ = Napi::Persistent(owner);
  }

  void Execute() override {
    try {
      runtime::apply_thread_settings();
      work_();
    } catch (...) {
      SetError(current_exception_message());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(resolve_ ? resolve_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(Napi::Error::New(env, current_exception_message()).Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference owner_;
  Work work_;
  Resolve resolve_;
};

}  // namespace mentor_kd
