#include "bindings/consistency_args.h"

#include <stdexcept>

#include "napi/tensor_convert.h"

namespace mentor_kd {

train::ConsistencyPairs consistency_pairs_from_js(const Napi::Value& v, const std::string& where) {
  if (!v.IsObject()) throw std::invalid_argument(where + " must be {a, b, weight}");
  const Napi::Object o = v.As<Napi::Object>();
  train::ConsistencyPairs p;
  p.a = tensor_from_js(o.Get("a"), where + ".a");
  p.b = tensor_from_js(o.Get("b"), where + ".b");
  p.weight = tensor_from_js(o.Get("weight"), where + ".weight");
  for (at::Tensor* t : {&p.a, &p.b}) {
    if (at::isFloatingType(t->scalar_type()))
      throw std::invalid_argument(where + ": a and b must be integer positions");
    *t = t->to(at::kLong);
  }
  return p;
}

}  // namespace mentor_kd
