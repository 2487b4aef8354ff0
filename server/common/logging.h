// A small leveled logger (Abseil 2022 has no logging library). Lines go to
// stderr as "I1123 01:02:03.456 file.cc:12] message".
#ifndef TWINSERVE_SERVER_COMMON_LOGGING_H_
#define TWINSERVE_SERVER_COMMON_LOGGING_H_

#include <sstream>
#include <string>

namespace twinserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// "debug", "info", "warning", "error" -> level; false if unknown.
bool ParseLogLevel(const std::string& name, LogLevel* level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Turns the stream expression into void for the ?: in TS_LOG.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace twinserve

#define TS_LOG_DEBUG ::twinserve::LogLevel::kDebug
#define TS_LOG_INFO ::twinserve::LogLevel::kInfo
#define TS_LOG_WARNING ::twinserve::LogLevel::kWarning
#define TS_LOG_ERROR ::twinserve::LogLevel::kError

#define TS_LOG(severity)                                \
  if (TS_LOG_##severity < ::twinserve::GetLogLevel()) { \
  } else                                                \
    ::twinserve::LogMessage(TS_LOG_##severity, __FILE__, __LINE__).stream()

#endif  // TWINSERVE_SERVER_COMMON_LOGGING_H_
