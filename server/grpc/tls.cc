#include "server/grpc/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"

namespace twinserve {
namespace {

constexpr unsigned kRefreshSeconds = 1;

// The file's text if it holds PEM of `kind` ("CERTIFICATE", "PRIVATE KEY").
absl::StatusOr<std::string> ReadPem(const std::string& flag,
                                    const std::string& path, const char* kind) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": ", text.status().message()));
  }
  if (!absl::StrContains(*text, "-----BEGIN ") ||
      !absl::StrContains(*text, kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, " holds no PEM ", kind));
  }
  return text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerTls>> ServerTls::Create(TlsFiles files) {
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls_cert and --tls_key");
  }
  std::unique_ptr<ServerTls> tls(new ServerTls(std::move(files)));
  char dir[] = "/tmp/twinserve-tls-XXXXXX";  // mode 0700
  if (mkdtemp(dir) == nullptr) {
    return absl::InternalError("cannot create a folder for TLS files");
  }
  tls->dir_ = dir;
  if (absl::Status st = tls->Reload(); !st.ok()) return st;
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          tls->dir_ + "/key.pem", tls->dir_ + "/cert.pem",
          tls->mutual() ? tls->dir_ + "/ca.pem" : "", kRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls->mutual()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  tls->credentials_ = grpc::experimental::TlsServerCredentials(options);
  return tls;
}

ServerTls::~ServerTls() {
  for (const char* f : {"/key.pem", "/cert.pem", "/ca.pem"}) {
    unlink((dir_ + f).c_str());
  }
  rmdir(dir_.c_str());
}

absl::Status ServerTls::Reload() {
  // All read and checked before any is replaced.
  auto cert = ReadPem("--tls_cert", files_.cert, "CERTIFICATE");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem("--tls_key", files_.key, "PRIVATE KEY");
  if (!key.ok()) return key.status();
  std::string ca;
  if (mutual()) {
    auto read = ReadPem("--tls_client_ca", files_.client_ca, "CERTIFICATE");
    if (!read.ok()) return read.status();
    ca = std::move(*read);
  }
  std::vector<std::pair<std::string, const std::string*>> writes = {
      {"/key.pem", &*key}, {"/cert.pem", &*cert}};
  if (mutual()) writes.push_back({"/ca.pem", &ca});
  for (const auto& [name, text] : writes) {
    if (absl::Status st = WriteFileAtomically(dir_ + name, *text); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace twinserve
