#include "runtime/heap.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace mentor_kd::runtime {

bool release_free_heap_pages() {
#if defined(__GLIBC__)
  return malloc_trim(0) == 1;
#else
  return false;
#endif
}

}  // namespace mentor_kd::runtime
