// CallAuth: the gRPC side of server/common/tokens.h. Reads a call's
// `authorization` metadata and says who is calling and whether their role
// allows the call. With tokens, the token names the principal and its role.
// Without tokens but with mutual TLS, a verified client certificate is the
// principal (its common name) with role admin. With neither, every call is
// allowed as principal "anonymous" (the server then binds loopback only
// unless started with --insecure; see server/main.cc).
#ifndef TWINSERVE_SERVER_GRPC_AUTH_H_
#define TWINSERVE_SERVER_GRPC_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/statusor.h"
#include "server/common/tokens.h"

namespace twinserve {

class CallAuth {
 public:
  // `tokens` (may be null: no authentication) must outlive this.
  explicit CallAuth(const TokenAuthenticator* tokens = nullptr,
                    bool client_certificates = false)
      : tokens_(tokens), client_certificates_(client_certificates) {}

  bool enabled() const { return tokens_ != nullptr || client_certificates_; }

  // UNAUTHENTICATED or PERMISSION_DENIED (see TokenAuthenticator).
  absl::StatusOr<Principal> Check(const grpc::ServerContextBase* ctx,
                                  Role needed) const;

 private:
  const TokenAuthenticator* const tokens_;
  const bool client_certificates_;
};

// Reactors that only refuse a streaming call.
template <typename Request>
class RefusedReader : public grpc::ServerReadReactor<Request> {
 public:
  explicit RefusedReader(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename Response>
class RefusedWriter : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RefusedWriter(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename Request, typename Response>
class RefusedStream : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit RefusedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_AUTH_H_
