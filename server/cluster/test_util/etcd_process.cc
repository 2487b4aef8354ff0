#include "server/cluster/test_util/etcd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "server/cluster/etcd_client.h"

namespace twinserve {
namespace testing {
namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "EtcdProcess: %s\n", why.c_str());
  std::abort();
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("bind");
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool PortOpen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool open =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return open;
}

}  // namespace

EtcdProcess::EtcdProcess(const std::string& dir, const EtcdTlsFiles& tls)
    : dir_(dir), tls_(tls) {
  if (dir_.empty()) {
    const char* root = std::getenv("TEST_TMPDIR");
    std::string t =
        std::string(root != nullptr ? root : "/tmp") + "/etcd-XXXXXX";
    if (mkdtemp(t.data()) == nullptr) Die("mkdtemp");
    dir_ = t;
  }
  client_port_ = FreePort();
  peer_port_ = FreePort();
  endpoint_ = "127.0.0.1:" + std::to_string(client_port_);
  Start();
}

EtcdProcess::~EtcdProcess() { Kill9(); }

void EtcdProcess::Start() {
  const bool tls = !tls_.ca.empty();
  const std::string client = (tls ? "https://" : "http://") + endpoint_;
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> args = {
      "/usr/bin/etcd",
      "--name=test",
      "--data-dir=" + dir_ + "/etcd-data",
      "--listen-client-urls=" + client,
      "--advertise-client-urls=" + client,
      "--listen-peer-urls=" + peer,
      "--initial-advertise-peer-urls=" + peer,
      "--initial-cluster=test=" + peer,
      "--log-outputs=" + dir_ + "/etcd.log",
      "--logger=zap",
  };
  if (tls) {
    args.push_back("--cert-file=" + tls_.server_cert);
    args.push_back("--key-file=" + tls_.server_key);
    args.push_back("--trusted-ca-file=" + tls_.ca);
    args.push_back("--client-cert-auth");
  }
  pid_ = fork();
  if (pid_ < 0) Die("fork");
  if (pid_ == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // Wait for the port first: a gRPC channel that found it closed backs off
  // for seconds before trying again.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!PortOpen(client_port_)) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      Die("etcd exited at start; see " + dir_ + "/etcd.log");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Die("etcd did not listen in 30 s; see " + dir_ + "/etcd.log");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EtcdOptions options;
  options.endpoints = endpoint_;
  options.timeout = absl::Milliseconds(500);
  options.ca_file = tls_.ca;
  options.cert_file = tls_.client_cert;
  options.key_file = tls_.client_key;
  auto client_or = EtcdClient::Create(options);
  if (!client_or.ok()) Die(std::string(client_or.status().message()));
  while (!(*client_or)->Get("probe").ok()) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      Die("etcd exited at start; see " + dir_ + "/etcd.log");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Die("etcd did not answer in 30 s; see " + dir_ + "/etcd.log");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void EtcdProcess::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void EtcdProcess::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

void EtcdProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace testing
}  // namespace twinserve
