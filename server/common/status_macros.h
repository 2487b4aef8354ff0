// Early-return helpers for absl::Status and absl::StatusOr, in the spirit of
// TensorFlow's TF_RETURN_IF_ERROR (Abseil does not export its own).
#ifndef TWINSERVE_SERVER_COMMON_STATUS_MACROS_H_
#define TWINSERVE_SERVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TS_CONCAT_INNER_(a, b) a##b
#define TS_CONCAT_(a, b) TS_CONCAT_INNER_(a, b)

#define TS_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status _ts_status = (expr);      \
    if (!_ts_status.ok()) return _ts_status; \
  } while (0)

#define TS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

// TS_ASSIGN_OR_RETURN(auto x, MaybeX()); declares x or returns the error.
#define TS_ASSIGN_OR_RETURN(lhs, expr) \
  TS_ASSIGN_OR_RETURN_IMPL_(TS_CONCAT_(_ts_statusor_, __LINE__), lhs, expr)

#endif  // TWINSERVE_SERVER_COMMON_STATUS_MACROS_H_
