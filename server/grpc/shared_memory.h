// System (POSIX) shared memory regions that clients register, as in
// Triton's shared-memory extension: a client on the same host keeps tensors
// in a shm object (/dev/shm), registers a region of it once, and then names
// the region in requests instead of sending the bytes; outputs can be
// written into a region the same way.
#ifndef TWINSERVE_SERVER_GRPC_SHARED_MEMORY_H_
#define TWINSERVE_SERVER_GRPC_SHARED_MEMORY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace twinserve {

struct SharedMemoryRegionInfo {
  std::string name;  // the client's name for the region
  std::string key;   // the shm object, as for shm_open ("/input0")
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

// A byte range inside a registered region. `pin` keeps the mapping alive:
// unregistering a region while requests use it unmaps it only after them.
struct SharedMemoryView {
  std::shared_ptr<const void> pin;
  char* data = nullptr;
  uint64_t byte_size = 0;
};

class SharedMemoryManager {
 public:
  static constexpr int kMaxRegions = 1024;

  SharedMemoryManager() = default;
  SharedMemoryManager(const SharedMemoryManager&) = delete;
  SharedMemoryManager& operator=(const SharedMemoryManager&) = delete;

  // Maps [offset, offset + byte_size) of shm object `key`. ALREADY_EXISTS
  // for a registered name; NOT_FOUND when the object cannot be opened;
  // INVALID_ARGUMENT for an empty name or size, or a range past the
  // object's end; RESOURCE_EXHAUSTED past kMaxRegions.
  absl::Status Register(const SharedMemoryRegionInfo& info);
  // Forgets `name` (every region when empty). Unknown names are fine, as
  // in Triton.
  void Unregister(const std::string& name);
  // One region (NOT_FOUND if unknown) or, for an empty name, all.
  absl::StatusOr<std::vector<SharedMemoryRegionInfo>> Status(
      const std::string& name) const;
  // [offset, offset + byte_size) relative to region `name`. NOT_FOUND for
  // an unknown region, INVALID_ARGUMENT for a range outside it.
  absl::StatusOr<SharedMemoryView> View(const std::string& name,
                                        uint64_t offset,
                                        uint64_t byte_size) const;

 private:
  struct Region;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Region>> regions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_SHARED_MEMORY_H_
