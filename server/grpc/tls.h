// TLS and mutual TLS for the gRPC port. The configured PEM files are copied
// into a private folder that gRPC watches (checked every second); Reload()
// (on SIGHUP) copies them again, so certificates rotate without a restart
// and an operator's half-edited file is never picked up by itself.
#ifndef TWINSERVE_SERVER_GRPC_TLS_H_
#define TWINSERVE_SERVER_GRPC_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace twinserve {

struct TlsFiles {
  std::string cert;       // the server's certificate chain (PEM)
  std::string key;        // its private key (PEM)
  std::string client_ca;  // if set: clients must present a certificate
                          // signed by this CA (mutual TLS)
};

class ServerTls {
 public:
  // INVALID_ARGUMENT naming the file that is missing or not PEM.
  static absl::StatusOr<std::unique_ptr<ServerTls>> Create(TlsFiles files);
  ~ServerTls();

  std::shared_ptr<grpc::ServerCredentials> credentials() const {
    return credentials_;
  }
  bool mutual() const { return !files_.client_ca.empty(); }

  // Copies the configured files again; gRPC uses them for new connections
  // within a second. On error the files in force stay.
  absl::Status Reload();

 private:
  explicit ServerTls(TlsFiles files) : files_(std::move(files)) {}

  const TlsFiles files_;
  std::string dir_;  // the private copies
  std::shared_ptr<grpc::ServerCredentials> credentials_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_TLS_H_
