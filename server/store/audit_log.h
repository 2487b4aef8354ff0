// AuditLog: an append-only, fsync'd record of admin actions (who, what, on
// what, when, outcome), one JSON object per line, in the store folder
// (audit.log). Written after the action's outcome is known; a write error
// is logged, never fails the action.
#ifndef TWINSERVE_SERVER_STORE_AUDIT_LOG_H_
#define TWINSERVE_SERVER_STORE_AUDIT_LOG_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace twinserve {

struct AuditEntry {
  std::string principal;
  std::string action;  // the RPC, e.g. "SetTrafficPolicy"
  std::string target;  // the model (and variant or job), if any
  std::string detail;  // e.g. the reason given
  absl::Status outcome;
};

class AuditLog {
 public:
  explicit AuditLog(std::string path) : path_(std::move(path)) {}
  // Appends `e` with the current time and fsyncs.
  absl::Status Record(const AuditEntry& e);
  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  absl::Mutex mu_;  // one writer at a time: lines never interleave
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_STORE_AUDIT_LOG_H_
