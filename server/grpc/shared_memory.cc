#include "server/grpc/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace twinserve {

struct SharedMemoryManager::Region {
  SharedMemoryRegionInfo info;
  void* base = nullptr;  // the mapping, from the object's offset 0
  size_t mapped = 0;
  ~Region() {
    if (base != nullptr) munmap(base, mapped);
  }
};

absl::Status SharedMemoryManager::Register(const SharedMemoryRegionInfo& info) {
  if (info.name.empty()) {
    return absl::InvalidArgumentError("a shared memory region needs a name");
  }
  if (info.byte_size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared memory region '", info.name, "' has byte_size 0"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (regions_.count(info.name)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "shared memory region '", info.name, "' is already registered"));
    }
    if (regions_.size() >= kMaxRegions) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "at most ", kMaxRegions, " shared memory regions may be registered"));
    }
  }
  const int fd = shm_open(info.key.c_str(), O_RDWR, 0);
  if (fd < 0) {
    const int err = errno;
    return (err == ENOENT ? absl::NotFoundError : absl::InvalidArgumentError)(
        absl::StrCat("cannot open shared memory object '", info.key,
                     "' for region '", info.name, "': ", std::strerror(err)));
  }
  struct stat st;
  const bool stat_ok = fstat(fd, &st) == 0;
  const uint64_t object_size = stat_ok ? static_cast<uint64_t>(st.st_size) : 0;
  if (info.offset > object_size || info.byte_size > object_size - info.offset) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "shared memory region '", info.name, "' (offset ", info.offset,
        ", byte_size ", info.byte_size, ") lies past the end of '", info.key,
        "' (", object_size, " bytes)"));
  }
  auto region = std::make_shared<Region>();
  region->info = info;
  region->mapped = info.offset + info.byte_size;
  void* base =
      mmap(nullptr, region->mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  close(fd);  // the mapping keeps the object
  if (base == MAP_FAILED) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot map shared memory object '", info.key,
                     "': ", std::strerror(err)));
  }
  region->base = base;
  absl::MutexLock lock(&mu_);
  // Checked again: another Register of the same name may have won.
  if (!regions_.emplace(info.name, std::move(region)).second) {
    return absl::AlreadyExistsError(absl::StrCat(
        "shared memory region '", info.name, "' is already registered"));
  }
  return absl::OkStatus();
}

void SharedMemoryManager::Unregister(const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (name.empty()) {
    regions_.clear();
  } else {
    regions_.erase(name);
  }
}

absl::StatusOr<std::vector<SharedMemoryRegionInfo>> SharedMemoryManager::Status(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
  std::vector<SharedMemoryRegionInfo> out;
  if (!name.empty()) {
    auto it = regions_.find(name);
    if (it == regions_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no shared memory region '", name, "' is registered"));
    }
    out.push_back(it->second->info);
    return out;
  }
  for (const auto& [n, r] : regions_) out.push_back(r->info);
  return out;
}

absl::StatusOr<SharedMemoryView> SharedMemoryManager::View(
    const std::string& name, uint64_t offset, uint64_t byte_size) const {
  std::shared_ptr<Region> region;
  {
    absl::MutexLock lock(&mu_);
    auto it = regions_.find(name);
    if (it == regions_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no shared memory region '", name, "' is registered"));
    }
    region = it->second;
  }
  const uint64_t size = region->info.byte_size;
  if (offset > size || byte_size > size - offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "offset ", offset, " + byte_size ", byte_size,
        " lies outside shared memory region '", name, "' (", size, " bytes)"));
  }
  SharedMemoryView view;
  view.data = static_cast<char*>(region->base) + region->info.offset + offset;
  view.byte_size = byte_size;
  view.pin = std::move(region);
  return view;
}

}  // namespace twinserve
