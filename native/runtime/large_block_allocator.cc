#include "runtime/large_block_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>
#include <unordered_map>

namespace mentor_kd::runtime {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

// Blocks this allocator mapped, by address. A DataPtr's context must be its data (libtorch's
// raw_allocate/raw_deallocate assert it), so the mapping's size is looked up here when freed.
std::mutex mappings_mutex;
std::unordered_map<void*, std::size_t>& mappings() {
  static auto* m = new std::unordered_map<void*, std::size_t>();  // outlives static destruction
  return *m;
}
c10::DeleterFnPtr small_deleter = nullptr;  // the default allocator's raw deleter

// Frees either kind of block: ours are unmapped, the rest go back to the default allocator.
void free_block(void* p) {
  std::size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(mappings_mutex);
    auto it = mappings().find(p);
    if (it != mappings().end()) {
      bytes = it->second;
      mappings().erase(it);
    }
  }
  if (bytes)
    munmap(p, bytes);
  else if (p)
    small_deleter(p);
}

class LargeBlockAllocator final : public c10::Allocator {
 public:
  explicit LargeBlockAllocator(c10::Allocator* small) : small_(small) {}

#if TORCH_VERSION_MAJOR >= 2
  c10::DataPtr allocate(std::size_t n) override {
#else
  c10::DataPtr allocate(std::size_t n) const override {
#endif
    if (n < kLargeBlockBytes) return small_->allocate(n);
    // Over-map by one huge page and cut the ends off so that the block starts on a 2 MiB boundary.
    const std::size_t bytes = (n + kHugePage - 1) / kHugePage * kHugePage;
    void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) munmap(raw, aligned - start);
    const std::uintptr_t end = start + bytes + kHugePage;
    if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
    void* block = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
    madvise(block, bytes, MADV_HUGEPAGE);  // advice only: without THP the block is plain pages
#endif
    {
      std::lock_guard<std::mutex> lock(mappings_mutex);
      mappings().emplace(block, bytes);
    }
    return c10::DataPtr(block, block, &free_block, c10::Device(c10::DeviceType::CPU));
  }

  c10::DeleterFnPtr raw_deleter() const override { return &free_block; }

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif

 private:
  c10::Allocator* small_;
};

std::atomic<bool> installed{false};

}  // namespace

void install_large_block_allocator() {
  if (installed.exchange(true)) return;
  c10::Allocator* small = c10::GetDefaultCPUAllocator();
  small_deleter = small->raw_deleter();
  if (!small_deleter) {  // cannot free the default allocator's raw blocks: stay out
    installed = false;
    return;
  }
  // Lives for the process: tensors freed at exit still call into it through their deleters.
  static LargeBlockAllocator* allocator = new LargeBlockAllocator(small);
  c10::SetCPUAllocator(allocator, /*priority=*/1);
}

bool large_block_allocator_installed() { return installed.load(); }

}  // namespace mentor_kd::runtime
