#include "t5/rms_norm.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

namespace mentor_kd::t5 {
namespace {

at::Tensor rms_norm_composed(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // HF T5LayerNorm, op for op: variance in fp32, cast back for half weights.
  at::Tensor variance = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor h = x * at::rsqrt(variance + eps);
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) h = h.to(weight.scalar_type());
  return weight * h;
}

template <typename T>
__attribute__((target_clones("avx2", "default"))) void forward_rows(const T* x, const T* w, T* y, T* rstd,
                                                                    int64_t begin, int64_t end, int64_t D, double eps) {
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    T ss = 0;
    for (int64_t j = 0; j < D; ++j) ss += xr[j] * xr[j];
    const T rs = static_cast<T>(1.0 / std::sqrt(static_cast<double>(ss) / D + eps));
    rstd[r] = rs;
    for (int64_t j = 0; j < D; ++j) yr[j] = w[j] * (xr[j] * rs);
  }
}

template <typename T>
__attribute__((target_clones("avx2", "default"))) void backward_rows(const T* x, const T* w, const T* g, const T* rstd,
                                                                     T* dx, T* dw_partial, int64_t begin, int64_t end,
                                                                     int64_t D) {
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * D;
    const T* gr = g + r * D;
    T* dxr = dx + r * D;
    const T rs = rstd[r];
    T dot = 0;  // Σ_j g'_j x̂_j
    for (int64_t j = 0; j < D; ++j) {
      const T xh = xr[j] * rs;
      dot += gr[j] * w[j] * xh;
      dw_partial[j] += gr[j] * xh;
    }
    const T c = dot / static_cast<T>(D);
    for (int64_t j = 0; j < D; ++j) dxr[j] = rs * (gr[j] * w[j] - xr[j] * rs * c);
  }
}

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight,
                            double eps) {
    at::Tensor x = x_in.contiguous();
    const int64_t D = x.size(-1), N = x.numel() / D;
    at::Tensor y = at::empty_like(x);
    at::Tensor rstd = at::empty({N}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_fwd", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* wp = weight.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      scalar_t* rp = rstd.data_ptr<scalar_t>();
      at::parallel_for(0, N, 16, [&](int64_t b, int64_t e) { forward_rows<scalar_t>(xp, wp, yp, rp, b, e, D, eps); });
    });
    ctx->save_for_backward({x, weight, rstd});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& rstd = saved[2];
    at::Tensor g = grads[0].contiguous();
    const int64_t D = x.size(-1), N = x.numel() / D;
    at::Tensor dx = at::empty_like(x);
    // Each thread sums its rows' dw into its own slot; slots are added at the end
    // (deterministic for a fixed thread count).
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), N));
    at::Tensor dw_parts = at::zeros({chunks, D}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_bwd", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* wp = weight.data_ptr<scalar_t>();
      const scalar_t* gp = g.data_ptr<scalar_t>();
      const scalar_t* rp = rstd.data_ptr<scalar_t>();
      scalar_t* dxp = dx.data_ptr<scalar_t>();
      scalar_t* dwp = dw_parts.data_ptr<scalar_t>();
      const int64_t per = (N + chunks - 1) / chunks;
      at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
        for (int64_t c = cb; c < ce; ++c) {
          const int64_t b = c * per, e = std::min(N, b + per);
          if (b < e) backward_rows<scalar_t>(xp, wp, gp, rp, dxp, dwp + c * D, b, e, D);
        }
      });
    });
    return {dx, dw_parts.sum(0), at::Tensor()};
  }
};

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const bool fused = x.device().is_cpu() && weight.device().is_cpu() && x.scalar_type() == weight.scalar_type() &&
                     (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && weight.is_contiguous() &&
                     weight.dim() == 1 && x.size(-1) == weight.size(0) && x.numel() > 0;
  if (!fused) return rms_norm_composed(x, weight, eps);
  return RmsNormFn::apply(x, weight, eps);
}

}  // namespace mentor_kd::t5
