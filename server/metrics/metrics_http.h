// A minimal HTTP/1.0 endpoint that serves GET /metrics in the Prometheus
// text format. prometheus-cpp's own Exposer (CivetWeb) fails to start in a
// process that has LibTorch loaded ("null context when constructing
// CivetServer"), so twinserve serves its metrics itself: one thread, one
// scrape at a time, which is all Prometheus needs.
#ifndef TWINSERVE_SERVER_METRICS_METRICS_HTTP_H_
#define TWINSERVE_SERVER_METRICS_METRICS_HTTP_H_

#include <prometheus/collectable.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace twinserve {

class MetricsHttpServer {
 public:
  // Listens on `address` ("host:port"; port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  // Stops accepting and joins the thread.
  ~MetricsHttpServer();

  int port() const { return port_; }
  // The text exposition of every collectable, as served.
  std::string Render() const;

 private:
  MetricsHttpServer(int fd, int port,
                    std::vector<std::shared_ptr<prometheus::Collectable>> c)
      : fd_(fd), port_(port), collectables_(std::move(c)) {}
  void Serve();

  const int fd_;
  const int port_;
  const std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_METRICS_METRICS_HTTP_H_
