// Shared by twinctl's command groups: its arguments, how it reports
// errors (exit 1: the server refused; exit 2: bad usage), and the printing
// of models. Each group (twinctl_models.cc, twinctl_quantize.cc,
// twinctl_traffic.cc) talks to the server only through TwinClient.
#ifndef TWINSERVE_CLIENT_TWINCTL_COMMON_H_
#define TWINSERVE_CLIENT_TWINCTL_COMMON_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/twin_client.h"

namespace twinserve {
namespace twinctl {

extern const char kUsage[];

struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> flags;

  std::string Get(const std::string& key, const std::string& def = "") const {
    auto it = flags.find(key);
    return it == flags.end() ? def : it->second;
  }
  std::vector<std::string> All(const std::string& key) const {
    std::vector<std::string> out;
    auto range = flags.equal_range(key);
    for (auto it = range.first; it != range.second; ++it) {
      out.push_back(it->second);
    }
    return out;
  }
  bool Has(const std::string& key) const { return flags.count(key) > 0; }
};

// Positional arguments and --flags (--flag VALUE, --flag=VALUE, or a bare
// boolean flag). False with a message on stderr when a value is missing.
bool ParseArgs(int argc, char** argv, Args* args);

// Prints the server's refusal; returns 1.
int Fail(const absl::Status& status);
// Prints why and the usage; returns 2.
int Usage(const std::string& why);

std::string Specs(const google::protobuf::RepeatedPtrField<v1::TensorSpec>& s);
// Local time of a Unix millisecond stamp, "-" for 0.
std::string Time(int64_t unix_ms);
std::string BatchingText(const v1::BatchingConfig& b);
void PrintModel(const v1::ModelInfo& m);
// Reads --max-batch, --batch-delay-us, --preferred, --queue-capacity into
// `config`; false with a message on a malformed value.
bool ParseBatchingFlags(const Args& args, v1::BatchingConfig* config,
                        std::string* error);
// The whole file; nullopt if it cannot be read.
std::optional<std::string> ReadBytes(const std::string& path);
// --FLAG as a number: nullopt when absent; false when malformed.
// Samples named by --PREFIX FILE.npy or --PREFIX-idx FILE (Fashion-MNIST
// IDX images, scaled to [0,1]) as input `input_name`, with labels from
// --PREFIX-labels (.npy, or IDX when the name ends in .gz or -ubyte), at
// most `limit` (> 0) of them. Nothing named: true with no samples. False
// with `error` set on a file that does not read.
bool ReadSamples(const Args& args, const std::string& prefix,
                 const std::string& input_name, int64_t limit,
                 std::vector<HostTensor>* inputs, std::vector<int64_t>* labels,
                 std::string* error);
// Fills the rollout part of `p` from --rollout (the candidate; "true" or
// empty: left to the server) and --steps, --min-requests, --min-seconds,
// --max-disagreement, --baseline; an error message on a malformed value.
std::string RolloutFromFlags(const Args& args, v1::TrafficPolicy* p);
bool NumberFlag(const Args& args, const std::string& flag,
                std::optional<double>* out);
bool IntegerFlag(const Args& args, const std::string& flag,
                 std::optional<int64_t>* out);

// Command groups. Each returns the exit code.
int Health(TwinClient& client);
int Register(TwinClient& client, const Args& args);
int RegisterVariant(TwinClient& client, const Args& args);
int List(TwinClient& client);
int Show(TwinClient& client, const Args& args);
int Unregister(TwinClient& client, const Args& args);
int Batching(TwinClient& client, const Args& args);
int Infer(TwinClient& client, const Args& args);

int Calibrate(TwinClient& client, const Args& args);
int Sets(TwinClient& client, const Args& args);
int DeleteSet(TwinClient& client, const Args& args);
int Quantize(TwinClient& client, const Args& args);
int Jobs(TwinClient& client, const Args& args);
int Watch(TwinClient& client, const Args& args);
int Cancel(TwinClient& client, const Args& args);
int Report(TwinClient& client, const Args& args);

int Policy(TwinClient& client, const Args& args);
int Promote(TwinClient& client, const Args& args);
int Rollback(TwinClient& client, const Args& args);
int History(TwinClient& client, const Args& args);
int Compare(TwinClient& client, const Args& args);

}  // namespace twinctl
}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_TWINCTL_COMMON_H_
