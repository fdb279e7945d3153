// libtorch's CPU allocator with large blocks mapped on their own, on transparent huge pages.
//
// A training step allocates and frees its activations, attention maps and gradients every step.
// Through glibc's heap (what bin/mentor-kd configures: one arena, never trimmed, so freed blocks
// are reused without page faults) the large ones leave holes that later, differently sized
// requests only partly fill: the process's peak was measured up to a quarter above the tensors
// live at the peak (docs/memory.md). Handing blocks of kLargeBlockBytes or more to the kernel
// instead (glibc's MALLOC_MMAP_THRESHOLD_) removes the holes, but each step then faults every
// large block in afresh, 4 KiB at a time.
//
// This allocator maps each block of kLargeBlockBytes or more itself, 2 MiB-aligned and advised
// for transparent huge pages (MADV_HUGEPAGE), and unmaps it when freed: nothing of a freed large
// block stays resident, and faulting it in costs one fault per 2 MiB. Smaller blocks go to
// libtorch's default CPU allocator (glibc's heap) as before. Only tensor storage comes here, so
// glibc's own huge-page tunable (which would also apply to the heap, where a touched hole then
// becomes resident 2 MiB at a time) is not needed.
//
// Legal for any CPU tensor: blocks are at least 64-byte aligned (libtorch's gAlignment); each
// DataPtr carries its own deleter, so tensors allocated before install() free as before; a large
// block's DataPtr context is its data, as raw_allocate() requires, and its size is kept in a table.
#pragma once

#include <cstddef>

namespace mentor_kd::runtime {

constexpr std::size_t kLargeBlockBytes = std::size_t{16} << 20;

// Makes the allocator libtorch's CPU allocator (idempotent). Call before the run's tensors exist.
void install_large_block_allocator();
bool large_block_allocator_installed();

}  // namespace mentor_kd::runtime
