// Counts heap allocations in the process: linking this library replaces
// malloc and friends (for every shared library too, by symbol
// interposition) with counting wrappers around glibc's. For benchmarks and
// tests that track allocations per request.
#ifndef TWINSERVE_TESTS_ALLOC_COUNTER_H_
#define TWINSERVE_TESTS_ALLOC_COUNTER_H_

#include <cstdint>

namespace twinserve {
namespace testing {

// Allocations (malloc, calloc, realloc, aligned) since the process started.
uint64_t AllocationCount();
uint64_t AllocatedBytes();

}  // namespace testing
}  // namespace twinserve

#endif  // TWINSERVE_TESTS_ALLOC_COUNTER_H_
