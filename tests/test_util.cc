#include "tests/test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/idx.h"
#include "client/twin_client.h"
#include "server/common/file_util.h"

namespace twinserve {
namespace testing {
namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "test_util: %s\n", why.c_str());
  std::abort();
}

std::string TempRoot() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

}  // namespace

std::string Scrape(const std::string& address) {
  const size_t colon = address.rfind(':');
  const int port = std::stoi(address.substr(colon + 1));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string req =
      "GET /metrics HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) < 0) return "";
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  const size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? out : out.substr(body + 4);
}

double MetricValue(const std::string& text, const std::string& prefix) {
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') {
      const size_t end = text.find('\n', pos);
      const std::string line = text.substr(pos, end - pos);
      double v;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) return v;
    }
    pos += prefix.size();
  }
  return -1;
}

HostTensor RandomFloats(const std::string& name, Shape shape, std::mt19937* rng,
                        float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(ElementCount(shape));
  for (float& x : v) x = dist(*rng);
  std::string bytes(v.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return HostTensor::Owned(name, DataType::kFp32, std::move(shape),
                           std::move(bytes));
}

std::string FixturePath(const std::string& name) {
  return absl::StrCat("tests/fixtures/", name);
}

std::string NewTempDir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const std::string dir =
      absl::StrCat(TempRoot(), "/", prefix, "-", getpid(), "-", counter++);
  RemoveAll(dir).IgnoreError();
  if (!MakeDirs(dir).ok()) Die("cannot create " + dir);
  return dir;
}

std::string ReadFileOrDie(const std::string& path) {
  auto s = ReadFile(path);
  if (!s.ok()) Die(std::string(s.status().message()));
  return *s;
}

FashionSplit LoadFashionSplit(const std::string& prefix) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  auto x = ReadIdx(dir + prefix + "-images-idx3-ubyte.gz");
  if (!x.ok()) Die(std::string(x.status().message()));
  auto y = ReadIdx(dir + prefix + "-labels-idx1-ubyte.gz");
  if (!y.ok()) Die(std::string(y.status().message()));
  FashionSplit s;
  s.images = ImagesToFloat(*x);
  s.images.name = "image";
  for (size_t i = 0; i < y->byte_size; ++i) {
    s.labels.push_back(static_cast<unsigned char>(y->data[i]));
  }
  return s;
}

HostTensor RowsOf(const HostTensor& t, int64_t begin, int64_t count) {
  HostTensor out = t;
  const size_t per = t.byte_size / t.shape[0];
  out.shape[0] = count;
  out.data = t.data + begin * per;
  out.byte_size = count * per;
  return out;
}

RegisterOptions FashionOptions(const std::string& name) {
  RegisterOptions o;
  o.name = name;
  o.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}};
  o.outputs = {{"logits", DataType::kFp32, {-1, 10}}};
  return o;
}

Signature AddSubSignature() {
  Signature s;
  s.inputs = {{"a", DataType::kFp32, {-1, 4}}, {"b", DataType::kFp32, {-1, 4}}};
  s.outputs = {{"sum", DataType::kFp32, {-1, 4}},
               {"diff", DataType::kFp32, {-1, 4}}};
  return s;
}

RegisterOptions AddSubOptions(const std::string& name) {
  RegisterOptions o;
  o.name = name;
  o.description = "a+b, a-b";
  const Signature s = AddSubSignature();
  o.inputs = s.inputs;
  o.outputs = s.outputs;
  return o;
}

HostTensor RandomImages(int64_t n, int seed) {
  std::mt19937 rng(seed);
  return RandomFloats("image", {n, 1, 28, 28}, &rng);
}

absl::Status QuantizeAndWait(TwinClient& client, const std::string& model) {
  v1::QuantizeRequest q;
  q.set_model(model);
  q.set_calibration_set("calib");
  q.set_method("minmax");
  q.set_max_agreement_loss(100);
  q.set_max_accuracy_loss(100);
  auto job = client.Quantize(q);
  if (!job.ok()) return job.status();
  auto end = client.WatchJob(job->id(), nullptr);
  if (!end.ok()) return end.status();
  if (end->state() != v1::JOB_SUCCEEDED) {
    return absl::InternalError(absl::StrCat(
        "job ", v1::JobState_Name(end->state()), ": ", end->message()));
  }
  return absl::OkStatus();
}

absl::Status RegisterAddSubWithAlt(TwinClient& client) {
  const std::string model = ReadFileOrDie(FixturePath("add_sub.pt"));
  auto info = client.Register(AddSubOptions("m"), model);
  if (!info.ok()) return info.status();
  RegisterOptions alt;
  alt.name = "m";
  alt.variant = "alt";
  return client.Register(alt, model).status();
}

ServerProcess::ServerProcess(const std::string& store,
                             std::vector<std::string> flags,
                             bool wait_until_ready) {
  const std::string dir = NewTempDir("server");
  const std::string port_file = dir + "/port";
  log_path_ = dir + "/server.log";
  const std::string metrics_port_file = dir + "/metrics_port";
  std::vector<std::string> args = {
      "server/twinserve", "--address=127.0.0.1:0", "--store=" + store,
      "--port_file=" + port_file, "--metrics_address=127.0.0.1:0",
      "--metrics_port_file=" + metrics_port_file,
      // Tests stop servers often: no grace.
      "--shutdown_grace_ms=0"};
  for (auto& f : flags) args.push_back(std::move(f));
  pid_ = fork();
  if (pid_ < 0) Die("fork failed");
  if (pid_ == 0) {
    const int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!PathExists(port_file)) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      Die("twinserve exited at start; log:\n" + ReadFileOrDie(log_path_));
    }
    if (std::chrono::steady_clock::now() > deadline) Die("no port file");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  address_ = "127.0.0.1:" + ReadFileOrDie(port_file);
  // Written before the gRPC port file, unless /metrics is off.
  if (PathExists(metrics_port_file)) {
    metrics_address_ = "127.0.0.1:" + ReadFileOrDie(metrics_port_file);
  }
  if (!wait_until_ready) return;
  TwinClient client(address_);
  absl::Status st = client.WaitForReady(std::chrono::seconds(60));
  if (!st.ok()) Die("server not ready: " + std::string(st.message()));
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop();
}

void ServerProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int ServerProcess::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

}  // namespace testing
}  // namespace twinserve
