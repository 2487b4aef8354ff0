#include "server/common/memory_budget.h"

#include "absl/strings/str_cat.h"

namespace twinserve {

absl::Status MemoryBudget::Reserve(uint64_t bytes) {
  const uint64_t before = used_.fetch_add(bytes);
  if (limit_ > 0 && (before + bytes > limit_ || before + bytes < before)) {
    used_.fetch_sub(bytes);
    return absl::ResourceExhaustedError(
        absl::StrCat(what_, " in progress hold ", before, " bytes; ", bytes,
                     " more would pass the server's limit (", flag_, "=",
                     limit_, "); retry when they finish"));
  }
  return absl::OkStatus();
}

}  // namespace twinserve
