// JS side of native/parallel: `parallel.ProcessGroup` (c10d group + small collectives)
// and `parallel.DataParallel` (bucketed gradient all-reduce overlapping backward,
// parameter broadcast). The minimal CE + SGD step of tests and benchmarks is in the
// dev addon (native/dev/dev_binding.cc). Every collective runs in a
// PromiseWorker: the event loop never blocks, not even on a hung peer.
//
// Order: a collective takes its ticket here, on the JS thread, at call time;
// its worker waits for its turn, so collectives run in JS call order on every
// rank even though libuv may start the workers in any order.
//
// Builds without c10d export `parallel.available = false` and the same names,
// whose calls fail with "built without distributed support".
#include <napi.h>

#include <cmath>
#include <memory>

#include "bindings/parallel_wrap.h"
#include "bindings/t5_model_wrap.h"
#include "napi/async_worker.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/instance_data.h"
#include "napi/registry.h"
#include "napi/tensor_convert.h"

#ifdef MENTOR_KD_WITH_C10D
#include "parallel/grad_reducer.h"
#include "parallel/group.h"
#endif

namespace mentor_kd {
namespace {

constexpr const char* kGroupClass = "DistProcessGroup";
constexpr const char* kDataParallelClass = "DistDataParallel";

#ifdef MENTOR_KD_WITH_C10D

using dist::Group;

class ProcessGroupWrap : public Napi::ObjectWrap<ProcessGroupWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, kGroupClass,
                       {
                           StaticMethod<&ProcessGroupWrap::Create>("create"),
                           InstanceMethod<&ProcessGroupWrap::Rank>("rank"),
                           InstanceMethod<&ProcessGroupWrap::Size>("size"),
                           InstanceMethod<&ProcessGroupWrap::Backend>("backend"),
                           InstanceMethod<&ProcessGroupWrap::Transport>("transport"),
                           InstanceMethod<&ProcessGroupWrap::TimeoutMs>("timeoutMs"),
                           InstanceMethod<&ProcessGroupWrap::Broken>("broken"),
                           InstanceMethod<&ProcessGroupWrap::Allreduce>("allreduce"),
                           InstanceMethod<&ProcessGroupWrap::Broadcast>("broadcast"),
                           InstanceMethod<&ProcessGroupWrap::Allgather>("allgather"),
                           InstanceMethod<&ProcessGroupWrap::AllgatherBytes>("allgatherBytes"),
                           InstanceMethod<&ProcessGroupWrap::BroadcastBytes>("broadcastBytes"),
                           InstanceMethod<&ProcessGroupWrap::Barrier>("barrier"),
                           InstanceMethod<&ProcessGroupWrap::PatientBarrier>("patientBarrier"),
                           InstanceMethod<&ProcessGroupWrap::Destroy>("destroy"),
                       });
  }

  explicit ProcessGroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "ProcessGroup cannot be constructed directly: use initProcessGroup()");
    group_ = *info[0].As<Napi::External<std::shared_ptr<Group>>>().Data();
  }

  static std::shared_ptr<Group> GroupFrom(const Napi::Value& v, const char* what) {
    Napi::Env env = v.Env();
    Napi::FunctionReference& ctor = addon_data(env).constructors.at(kGroupClass);
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor.Value()))
      throw std::invalid_argument(std::string(what) + " must be a native ProcessGroup");
    return Unwrap(v.As<Napi::Object>())->group();
  }

 private:
  std::shared_ptr<Group> group() const {
    if (!group_) throw std::runtime_error("this ProcessGroup was destroyed");
    return group_;
  }

  static Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      Napi::Object o = options_arg(info, 0, "options");
      dist::GroupOptions go;
      go.rank = static_cast<int>(get_int(o, "rank", 0));
      go.world_size = static_cast<int>(get_int(o, "worldSize", 1));
      go.local_rank = static_cast<int>(get_int(o, "localRank", 0));
      go.master_addr = get_string(o, "masterAddr", "127.0.0.1");
      go.master_port = static_cast<int>(get_int(o, "masterPort", 29500));
      go.backend = get_string(o, "backend", "gloo");
      go.socket_ifname = get_string(o, "socketIfname", "");
      go.timeout = std::chrono::milliseconds(get_int(o, "timeoutMs", 30 * 60 * 1000));
      go.validate();
      auto result = std::make_shared<std::shared_ptr<Group>>();
      return PromiseWorker::Queue(
          env, Napi::Object(), [=] { *result = Group::create(go); },
          [=](Napi::Env e) -> Napi::Value {
            std::shared_ptr<Group> holder = *result;
            auto ext = Napi::External<std::shared_ptr<Group>>::New(e, &holder);
            return addon_data(e).constructors.at(kGroupClass).New({ext});
          });
    });
  }

  Napi::Value Rank(const Napi::CallbackInfo& info) {
    return guard_js(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), group()->rank()); });
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return guard_js(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), group()->size()); });
  }
  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return guard_js(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), group()->backend()); });
  }
  Napi::Value Transport(const Napi::CallbackInfo& info) {
    return guard_js(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), group()->transport()); });
  }
  Napi::Value TimeoutMs(const Napi::CallbackInfo& info) {
    return guard_js(info.Env(), [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(), static_cast<double>(group()->options().timeout.count()));
    });
  }
  Napi::Value Broken(const Napi::CallbackInfo& info) {
    return guard_js(info.Env(), [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), group()->broken()); });
  }

  // Queues fn(group) as the next collective in call order.
  template <typename Work, typename Resolve>
  Napi::Value Collective(Napi::Env env, Work work, Resolve resolve) {
    auto g = group();
    const uint64_t ticket = g->take_ticket();
    return PromiseWorker::Queue(
        env, Value(),
        [g, ticket, work] {
          Group::Turn turn(*g, ticket);
          work(*g);
        },
        resolve);
  }

  // allreduce(tensor, op = 'sum') -> the reduced tensor (float32/float64/int32/int64).
  Napi::Value Allreduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      at::Tensor t = tensor_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "tensor");
      std::string op = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum";
      dist::ReduceKind kind;
      if (op == "sum")
        kind = dist::ReduceKind::Sum;
      else if (op == "max")
        kind = dist::ReduceKind::Max;
      else if (op == "min")
        kind = dist::ReduceKind::Min;
      else
        throw std::invalid_argument("op must be 'sum', 'max' or 'min', got '" + op + "'");
      auto out = std::make_shared<at::Tensor>();
      return Collective(
          env,
          [t, kind, out](Group& g) {
            at::Tensor x = t.to(g.comm_device());
            g.run("allreduce", [&] { g.allreduce(x, kind); });
            *out = x.cpu();
          },
          [out](Napi::Env e) -> Napi::Value { return tensor_to_js(e, *out); });
    });
  }

  // broadcast(tensor, root) -> root's tensor (every rank passes one of the same shape and dtype).
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      at::Tensor t = tensor_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "tensor");
      if (info.Length() < 2 || !info[1].IsNumber())
        throw std::invalid_argument("broadcast(tensor, root): root must be a rank number");
      const int root = info[1].As<Napi::Number>().Int32Value();
      auto out = std::make_shared<at::Tensor>();
      return Collective(
          env,
          [t, root, out](Group& g) {
            at::Tensor x = t.to(g.comm_device());
            g.run("broadcast", [&] { g.broadcast(x, root); });
            *out = x.cpu();
          },
          [out](Napi::Env e) -> Napi::Value { return tensor_to_js(e, *out); });
    });
  }

  // allgather(tensor) -> one tensor per rank (same shape everywhere).
  Napi::Value Allgather(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      at::Tensor t = tensor_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "tensor");
      auto out = std::make_shared<std::vector<at::Tensor>>();
      return Collective(
          env,
          [t, out](Group& g) {
            at::Tensor x = t.to(g.comm_device());
            g.run("allgather", [&] { *out = g.allgather(x); });
            for (auto& p : *out) p = p.cpu();
          },
          [out](Napi::Env e) -> Napi::Value {
            Napi::Array a = Napi::Array::New(e, out->size());
            for (size_t i = 0; i < out->size(); ++i) a.Set(static_cast<uint32_t>(i), tensor_to_js(e, (*out)[i]));
            return a;
          });
    });
  }

  static std::vector<uint8_t> bytes_arg(const Napi::CallbackInfo& info, const char* what) {
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw std::invalid_argument(std::string(what) + " must be a Uint8Array");
    Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
    return std::vector<uint8_t>(a.Data(), a.Data() + a.ElementLength());
  }

  // allgatherBytes(Uint8Array) -> one Uint8Array per rank (lengths may differ).
  Napi::Value AllgatherBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      std::vector<uint8_t> bytes = bytes_arg(info, "allgatherBytes(bytes): bytes");
      auto out = std::make_shared<std::vector<std::vector<uint8_t>>>();
      return Collective(
          env, [bytes, out](Group& g) { g.run("allgatherObject", [&] { *out = g.allgather_bytes(bytes); }); },
          [out](Napi::Env e) -> Napi::Value {
            Napi::Array a = Napi::Array::New(e, out->size());
            for (size_t i = 0; i < out->size(); ++i) {
              auto b = Napi::Uint8Array::New(e, (*out)[i].size());
              if (!(*out)[i].empty()) std::memcpy(b.Data(), (*out)[i].data(), (*out)[i].size());
              a.Set(static_cast<uint32_t>(i), b);
            }
            return a;
          });
    });
  }

  // broadcastBytes(Uint8Array, root) -> root's bytes (others may pass an empty array).
  Napi::Value BroadcastBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      std::vector<uint8_t> bytes = bytes_arg(info, "broadcastBytes(bytes, root): bytes");
      if (info.Length() < 2 || !info[1].IsNumber())
        throw std::invalid_argument("broadcastBytes(bytes, root): root must be a rank number");
      const int root = info[1].As<Napi::Number>().Int32Value();
      auto out = std::make_shared<std::vector<uint8_t>>();
      return Collective(
          env,
          [bytes, root, out](Group& g) {
            g.run("broadcastObject", [&] {
              const auto dev = g.comm_device();
              at::Tensor len =
                  at::full({1}, static_cast<int64_t>(bytes.size()), at::TensorOptions().dtype(at::kLong).device(dev));
              g.broadcast(len, root);
              const int64_t n = len.cpu().item<int64_t>();
              at::Tensor buf = at::zeros({std::max<int64_t>(n, 1)}, at::TensorOptions().dtype(at::kByte));
              if (g.rank() == root && n > 0) std::memcpy(buf.data_ptr<uint8_t>(), bytes.data(), bytes.size());
              buf = buf.to(dev);
              g.broadcast(buf, root);
              buf = buf.cpu();
              out->assign(buf.data_ptr<uint8_t>(), buf.data_ptr<uint8_t>() + n);
            });
          },
          [out](Napi::Env e) -> Napi::Value {
            auto b = Napi::Uint8Array::New(e, out->size());
            if (!out->empty()) std::memcpy(b.Data(), out->data(), out->size());
            return b;
          });
    });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      return Collective(
          env, [](Group& g) { g.run("barrier", [&] { g.barrier(); }); }, nullptr);
    });
  }

  // patientBarrier(what): no timeout while the late ranks are alive (parallel/group.h).
  Napi::Value PatientBarrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      std::string what =
          info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "patient barrier";
      return Collective(
          env, [what](Group& g) { g.run(what, [&] { g.patient_barrier(); }); }, nullptr);
    });
  }

  // destroy(): waits for queued collectives, leaves the group; idempotent.
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      if (!group_) {
        auto d = Napi::Promise::Deferred::New(env);
        d.Resolve(env.Undefined());
        return d.Promise();
      }
      std::shared_ptr<Group> g = std::move(group_);
      const uint64_t ticket = g->take_ticket();
      return PromiseWorker::Queue(
          env, Value(),
          [g, ticket] {
            Group::Turn turn(*g, ticket);
            g->destroy();
          },
          nullptr);
    });
  }

  std::shared_ptr<Group> group_;
};

