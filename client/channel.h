// Channels to twinserve: plain or TLS (with a client certificate for mutual
// TLS), carrying the caller's bearer token on every call (`authorization:
// Bearer <token>` metadata, added by a client interceptor, so every stub
// made from the channel sends it). An empty token sends none.
#ifndef TWINSERVE_CLIENT_CHANNEL_H_
#define TWINSERVE_CLIENT_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace twinserve {

struct Connection {
  std::string token;
  // TLS when `ca_pem` is set: the server's certificate must be signed by
  // it. `cert_pem`/`key_pem`: the client certificate for mutual TLS.
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // Checked against the server's certificate instead of the address's host.
  std::string server_name;
};

// From file paths (empty: not used), as the command-line tools take them;
// INVALID_ARGUMENT naming a file that cannot be read.
absl::StatusOr<Connection> LoadConnection(const std::string& token,
                                          const std::string& ca_path,
                                          const std::string& cert_path,
                                          const std::string& key_path,
                                          const std::string& server_name = "");

// $TWINSERVE_TOKEN and, if set, the PEM files $TWINSERVE_TLS_CA,
// $TWINSERVE_TLS_CERT and $TWINSERVE_TLS_KEY (unreadable ones are skipped:
// the call then fails with the server's answer).
Connection ConnectionFromEnvironment();
// $TWINSERVE_TOKEN, or "".
std::string TokenFromEnvironment();

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           grpc::ChannelArguments args,
                                           const Connection& connection);

}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_CHANNEL_H_
