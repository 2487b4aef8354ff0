// System (POSIX) shared memory regions that clients register, as in
// Triton's shared-memory extension: a client on the same host keeps tensors
// in a shm object (/dev/shm), registers a region of it once, and then names
// the region in requests instead of sending the bytes; outputs can be
// written into a region the same way.
//
// Regions belong to the principal that registered them: each principal has
// its own namespace of region names, and a request can only name its own
// caller's regions. Only shm objects whose key starts with the configured
// prefix may be mapped (keys are "/" then letters, digits, '.', '_', '-').
#ifndef TWINSERVE_SERVER_GRPC_SHARED_MEMORY_H_
#define TWINSERVE_SERVER_GRPC_SHARED_MEMORY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace twinserve {

struct SharedMemoryRegionInfo {
  std::string owner;  // the principal that registered it
  std::string name;   // the client's name for the region
  std::string key;    // the shm object, as for shm_open ("/input0")
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

  // `key_prefix` must start with '/'; "/" allows every key.
  explicit SharedMemoryManager(std::string key_prefix = "/")
      : key_prefix_(std::move(key_prefix)) {}
  SharedMemoryManager(const SharedMemoryManager&) = delete;
  SharedMemoryManager& operator=(const SharedMemoryManager&) = delete;

  // Maps [offset, offset + byte_size) of shm object `key`. ALREADY_EXISTS
  // for a registered name; NOT_FOUND when the object cannot be opened;
  // INVALID_ARGUMENT for an empty name or size, a malformed key, or a
  // range past the object's end; PERMISSION_DENIED for a key outside the
  // prefix; RESOURCE_EXHAUSTED past kMaxRegions. Names are per `info.owner`.
  absl::Status Register(const SharedMemoryRegionInfo& info);
  // Forgets `owner`'s region `name` (all of `owner`'s when empty). Unknown
  // names are fine, as in Triton.
  void Unregister(const std::string& owner, const std::string& name);
  // One of `owner`'s regions (NOT_FOUND if unknown) or, for an empty name,
  // all of them.
  absl::StatusOr<std::vector<SharedMemoryRegionInfo>> Status(
      const std::string& owner, const std::string& name) const;
  // [offset, offset + byte_size) relative to `owner`'s region `name`.
  // NOT_FOUND for an unknown region (another principal's included),
  // INVALID_ARGUMENT for a range outside it.
  absl::StatusOr<SharedMemoryView> View(const std::string& owner,
                                        const std::string& name,
                                        uint64_t offset,
                                        uint64_t byte_size) const;

  const std::string& key_prefix() const { return key_prefix_; }

 private:
  struct Region;
  using Key = std::pair<std::string, std::string>;  // owner, name
  const std::string key_prefix_;
  mutable absl::Mutex mu_;
  std::map<Key, std::shared_ptr<Region>> regions_ ABSL_GUARDED_BY(mu_);
};

// What one request may name: its caller's regions. Cheap to build per call.
class SharedMemoryScope {
 public:
  SharedMemoryScope(const SharedMemoryManager* manager, std::string owner)
      : manager_(manager), owner_(std::move(owner)) {}
  absl::StatusOr<SharedMemoryView> View(const std::string& name,
                                        uint64_t offset,
                                        uint64_t byte_size) const {
    return manager_->View(owner_, name, offset, byte_size);
  }

 private:
  const SharedMemoryManager* manager_;
  std::string owner_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_SHARED_MEMORY_H_
