// Precompiled header: the libtorch headers that nearly every translation unit
// includes (the bindings' targets add napi.h to theirs; the core never sees it). Parsing ATen once instead of per file
// is most of a from-scratch build on 2 cores. Keep it to headers that are stable and heavy; a file still includes what
// it uses.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/variable.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>
