#include "quant/quantize_worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "quant/calibration_set.h"
#include "server/common/file_util.h"
#include "server/common/signature_json.h"
#include "server/runtime/runner.h"
#include "server/runtime/unsafe_ops.h"

extern char** environ;

namespace twinserve {
namespace {

using json = nlohmann::json;

json OptionsToJ(const QuantizeOptions& o) {
  return json{{"mode", QuantModeName(o.mode)},
              {"search", o.search},
              {"method", RangeMethodName(o.method)},
              {"equalize", o.equalize},
              {"bias_correction", o.bias_correction},
              {"smooth_alpha", o.smooth_alpha},
              {"percentile", o.percentile},
              {"per_channel_weights", o.per_channel_weights},
              {"fp32_modules", o.fp32_modules},
              {"max_calibration_samples", o.max_calibration_samples},
              {"batch_size", o.batch_size},
              {"holdout_fraction", o.holdout_fraction},
              {"max_eval_samples", o.max_eval_samples},
              {"max_agreement_loss", o.max_agreement_loss},
              {"max_accuracy_loss", o.max_accuracy_loss},
              {"auto_fallback", o.auto_fallback},
              {"max_trials", o.max_trials},
              {"time_limit_seconds", o.time_limit_seconds},
              {"latency_runs", o.latency_runs},
              {"group_size", o.group_size},
              {"activation_aware", o.activation_aware}};
}

// Every field is required: parent and child are the same build.
QuantizeOptions OptionsFromJ(const json& j) {
  QuantizeOptions o;
  auto mode = ParseQuantMode(j.at("mode").get<std::string>());
  if (!mode.ok())
    throw std::runtime_error(std::string(mode.status().message()));
  o.mode = *mode;
  auto method = ParseRangeMethod(j.at("method").get<std::string>());
  if (!method.ok()) {
    throw std::runtime_error(std::string(method.status().message()));
  }
  o.method = *method;
  o.search = j.at("search").get<bool>();
  o.equalize = j.at("equalize").get<bool>();
  o.bias_correction = j.at("bias_correction").get<bool>();
  o.smooth_alpha = j.at("smooth_alpha").get<double>();
  o.group_size = j.at("group_size").get<int64_t>();
  o.activation_aware = j.at("activation_aware").get<bool>();
  o.percentile = j.at("percentile").get<double>();
  o.per_channel_weights = j.at("per_channel_weights").get<bool>();
  o.fp32_modules = j.at("fp32_modules").get<std::vector<std::string>>();
  o.max_calibration_samples = j.at("max_calibration_samples").get<int64_t>();
  o.batch_size = j.at("batch_size").get<int>();
  o.holdout_fraction = j.at("holdout_fraction").get<double>();
  o.max_eval_samples = j.at("max_eval_samples").get<int64_t>();
  o.max_agreement_loss = j.at("max_agreement_loss").get<double>();
  o.max_accuracy_loss = j.at("max_accuracy_loss").get<double>();
  o.auto_fallback = j.at("auto_fallback").get<bool>();
  o.max_trials = j.at("max_trials").get<int>();
  o.time_limit_seconds = j.at("time_limit_seconds").get<double>();
  o.latency_runs = j.at("latency_runs").get<int>();
  return o;
}

// Tabs and newlines would break the line protocol.
std::string OneField(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"\t", " "}, {"\n", " "}, {"\r", " "}});
}

void PrintLine(const std::string& line) {
  // A parent that stopped reading has killed us or is about to.
  WriteAll(STDOUT_FILENO, line + "\n", "stdout").IgnoreError();
}

int PrintError(const absl::Status& s) {
  PrintLine(absl::StrCat("error\t", static_cast<int>(s.code()), "\t",
                         OneField(s.message())));
  return 1;
}

nlohmann::json SetToJ(const StoredSetFile& f) {
  return json{{"name", f.name}, {"path", f.path}, {"sha256", f.sha256}};
}

