#include "server/grpc/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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
  if (info.key.size() < 2 || info.key[0] != '/' ||
      !std::all_of(info.key.begin() + 1, info.key.end(),
                   [](char c) {
                     return absl::ascii_isalnum(c) || c == '.' || c == '_' ||
                            c == '-';
                   }) ||
      info.key == "/." || info.key == "/..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared memory key '", info.key, "' for region '", info.name,
        "' must be '/' followed by letters, digits, '.', '_' or '-'"));
  }
  if (!absl::StartsWith(info.key, key_prefix_)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "shared memory key '", info.key, "' is outside the prefix '",
        key_prefix_, "' this server maps (--shared_memory_key_prefix)"));
  }
  const Key key(info.owner, info.name);
  {
    absl::MutexLock lock(&mu_);
    if (regions_.count(key)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "shared memory region '", info.name, "' is already registered"));
    }
    if (regions_.size() >= kMaxRegions) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "at most ", kMaxRegions, " shared memory regions may be registered"));
    }
  }
  const int fd = shm_open(info.key.c_str(), O_RDWR | O_NOFOLLOW, 0);
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
  if (regions_.size() >= kMaxRegions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "at most ", kMaxRegions, " shared memory regions may be registered"));
  }
  if (!regions_.emplace(key, std::move(region)).second) {
    return absl::AlreadyExistsError(absl::StrCat(
        "shared memory region '", info.name, "' is already registered"));
  }
  return absl::OkStatus();
}

void SharedMemoryManager::Unregister(const std::string& owner,
                                     const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (!name.empty()) {
    regions_.erase(Key(owner, name));
    return;
  }
  for (auto it = regions_.lower_bound(Key(owner, ""));
       it != regions_.end() && it->first.first == owner;) {
    it = regions_.erase(it);
  }
}

absl::StatusOr<std::vector<SharedMemoryRegionInfo>> SharedMemoryManager::Status(
    const std::string& owner, const std::string& name) const {
  absl::MutexLock lock(&mu_);
  std::vector<SharedMemoryRegionInfo> out;
  if (!name.empty()) {
    auto it = regions_.find(Key(owner, name));
    if (it == regions_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no shared memory region '", name, "' is registered"));
    }
    out.push_back(it->second->info);
    return out;
  }
  for (auto it = regions_.lower_bound(Key(owner, ""));
       it != regions_.end() && it->first.first == owner; ++it) {
    out.push_back(it->second->info);
  }
  return out;
}

absl::StatusOr<SharedMemoryView> SharedMemoryManager::View(
    const std::string& owner, const std::string& name, uint64_t offset,
    uint64_t byte_size) const {
  std::shared_ptr<Region> region;
  {
    absl::MutexLock lock(&mu_);
    auto it = regions_.find(Key(owner, name));
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
