// Benchmark driver (see kd_bench.h). Peak CPU memory is measured two ways:
//  * a counting wrapper around libtorch's CPU allocator (c10::SetCPUAllocator)
//    gives the exact bytes held by tensors at the peak;
//  * VmHWM − VmRSS after resetting the high-water mark through
//    /proc/self/clear_refs gives what the process really touched.
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <torch/csrc/api/include/torch/version.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "dev/kd_bench.h"
#include "dev/kd_reference.h"
#include "kd/kd_common.h"
#include "kd/kd_loss.h"

#ifdef MENTOR_KD_WITH_CUDA
namespace mentor_kd {
namespace kd {
// kd_loss_cuda.cu
void cuda_synchronize();
void cuda_reset_peak_memory();
int64_t cuda_allocated_bytes();
int64_t cuda_peak_allocated_bytes();
std::string cuda_device_name();
}  // namespace kd
}  // namespace mentor_kd
#endif

namespace mentor_kd {
namespace kd {
namespace {

// ---- counting CPU allocator ------------------------------------------------------------
class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(size_t n) override { return wrap(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#else
  c10::DataPtr allocate(size_t n) const override { return wrap(n); }
#endif

  int64_t current() const { return cur_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(cur_.load()); }

 private:
  struct Ctx {
    c10::DataPtr inner;
    size_t n;
    const CountingAllocator* owner;
  };
  static void release(void* p) {
    auto* ctx = static_cast<Ctx*>(p);
    ctx->owner->cur_.fetch_sub(static_cast<int64_t>(ctx->n));
    delete ctx;  // frees inner through the base allocator's deleter
  }
  c10::DataPtr wrap(size_t n) const {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    c10::Device dev = inner.device();
    auto* ctx = new Ctx{std::move(inner), n, this};
    const int64_t now = cur_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t p = peak_.load();
    while (now > p && !peak_.compare_exchange_weak(p, now)) {
    }
    return c10::DataPtr(data, ctx, &release, dev);
  }

  c10::Allocator* base_;
  mutable std::atomic<int64_t> cur_{0}, peak_{0};
};

CountingAllocator* counting_allocator() {
  static CountingAllocator* a = [] {
    auto* c = new CountingAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(c, /*priority=*/100);
    return c;
  }();
  return a;
}

int64_t proc_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::stoll(line.substr(k.size()));
  return -1;
}

bool reset_hwm() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f);
}

int64_t bytes_of(const at::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

}  // namespace

BenchResult run_bench(const BenchOptions& o) {
  TORCH_CHECK(o.rows > 0 && o.vocab > 0 && o.iters > 0 && o.warmup >= 0, "kd bench: rows, vocab, iters must be > 0");
  const std::string& v = o.variant;
  const bool linear = v.rfind("linear", 0) == 0;
  const bool topk_mentor = v == "topk" || v == "topk_unfused" || v == "linear_topk";
  TORCH_CHECK(v == "fused" || v == "fused_inplace" || v == "unfused" || v == "topk" || v == "topk_unfused" ||
                  v == "linear" || v == "linear_topk" || v == "linear_kd" || v == "linear_unfused",
              "kd bench: unknown variant '", v, "'");
  const at::Device dev(o.device);
  const bool cuda = dev.is_cuda();
  TORCH_CHECK(!cuda || at::hasCUDA(), "kd bench: device ", o.device, " requested but CUDA is not available");
#ifndef MENTOR_KD_WITH_CUDA
  TORCH_CHECK(!cuda, "kd bench: this addon was built without CUDA kernels");
#endif
  CountingAllocator* counter = cuda ? nullptr : counting_allocator();

  at::manual_seed(o.seed);
  const int64_t N = o.rows, V = o.vocab;
  auto opt = at::TensorOptions().device(dev);
  at::NoGradGuard no_grad_setup;
  // Mentor = a noisy, sharper copy of the student, so that q and p_τ overlap as in training.
  at::Tensor s0 = at::randn({N, V}, opt.dtype(at::kFloat)).mul_(2.0);
  at::Tensor labels = at::randint(0, V, {N}, opt.dtype(at::kLong));
  labels.masked_fill_(at::rand({N}, opt.dtype(at::kFloat)).lt(o.ignore_frac), -100);
  at::Tensor mentor, hidden, weight;
  TopK topk;
  if (linear) {
    hidden = (at::randn({N, o.hidden}, opt.dtype(at::kFloat)) * 0.5).to(o.dtype);
    weight = (at::randn({V, o.hidden}, opt.dtype(at::kFloat)) * (1.0 / std::sqrt(double(o.hidden)))).to(o.dtype);
    at::Tensor ml =
        (at::mm(hidden.to(at::kFloat), weight.to(at::kFloat).t()) * 1.5 + at::randn({N, V}, opt.dtype(at::kFloat)));
    if (topk_mentor)
      topk = topk_soft_labels(ml, o.k, o.tau);
    else
      mentor = ml.to(o.mentor_dtype);
    s0 = at::Tensor();
  } else {
    at::Tensor ml = s0 * 1.5 + at::randn({N, V}, opt.dtype(at::kFloat));
    if (topk_mentor)
      topk = topk_soft_labels(ml, o.k, o.tau);
    else
      mentor = ml.to(o.mentor_dtype);
    s0 = s0.to(o.dtype);
  }
  at::Tensor student;
  if (!linear) student = s0.clone();
  if (v != "fused_inplace") s0 = at::Tensor();  // only the in-place variant needs a pristine copy
  if (hidden.defined()) {
    hidden.requires_grad_(true);
    weight.requires_grad_(true);
  } else {
    student.requires_grad_(true);
  }

  KdOptions ko = KdOptions::with_lambda(o.lambda, o.tau, divergence_from_name(o.divergence));
  ko.beta = o.beta;
  ko.alpha = o.alpha;
  ko.inplace_grad = v == "fused_inplace";

  BenchResult r;
  r.input_bytes = bytes_of(student) + bytes_of(mentor) + bytes_of(hidden) + bytes_of(weight) + bytes_of(labels) +
                  bytes_of(topk.indices) + bytes_of(topk.logprobs) + bytes_of(topk.rest_mass);
  if (v == "fused" || v == "fused_inplace")
    r.min_traffic_bytes = N * V * (student.element_size() + mentor.element_size() + student.element_size());
  else if (v == "topk")
    r.min_traffic_bytes = N * V * 2 * student.element_size();
  r.threads = at::get_num_threads();
  r.isa = cpu_isa();
  r.memory_method = cuda ? "CUDA caching allocator peak allocated bytes"
                         : "counting CPU allocator (tensor bytes) and VmHWM-VmRSS after clear_refs";
#ifdef MENTOR_KD_WITH_CUDA
  if (cuda) r.device_name = cuda_device_name();
#endif
  if (!cuda) r.device_name = "cpu";

  auto sync = [&] {
#ifdef MENTOR_KD_WITH_CUDA
    if (cuda) cuda_synchronize();
#endif
  };
  auto step = [&]() -> at::Tensor {
    at::AutoGradMode grad_on(true);
    at::Tensor loss;
    if (v == "fused" || v == "fused_inplace") {
      loss = kd_loss(student, mentor, labels, ko).loss;
    } else if (v == "unfused") {
      loss = kd_loss_reference(student, mentor, labels, ko, /*upcast=*/false).loss;
    } else if (v == "topk") {
      loss = kd_loss_topk(student, topk, labels, ko).loss;
    } else if (v == "topk_unfused") {
      loss = kd_loss_topk_reference(student, topk, labels, ko, /*upcast=*/false).loss;
    } else if (v == "linear") {
      loss = kd_loss_linear(hidden, weight, mentor, TopK{}, labels, ko, o.chunk_rows).loss;
    } else if (v == "linear_topk") {
      loss = kd_loss_linear(hidden, weight, at::Tensor(), topk, labels, ko, o.chunk_rows).loss;
    } else if (v == "linear_kd") {
      KdOptions ki = ko;
      ki.inplace_grad = true;  // logits straight from the matmul: safe to overwrite
      loss = kd_loss(at::mm(hidden, weight.t()), mentor, labels, ki).loss;
    } else {  // linear_unfused
      loss = kd_loss_reference(at::mm(hidden, weight.t()), mentor, labels, ko, /*upcast=*/false).loss;
    }
    loss.backward();
    return loss.detach();
  };
  auto clear_grads = [&] {
    for (at::Tensor* t : {&student, &hidden, &weight})
      if (t->defined()) t->mutable_grad() = at::Tensor();
  };

  for (int i = 0; i < o.warmup; ++i) {
    if (s0.defined()) student.detach().copy_(s0);
    step();
    clear_grads();
  }
  sync();
  int64_t rss_before = -1;
  const bool rss_ok = !cuda && reset_hwm();
  if (rss_ok) rss_before = proc_status_kb("VmRSS");
  for (int i = 0; i < o.iters; ++i) {
    if (s0.defined()) student.detach().copy_(s0);
    sync();
    int64_t base = 0;
    if (counter) {
      base = counter->current();
      counter->reset_peak();
    }
#ifdef MENTOR_KD_WITH_CUDA
    if (cuda) {
      base = cuda_allocated_bytes();
      cuda_reset_peak_memory();
    }
#endif
    auto t0 = std::chrono::steady_clock::now();
    at::Tensor loss = step();
    sync();
    auto t1 = std::chrono::steady_clock::now();
    int64_t peak = 0;
    if (counter) peak = counter->peak() - base;
#ifdef MENTOR_KD_WITH_CUDA
    if (cuda) peak = cuda_peak_allocated_bytes() - base;
#endif
    r.peak_extra_bytes = std::max(r.peak_extra_bytes, peak);
    r.times_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    r.loss = loss.item<double>();
    clear_grads();
  }
  if (rss_ok && rss_before >= 0) {
    const int64_t hwm = proc_status_kb("VmHWM");
    if (hwm >= 0) r.rss_peak_extra_bytes = (hwm - rss_before) * 1024;
  }
  std::vector<double> t = r.times_ms;
  std::sort(t.begin(), t.end());
  r.median_ms = t[t.size() / 2];
  return r;
}

}  // namespace kd
}  // namespace mentor_kd
