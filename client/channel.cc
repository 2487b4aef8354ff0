#include "client/channel.h"

#include <grpcpp/support/client_interceptor.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"

namespace twinserve {
namespace {

class TokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;
};

class TokenInterceptorFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(const std::string& token)
      : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(&header_);
  }

 private:
  const std::string header_;  // lives as long as the channel
};

absl::StatusOr<std::string> ReadPath(const char* what,
                                     const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " ", path));
  }
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, " is missing or empty"));
  }
  return text;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

}  // namespace

absl::StatusOr<Connection> LoadConnection(const std::string& token,
                                          const std::string& ca_path,
                                          const std::string& cert_path,
                                          const std::string& key_path,
                                          const std::string& server_name) {
  Connection c;
  c.token = token;
  c.server_name = server_name;
  auto ca = ReadPath("--tls_ca", ca_path);
  if (!ca.ok()) return ca.status();
  auto cert = ReadPath("--tls_cert", cert_path);
  if (!cert.ok()) return cert.status();
  auto key = ReadPath("--tls_key", key_path);
  if (!key.ok()) return key.status();
  if (cert->empty() != key->empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs both --tls_cert and --tls_key");
  }
  if (ca->empty() && !cert->empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert needs --tls_ca (the CA that signed the server)");
  }
  c.ca_pem = std::move(*ca);
  c.cert_pem = std::move(*cert);
  c.key_pem = std::move(*key);
  return c;
}

Connection ConnectionFromEnvironment() {
  auto c = LoadConnection(Env("TWINSERVE_TOKEN"), Env("TWINSERVE_TLS_CA"),
                          Env("TWINSERVE_TLS_CERT"), Env("TWINSERVE_TLS_KEY"));
  if (c.ok()) return *c;
  Connection token_only;
  token_only.token = Env("TWINSERVE_TOKEN");
  return token_only;
}

std::string TokenFromEnvironment() {
  const char* t = std::getenv("TWINSERVE_TOKEN");
  return t != nullptr ? t : "";
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           grpc::ChannelArguments args,
                                           const Connection& connection) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (connection.ca_pem.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = connection.ca_pem;
    ssl.pem_cert_chain = connection.cert_pem;
    ssl.pem_private_key = connection.key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!connection.server_name.empty()) {
      args.SetSslTargetNameOverride(connection.server_name);
    }
  }
  if (connection.token.empty()) {
    return grpc::CreateCustomChannel(address, credentials, args);
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      factories;
  factories.push_back(
      std::make_unique<TokenInterceptorFactory>(connection.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, credentials, args, std::move(factories));
}

}  // namespace twinserve
