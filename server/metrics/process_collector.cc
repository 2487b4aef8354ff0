#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/metrics/metric_family.h"

namespace twinserve {

namespace {

class ProcessCollector : public prometheus::Collectable {
 public:
  explicit ProcessCollector(std::string version)
      : version_(std::move(version)),
        start_(absl::ToUnixSeconds(absl::Now())) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto gauge =
        [&out](const std::string& name, const std::string& help, double value,
               prometheus::MetricType type = prometheus::MetricType::Gauge) {
          out.push_back(Single(name, help, type, {}, value));
        };
    const long page = sysconf(_SC_PAGESIZE);
    const long ticks = sysconf(_SC_CLK_TCK);
    std::ifstream stat("/proc/self/stat");
    std::string line;
    std::getline(stat, line);
    // Fields after the ")" that closes the command name.
    const size_t close = line.rfind(')');
    std::vector<std::string> f =
        absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
    if (f.size() > 22) {
      const double utime = std::stod(f[11]), stime = std::stod(f[12]);
      gauge("process_cpu_seconds_total", "User and system CPU time",
            (utime + stime) / ticks, prometheus::MetricType::Counter);
      gauge("process_resident_memory_bytes", "Resident set size",
            std::stod(f[21]) * page);
      gauge("process_virtual_memory_bytes", "Virtual memory size",
            std::stod(f[20]));
    }
    int fds = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
      while (readdir(d) != nullptr) ++fds;
      closedir(d);
      fds -= 2;  // . and ..
    }
    gauge("process_open_fds", "Open file descriptors", fds);
    gauge("process_start_time_seconds", "Start time, seconds since epoch",
          static_cast<double>(start_));
    out.push_back(Single(
        "twinserve_build_info", "Build information; the value is always 1",
        prometheus::MetricType::Gauge, {{"version", version_}}, 1));
    return out;
  }

 private:
  const std::string version_;
  const int64_t start_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeProcessCollector(
    const std::string& version) {
  return std::make_shared<ProcessCollector>(version);
}

}  // namespace twinserve