class DataParallelWrap : public Napi::ObjectWrap<DataParallelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, kDataParallelClass,
                       {
                           StaticMethod<&DataParallelWrap::Create>("create"),
                           InstanceMethod<&DataParallelWrap::AllreduceGradients>("allreduceGradients"),
                           InstanceMethod<&DataParallelWrap::BroadcastParameters>("broadcastParameters"),
                           InstanceMethod<&DataParallelWrap::Buckets>("buckets"),
                       });
  }

  static std::shared_ptr<dist::GradReducer> ReducerFrom(const Napi::Value& v, const char* what) {
    Napi::Env env = v.Env();
    Napi::FunctionReference& ctor = addon_data(env).constructors.at(kDataParallelClass);
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor.Value()))
      throw std::invalid_argument(std::string(what) + " must be a native DataParallel");
    return Unwrap(v.As<Napi::Object>())->reducer_;
  }

  explicit DataParallelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataParallelWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(),
                                 "DataParallel cannot be constructed directly: use DataParallel.create(group, model)");
    reducer_ = *info[0].As<Napi::External<std::shared_ptr<dist::GradReducer>>>().Data();
  }

 private:
  // create(group, model, {bucketBytes}) — synchronous: only bucket bookkeeping, no communication.
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      auto g = ProcessGroupWrap::GroupFrom(info.Length() > 0 ? info[0] : env.Undefined(), "group");
      auto m = T5ModelWrap::ModelFrom(info.Length() > 1 ? info[1] : env.Undefined(), "model");
      Napi::Object o = options_arg(info, 2, "options");
      const int64_t bucket = get_int(o, "bucketBytes", dist::GradReducer::kDefaultBucketBytes);
      std::shared_ptr<dist::GradReducer> holder = dist::GradReducer::create(g, m, bucket);
      auto ext = Napi::External<std::shared_ptr<dist::GradReducer>>::New(env, &holder);
      return addon_data(env).constructors.at(kDataParallelClass).New({ext});
    });
  }

  template <typename Work, typename Resolve>
  Napi::Value Collective(Napi::Env env, Work work, Resolve resolve) {
    auto r = reducer_;
    const uint64_t ticket = r->group()->take_ticket();
    return PromiseWorker::Queue(
        env, Value(),
        [r, ticket, work] {
          Group::Turn turn(*r->group(), ticket);
          work(*r);
        },
        resolve);
  }

  static Napi::Object stats_to_js(Napi::Env env, const dist::ReduceStats& s) { return ReduceStatsToJs(env, s); }

  // allreduceGradients({average = 'mean', localTokens?, scale?}) after a backward done elsewhere.
  Napi::Value AllreduceGradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      Napi::Object o = options_arg(info, 0, "options");
      const std::string average = get_string(o, "average", "mean");
      if (average != "mean" && average != "sum")
        throw std::invalid_argument("options.average must be 'mean' or 'sum', got '" + average + "'");
      const int64_t local_tokens = get_int(o, "localTokens", -1);
      Napi::Value sv = o.Get("scale");
      const bool has_scale = !sv.IsUndefined() && !sv.IsNull();
      const double scale = has_scale ? get_number(o, "scale", 1.0) : 1.0;
      if (has_scale && !std::isfinite(scale)) throw std::invalid_argument("options.scale must be finite");
      if (has_scale && local_tokens >= 0)
        throw std::invalid_argument("options.scale and options.localTokens exclude each other");
      auto out = std::make_shared<dist::ReduceStats>();
      auto tokens = std::make_shared<int64_t>(0);
      return Collective(
          env,
          [=](dist::GradReducer& r) {
            Group& g = *r.group();
            double s = has_scale ? scale : (average == "mean" ? 1.0 / g.size() : 1.0);
            std::lock_guard<std::mutex> lock(r.model()->mutex());
            if (local_tokens >= 0) {
              // Each rank's gradient is of its mean over local_tokens: weight it by local/global.
              at::Tensor t = at::full({1}, local_tokens, at::TensorOptions().dtype(at::kLong).device(g.comm_device()));
              g.run("token count", [&] { g.allreduce(t); });
              *tokens = t.cpu().item<int64_t>();
              if (*tokens == 0) throw std::invalid_argument("allreduceGradients: localTokens is 0 on every rank");
              s = static_cast<double>(local_tokens) / static_cast<double>(*tokens);
            }
            g.run("allreduceGradients", [&] { *out = r.allreduce_now(s); });
          },
          [out, tokens](Napi::Env e) -> Napi::Value {
            Napi::Object res = stats_to_js(e, *out);
            if (*tokens > 0) res.Set("globalTokens", static_cast<double>(*tokens));
            return res;
          });
    });
  }

  Napi::Value BroadcastParameters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      const int root = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
      if (root < 0 || root >= reducer_->group()->size())
        throw std::invalid_argument("root must be a rank in 0.." + std::to_string(reducer_->group()->size() - 1) +
                                    ", got " + std::to_string(root));
      return Collective(
          env,
          [root](dist::GradReducer& r) {
            std::lock_guard<std::mutex> lock(r.model()->mutex());
            r.group()->run("broadcastParameters", [&] { r.broadcast_parameters(root); });
          },
          nullptr);
    });
  }

  Napi::Value Buckets(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_js(env, [&]() -> Napi::Value {
      const auto& b = reducer_->buckets();
      Napi::Array a = Napi::Array::New(env, b.size());
      for (size_t i = 0; i < b.size(); ++i) {
        Napi::Object o = Napi::Object::New(env);
        Napi::Array names = Napi::Array::New(env, b[i].names.size());
        for (size_t j = 0; j < b[i].names.size(); ++j) names.Set(static_cast<uint32_t>(j), b[i].names[j]);
        o.Set("names", names);
        o.Set("numel", static_cast<double>(b[i].numel));
        o.Set("bytes", static_cast<double>(b[i].bytes));
        o.Set("dtype", b[i].dtype);
        a.Set(static_cast<uint32_t>(i), o);
      }
      return a;
    });
  }

  std::shared_ptr<dist::GradReducer> reducer_;
};

