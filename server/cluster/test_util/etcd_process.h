// A real etcd (Debian's etcd-server) on loopback for tests, its data in a
// folder of the test's. Aborts the test binary if etcd does not start.
#ifndef TWINSERVE_SERVER_CLUSTER_TEST_UTIL_ETCD_PROCESS_H_
#define TWINSERVE_SERVER_CLUSTER_TEST_UTIL_ETCD_PROCESS_H_

#include <sys/types.h>

#include <string>

namespace twinserve {
namespace testing {

// PEM files for an etcd that speaks TLS and asks clients for a
// certificate signed by `ca`.
struct EtcdTlsFiles {
  std::string ca;
  std::string server_cert;
  std::string server_key;
  std::string client_cert;  // what the readiness probe presents
  std::string client_key;
};

class EtcdProcess {
 public:
  // Starts etcd with its data under `dir` (empty: a new folder under
  // $TEST_TMPDIR) on two free loopback ports and waits until it answers.
  explicit EtcdProcess(const std::string& dir = "",
                       const EtcdTlsFiles& tls = EtcdTlsFiles());
  ~EtcdProcess();  // kill -9

  // HOST:PORT of the client endpoint, for --cluster_etcd.
  const std::string& endpoint() const { return endpoint_; }
  // SIGSTOP / SIGCONT: etcd stops answering without closing connections,
  // the hardest outage for clients (no reset to react to).
  void Pause();
  void Resume();
  // kill -9, then Start() again on the same ports and data.
  void Kill9();
  void Start();

 private:
  std::string dir_;
  EtcdTlsFiles tls_;
  int client_port_ = 0;
  int peer_port_ = 0;
  std::string endpoint_;
  pid_t pid_ = -1;
};

}  // namespace testing
}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CLUSTER_TEST_UTIL_ETCD_PROCESS_H_
