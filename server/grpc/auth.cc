#include "server/grpc/auth.h"

namespace twinserve {

absl::StatusOr<Principal> CallAuth::Check(const grpc::ServerContextBase* ctx,
                                          Role needed) const {
  if (tokens_ == nullptr) {
    if (!client_certificates_) return Principal{"anonymous", Role::kAdmin};
    // The handshake already verified the certificate against the CA.
    std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
    if (auth == nullptr || !auth->IsPeerAuthenticated()) {
      return absl::UnauthenticatedError("a client certificate is required");
    }
    for (const auto& cn : auth->FindPropertyValues("x509_common_name")) {
      return Principal{std::string(cn.data(), cn.size()), Role::kAdmin};
    }
    return Principal{"client-certificate", Role::kAdmin};
  }
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find("authorization");
  absl::string_view value;
  if (it != metadata.end()) value = {it->second.data(), it->second.size()};
  return tokens_->Authorize(value, needed);
}

}  // namespace twinserve
