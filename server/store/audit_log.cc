#include "server/store/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace twinserve {

absl::Status AuditLog::Record(const AuditEntry& e) {
  nlohmann::json j{{"time", absl::FormatTime(absl::RFC3339_sec, absl::Now(),
                                             absl::UTCTimeZone())},
                   {"principal", e.principal},
                   {"action", e.action},
                   {"target", e.target},
                   {"outcome", absl::StatusCodeToString(e.outcome.code())}};
  if (!e.detail.empty()) j["detail"] = e.detail;
  if (!e.outcome.ok()) j["error"] = std::string(e.outcome.message());
  const std::string line = j.dump() + "\n";
  absl::MutexLock lock(&mu_);
  const int fd =
      open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("audit log ", path_, ": ", std::strerror(errno)));
  }
  const ssize_t n = write(fd, line.data(), line.size());
  const int err = n == static_cast<ssize_t>(line.size()) ? 0 : errno;
  const bool synced = fdatasync(fd) == 0;
  close(fd);
  if (err != 0 || !synced) {
    return absl::InternalError(
        absl::StrCat("audit log ", path_,
                     ": write failed: ", std::strerror(err ? err : errno)));
  }
  return absl::OkStatus();
}

}  // namespace twinserve
