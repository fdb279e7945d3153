// Returning the heap's free pages to the kernel, once the memory a run keeps is in place.
//
// bin/mentor-kd sets glibc's malloc never to trim its heap (MALLOC_TRIM_THRESHOLD_ 2^32-1), so
// that the blocks a training step frees are reused by the next step without page faults. The
// price is that whatever was freed before training reached its steady state — the temporaries
// of model construction and initialisation, the first step's transients — would stay resident for
// the whole run, interleaved with the weights and AdamW moments allocated between them.
// release_free_heap_pages() hands those pages back once (glibc's malloc_trim(0): every whole free
// page, not only the heap's top); the trainer calls it after its first optimizer step, when the
// weights and AdamW moments exist. Later steps fault back in only what
// they use. No-op where the C library is not glibc.
#pragma once

namespace mentor_kd::runtime {

// True when the C library released memory to the kernel.
bool release_free_heap_pages();

}  // namespace mentor_kd::runtime
