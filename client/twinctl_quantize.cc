// twinctl's quantization commands: calibrate, sets, delete-set, quantize,
// jobs, watch, cancel, report.
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/idx.h"
#include "client/npy.h"
#include "client/report.h"
#include "client/twinctl_common.h"

namespace twinserve {
namespace twinctl {
namespace {

int Follow(TwinClient& client, const std::string& id) {
  const bool tty = isatty(fileno(stderr));
  auto last = client.WatchJob(id, [tty](const v1::Job& j) {
    if (tty) {
      std::fprintf(stderr, "\r%s", FormatProgress(j).c_str());
    } else {
      std::fprintf(stderr, "%s\n", FormatProgress(j).c_str());
    }
  });
  if (tty) std::fprintf(stderr, "\n");
  if (!last.ok()) return Fail(last.status());
  std::printf("job %s %s: %s\n", last->id().c_str(),
              v1::JobState_Name(last->state()).c_str(),
              last->message().c_str());
  return last->state() == v1::JOB_SUCCEEDED ? 0 : 1;
}

}  // namespace

bool ReadSamples(const Args& args, const std::string& prefix,
                 const std::string& input_name, int64_t limit,
                 std::vector<HostTensor>* inputs, std::vector<int64_t>* labels,
                 std::string* error) {
  inputs->clear();
  labels->clear();
  if (args.Has(prefix + "-idx")) {
    auto images = ReadIdx(args.Get(prefix + "-idx"));
    if (!images.ok()) {
      *error = std::string(images.status().message());
      return false;
    }
    inputs->push_back(ImagesToFloat(*images));
  } else if (args.Has(prefix)) {
    auto t = ReadNpy(args.Get(prefix), input_name);
    if (!t.ok()) {
      *error = std::string(t.status().message());
      return false;
    }
    inputs->push_back(std::move(*t));
  } else {
    return true;
  }
  (*inputs)[0].name = input_name;
  if (args.Has(prefix + "-labels")) {
    const std::string path = args.Get(prefix + "-labels");
    const bool idx =
        absl::EndsWith(path, ".gz") || absl::EndsWith(path, "-ubyte");
    auto y = idx ? ReadIdx(path) : ReadNpy(path, "labels");
    if (!y.ok()) {
      *error = std::string(y.status().message());
      return false;
    }
    const int64_t n = ElementCount(y->shape);
    for (int64_t i = 0; i < n; ++i) {
      switch (y->dtype) {
        case DataType::kInt64:
          labels->push_back(reinterpret_cast<const int64_t*>(y->data)[i]);
          break;
        case DataType::kInt32:
          labels->push_back(reinterpret_cast<const int32_t*>(y->data)[i]);
          break;
        case DataType::kUint8:
          labels->push_back(reinterpret_cast<const uint8_t*>(y->data)[i]);
          break;
        default:
          *error = "labels must be int64, int32 or uint8";
          return false;
      }
    }
  }
  if (limit > 0) {
    for (HostTensor& t : *inputs) {
      if (!t.shape.empty() && t.shape[0] > limit) {
        t.byte_size = t.byte_size / t.shape[0] * limit;
        t.shape[0] = limit;
      }
    }
    if (static_cast<int64_t>(labels->size()) > limit) labels->resize(limit);
  }
  return true;
}

int Calibrate(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("calibrate needs NAME");
  const std::string model = args.positional[1];
  std::vector<HostTensor> inputs;
  std::vector<int64_t> labels;
  int64_t limit = -1;
  if (args.Has("limit") && !absl::SimpleAtoi(args.Get("limit"), &limit)) {
    return Usage("--limit takes a number");
  }
  if (args.Has("idx-images")) {
    auto images = ReadIdx(args.Get("idx-images"));
    if (!images.ok()) return Usage(std::string(images.status().message()));
    auto info = client.Get(model);
    if (!info.ok()) return Fail(info.status());
    HostTensor x = ImagesToFloat(*images);
    x.name = info->inputs(0).name();
    inputs.push_back(x);
    if (args.Has("idx-labels")) {
      auto y = ReadIdx(args.Get("idx-labels"));
      if (!y.ok()) return Usage(std::string(y.status().message()));
      for (size_t i = 0; i < y->byte_size; ++i) {
        labels.push_back(static_cast<unsigned char>(y->data[i]));
      }
    }
  } else {
    const auto specs = args.All("input");
    if (specs.empty()) return Usage("calibrate needs --input or --idx-images");
    for (const auto& spec : specs) {
      std::string name, path = spec;
      const size_t eq = spec.find('=');
      if (eq != std::string::npos) {
        name = spec.substr(0, eq);
        path = spec.substr(eq + 1);
      } else {
        auto info = client.Get(model);
        if (!info.ok()) return Fail(info.status());
        name = info->inputs(0).name();
      }
      auto t = ReadNpy(path, name);
      if (!t.ok()) return Usage(std::string(t.status().message()));
      inputs.push_back(std::move(*t));
    }
    if (args.Has("labels-npy")) {
      auto y = ReadNpy(args.Get("labels-npy"), "labels");
      if (!y.ok()) return Usage(std::string(y.status().message()));
      const int64_t n = ElementCount(y->shape);
      for (int64_t i = 0; i < n; ++i) {
        switch (y->dtype) {
          case DataType::kInt64:
            labels.push_back(reinterpret_cast<const int64_t*>(y->data)[i]);
            break;
          case DataType::kInt32:
            labels.push_back(reinterpret_cast<const int32_t*>(y->data)[i]);
            break;
          case DataType::kUint8:
            labels.push_back(reinterpret_cast<const uint8_t*>(y->data)[i]);
            break;
          default:
            return Usage("labels must be int64, int32 or uint8");
        }
      }
    }
  }
  if (limit > 0) {
    for (HostTensor& t : inputs) {
      if (!t.shape.empty() && t.shape[0] > limit) {
        t.byte_size = t.byte_size / t.shape[0] * limit;
        t.shape[0] = limit;
      }
    }
    if (static_cast<int64_t>(labels.size()) > limit) labels.resize(limit);
  }
  const std::string set = args.Get("set", "calib");
  auto info = client.UploadCalibration(
      model, set, inputs, labels, args.Has("replace"), 64,
      [](int64_t done, int64_t total) {
        const int width = 30;
        const int filled =
            static_cast<int>(width * done / std::max<int64_t>(1, total));
        std::fprintf(stderr, "\r[%s%s] %lld/%lld samples",
                     std::string(filled, '#').c_str(),
                     std::string(width - filled, '.').c_str(),
                     static_cast<long long>(done),
                     static_cast<long long>(total));
      });
  std::fprintf(stderr, "\n");
  if (!info.ok()) return Fail(info.status());
  std::printf("stored set '%s' of %s: %lld samples, %llu bytes%s\n",
              info->name().c_str(), info->model().c_str(),
              static_cast<long long>(info->samples()),
              static_cast<unsigned long long>(info->bytes()),
              info->labels() ? ", labelled" : "");
  return 0;
}

int Sets(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("sets needs NAME");
  auto sets = client.ListCalibrationSets(args.positional[1]);
  if (!sets.ok()) return Fail(sets.status());
  std::printf("%-16s %10s %14s %-8s %s\n", "set", "samples", "bytes", "labels",
              "created");
  for (const auto& s : *sets) {
    std::printf("%-16s %10lld %14llu %-8s %s\n", s.name().c_str(),
                static_cast<long long>(s.samples()),
                static_cast<unsigned long long>(s.bytes()),
                s.labels() ? "yes" : "no", Time(s.created_unix_ms()).c_str());
  }
  return 0;
}

int Quantize(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("quantize needs NAME");
  v1::QuantizeRequest req;
  req.set_model(args.positional[1]);
  req.set_variant(args.Get("variant"));
  req.set_calibration_set(args.Get("set"));
  req.set_eval_set(args.Get("eval-set"));
  req.set_method(args.Get("method"));
  req.set_mode(args.Get("mode"));
  req.set_per_tensor_weights(args.Has("per-tensor"));
  req.set_auto_fallback(args.Has("auto-fallback"));
  if (args.Has("no-equalize")) req.set_equalize(false);
  if (args.Has("no-bias-correction")) req.set_bias_correction(false);
  for (const auto& m : args.All("fp32")) req.add_fp32_modules(m);
  double d;
  int64_t n;
  if (args.Has("percentile")) {
    if (!absl::SimpleAtod(args.Get("percentile"), &d))
      return Usage("--percentile takes a number");
    req.set_percentile(d);
  }
  if (args.Has("smooth-alpha")) {
    if (!absl::SimpleAtod(args.Get("smooth-alpha"), &d))
      return Usage("--smooth-alpha takes a number");
    req.set_smooth_alpha(d);
  }
  if (args.Has("group-size")) {
    if (!absl::SimpleAtoi(args.Get("group-size"), &n))
      return Usage("--group-size takes a number");
    req.set_group_size(static_cast<int32_t>(n));
  }
  if (args.Has("no-activation-aware")) req.set_activation_aware(false);
  if (args.Has("max-samples")) {
    if (!absl::SimpleAtoi(args.Get("max-samples"), &n))
      return Usage("--max-samples takes a number");
    req.set_max_samples(n);
  }
  if (args.Has("max-agreement-loss")) {
    if (!absl::SimpleAtod(args.Get("max-agreement-loss"), &d))
      return Usage("--max-agreement-loss takes a number");
    req.set_max_agreement_loss(d);
  }
  if (args.Has("max-accuracy-loss")) {
    if (!absl::SimpleAtod(args.Get("max-accuracy-loss"), &d))
      return Usage("--max-accuracy-loss takes a number");
    req.set_max_accuracy_loss(d);
  }
  if (args.Has("max-trials")) {
    if (!absl::SimpleAtoi(args.Get("max-trials"), &n))
      return Usage("--max-trials takes a number");
    req.set_max_trials(static_cast<int32_t>(n));
  }
  auto job = client.Quantize(req);
  if (!job.ok()) return Fail(job.status());
  std::printf("started job %s\n", job->id().c_str());
  if (args.Has("no-watch")) return 0;
  return Follow(client, job->id());
}

int Jobs(TwinClient& client, const Args& args) {
  auto jobs =
      client.ListJobs(args.positional.size() > 1 ? args.positional[1] : "");
  if (!jobs.ok()) return Fail(jobs.status());
  std::printf("%-24s %-16s %-8s %-16s %7s %9s  %s\n", "job", "model", "variant",
              "state", "percent", "elapsed", "message");
  for (const auto& j : *jobs) {
    std::printf("%-24s %-16s %-8s %-16s %6.1f%% %8.1fs  %s\n", j.id().c_str(),
                j.model().c_str(), j.variant().c_str(),
                v1::JobState_Name(j.state()).c_str(), j.percent(),
                j.elapsed_seconds(), j.message().c_str());
  }
  return 0;
}

int Report(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("report needs NAME");
  auto r = client.GetReport(args.positional[1], args.Get("variant", "int8"));
  if (!r.ok()) return Fail(r.status());
  std::fputs(FormatReport(*r, args.Has("brief")).c_str(), stdout);
  return 0;
}

int DeleteSet(TwinClient& client, const Args& args) {
  if (args.positional.size() != 3) return Usage("delete-set needs NAME SET");
  absl::Status st =
      client.DeleteCalibrationSet(args.positional[1], args.positional[2]);
  if (!st.ok()) return Fail(st);
  std::printf("deleted set %s of %s\n", args.positional[2].c_str(),
              args.positional[1].c_str());
  return 0;
}

int Watch(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("watch needs JOB");
  return Follow(client, args.positional[1]);
}

int Cancel(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("cancel needs JOB");
  auto job = client.CancelJob(args.positional[1]);
  if (!job.ok()) return Fail(job.status());
  std::printf("cancelling job %s\n", job->id().c_str());
  return 0;
}

}  // namespace twinctl
}  // namespace twinserve