StoredSetFile SetFromJ(const json& j) {
  return {j.at("name").get<std::string>(), j.at("path").get<std::string>(),
          j.at("sha256").get<std::string>()};
}

absl::StatusOr<CalibrationSet> ReadSet(const StoredSetFile& f) {
  return CalibrationSet::ReadStored(f.path, f.sha256, f.name);
}

std::string Describe(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(wait_status), " (",
                        strsignal(WTERMSIG(wait_status)), ")");
  }
  return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
}

}  // namespace

std::string QuantizeOptionsToJson(const QuantizeOptions& options) {
  return OptionsToJ(options).dump();
}

absl::StatusOr<QuantizeOptions> QuantizeOptionsFromJson(
    const std::string& text) {
  try {
    return OptionsFromJ(json::parse(text));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed quantize options: ", e.what()));
  }
}

std::string WorkerJobToJson(const WorkerJob& job) {
  return json{{"fp32_path", job.fp32_path},
              {"fp32_serialized_bytes", job.fp32_serialized_bytes},
              {"inputs", SpecsToJson(job.signature.inputs)},
              {"outputs", SpecsToJson(job.signature.outputs)},
              {"calibration", SetToJ(job.calibration)},
              {"evaluation", SetToJ(job.evaluation)},
              {"options", OptionsToJ(job.options)},
              {"output_path", job.output_path},
              {"optimize_fp32", job.optimize_fp32},
              {"intra_op_threads", job.intra_op_threads},
              {"allow_unsafe_ops", job.allow_unsafe_ops}}
      .dump();
}

absl::StatusOr<WorkerJob> WorkerJobFromJson(const std::string& text) {
  try {
    const json j = json::parse(text);
    WorkerJob job;
    job.fp32_path = j.at("fp32_path").get<std::string>();
    job.fp32_serialized_bytes = j.at("fp32_serialized_bytes").get<uint64_t>();
    for (auto [key, specs] : {std::pair{"inputs", &job.signature.inputs},
                              std::pair{"outputs", &job.signature.outputs}}) {
      auto parsed = SpecsFromJson(j.at(key));
      if (!parsed.ok()) return parsed.status();
      *specs = std::move(*parsed);
    }
    job.calibration = SetFromJ(j.at("calibration"));
    job.evaluation = SetFromJ(j.at("evaluation"));
    job.options = OptionsFromJ(j.at("options"));
    job.output_path = j.at("output_path").get<std::string>();
    job.optimize_fp32 = j.at("optimize_fp32").get<bool>();
    job.intra_op_threads = j.at("intra_op_threads").get<int>();
    job.allow_unsafe_ops = j.at("allow_unsafe_ops").get<bool>();
    return job;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed quantization job: ", e.what()));
  }
}