void Init(Napi::Env env, Napi::Object d) {
  d.Set("available", true);
#ifdef MENTOR_KD_WITH_C10D_NCCL
  d.Set("nccl", true);
#else
  d.Set("nccl", false);
#endif
  Napi::Function pg = ProcessGroupWrap::Define(env);
  addon_data(env).constructors[kGroupClass] = Napi::Persistent(pg);
  d.Set("ProcessGroup", pg);
  Napi::Function dp = DataParallelWrap::Define(env);
  addon_data(env).constructors[kDataParallelClass] = Napi::Persistent(dp);
  d.Set("DataParallel", dp);
}

}  // namespace

std::shared_ptr<dist::GradSync> GradSyncFrom(const Napi::Value& value, const char* what, const t5::T5Model* model) {
  auto r = DataParallelWrap::ReducerFrom(value, what);
  if (model && r->model().get() != model)
    throw std::invalid_argument(std::string(what) + " was made for another model than the one being trained");
  return std::make_shared<dist::ReducerGradSync>(r);
}

std::shared_ptr<dist::GradReducer> ReducerFrom(const Napi::Value& value, const char* what) {
  return DataParallelWrap::ReducerFrom(value, what);
}

Napi::Object ReduceStatsToJs(Napi::Env env, const dist::ReduceStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("buckets", static_cast<double>(s.buckets));
  o.Set("startedInBackward", static_cast<double>(s.started_in_backward));
  o.Set("waitSeconds", s.wait_seconds);
  return o;
}

namespace {

#else  // !MENTOR_KD_WITH_C10D

Napi::Value Unavailable(const Napi::CallbackInfo& info) {
  throw Napi::Error::New(info.Env(),
                         "mentor-kd was built without distributed support: this libtorch has no c10d with Gloo "
                         "(rebuild against a libtorch with distributed support; Debian: libtorch-dev + libgloo-dev)");
}

void Init(Napi::Env env, Napi::Object d) {
  d.Set("available", false);
  d.Set("nccl", false);
  Napi::Object pg = Napi::Object::New(env);
  pg.Set("create", Napi::Function::New(env, Unavailable, "create"));
  d.Set("ProcessGroup", pg);
  Napi::Object dp = Napi::Object::New(env);
  dp.Set("create", Napi::Function::New(env, Unavailable, "create"));
  d.Set("DataParallel", dp);
}

}  // namespace

std::shared_ptr<dist::GradSync> GradSyncFrom(const Napi::Value& value, const char* what, const t5::T5Model* model) {
  throw std::runtime_error("mentor-kd was built without distributed support: " + std::string(what) + " cannot be used");
}

namespace {
#endif

}  // namespace
}  // namespace mentor_kd

MENTOR_KD_BINDING(parallel, mentor_kd::Init);
