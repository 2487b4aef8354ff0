// Names the calling thread so `top -H`, perf and gdb tell twinserve's
// threads apart ("ts-infer", "ts-batch", "ts-job", ...).
#ifndef TWINSERVE_SERVER_COMMON_THREAD_NAME_H_
#define TWINSERVE_SERVER_COMMON_THREAD_NAME_H_

#include <string>

namespace twinserve {

// Linux keeps the first 15 bytes.
void SetThreadName(const std::string& name);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_THREAD_NAME_H_