absl::StatusOr<QuantizationReport> QuantizeInWorker(
    const std::string& worker_binary, const WorkerJob& job,
    const std::function<void(const QuantizeProgress&)>& progress,
    const std::atomic<bool>* cancel) {
  if (access(worker_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the quantization worker '", worker_binary,
                     "' cannot run: ", std::strerror(errno)));
  }
  const std::string job_file = job.output_path + ".job.json";
  struct RemoveJobFile {
    const std::string& path;
    ~RemoveJobFile() { unlink(path.c_str()); }
  } remove_job_file{job_file};
  if (absl::Status s = WriteFileAtomically(job_file, WorkerJobToJson(job));
      !s.ok()) {
    return s;
  }

  int fds[2];
  // Close-on-exec, so children other jobs spawn meanwhile do not hold the
  // write end open (the read below would never see EOF).
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create a pipe: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> argv = {const_cast<char*>(worker_binary.c_str()),
                             const_cast<char*>(job_file.c_str()), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, worker_binary.c_str(), &actions, nullptr,
                             argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start the quantization worker '", worker_binary,
                     "': ", std::strerror(rc)));
  }

  std::string pending, result_line, error_line;
  bool cancelled = false;
  char buf[4096];
  while (true) {
    if (cancel != nullptr && cancel->load() && !cancelled) {
      cancelled = true;
      kill(pid, SIGKILL);
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, 100);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child exited (or closed stdout)
    pending.append(buf, n);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      std::vector<std::string> f = absl::StrSplit(line, '\t');
      if (f[0] == "progress" && f.size() == 4 && progress) {
        QuantizeProgress q;
        q.stage = f[1];
        if (!absl::SimpleAtoi(f[2], &q.done)) q.done = 0;
        if (!absl::SimpleAtoi(f[3], &q.total)) q.total = 0;
        progress(q);
      } else if (f[0] == "result") {
        result_line = line.substr(7);
      } else if (f[0] == "error") {
        error_line = line;
      }
    }
  }
  close(fds[0]);
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (cancelled) return absl::CancelledError("quantization was cancelled");
  if (!error_line.empty()) {
    std::vector<std::string> f =
        absl::StrSplit(error_line, absl::MaxSplits('\t', 2));
    int code = static_cast<int>(absl::StatusCode::kInternal);
    if (f.size() < 3 || !absl::SimpleAtoi(f[1], &code) || code <= 0 ||
        code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
      return absl::InternalError(
          absl::StrCat("the quantization worker failed: ", error_line));
    }
    return absl::Status(static_cast<absl::StatusCode>(code), f[2]);
  }
  if (result_line.empty() || !WIFEXITED(wait_status) ||
      WEXITSTATUS(wait_status) != 0) {
    return absl::InternalError(
        absl::StrCat("the quantization worker ", Describe(wait_status),
                     " without a result; nothing was published"));
  }
  auto report = QuantizationReport::FromJson(result_line);
  if (!report.ok()) {
    return absl::InternalError(
        absl::StrCat("the quantization worker's report is malformed: ",
                     report.status().message()));
  }
  return report;
}

int RunWorkerJob(const std::string& job_file) {
  // Never outlive the server that started us.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto text = ReadFile(job_file);
  if (!text.ok()) return PrintError(text.status());
  auto job = WorkerJobFromJson(*text);
  if (!job.ok()) return PrintError(job.status());
  ConfigureTorchThreads(std::max(1, job->intra_op_threads), 1);
  UseOneDnnQuantizedEngine();
  AllowUnsafeOps(job->allow_unsafe_ops);

  auto calib = ReadSet(job->calibration);
  if (!calib.ok()) return PrintError(calib.status());
  CalibrationSet eval;
  if (!job->evaluation.path.empty()) {
    auto e = ReadSet(job->evaluation);
    if (!e.ok()) return PrintError(e.status());
    eval = std::move(*e);
  }
  RunnerOptions fp32_options;
  fp32_options.optimize = job->optimize_fp32;
  auto fp32 = Runner::Load(job->fp32_path, job->signature, fp32_options);
  if (!fp32.ok()) return PrintError(fp32.status());

  QuantizeInputs inputs;
  inputs.fp32_path = job->fp32_path;
  inputs.signature = job->signature;
  inputs.calibration = &*calib;
  inputs.evaluation = job->evaluation.path.empty() ? nullptr : &eval;
  inputs.fp32_runner = fp32->get();
  inputs.fp32_serialized_bytes = job->fp32_serialized_bytes;
  auto result = QuantizeModel(
      inputs, job->options, job->output_path,
      [](const QuantizeProgress& p) {
        PrintLine(absl::StrCat("progress\t", OneField(p.stage), "\t", p.done,
                               "\t", p.total));
      },
      /*cancel=*/nullptr);  // the parent kills us instead
  if (!result.ok()) return PrintError(result.status());
  PrintLine(absl::StrCat("result\t", result->report.ToJson()));
  return 0;
}

std::string DefaultWorkerBinary() {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  std::string dir(self, n);
  dir = dir.substr(0, dir.rfind('/'));
  const std::string path = dir + "/twinserve_quantize";
  return access(path.c_str(), X_OK) == 0 ? path : "";
}

}  // namespace twinserve
