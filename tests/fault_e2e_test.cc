// Faults in the store's durable writes, injected at each step of each kind
// of write (file_util.h, InjectedFault): the process killed there, or the
// step failing. After a restart the store is consistent, everything that
// was acknowledged is there, and nothing half-written is served. Also: a
// damaged stored variant or calibration set fails that part only.

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::AddSubOptions;
using ::twinserve::testing::FashionOptions;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::QuantizeAndWait;
using ::twinserve::testing::RandomImages;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

namespace fs = std::filesystem;

// A store holding "f" (the Fashion CNN) with a calibration set, made once.
const std::string& BaseStore() {
  static const std::string* dir = [] {
    auto* d = new std::string(NewTempDir("base") + "/store");
    ServerProcess server(*d);
    TwinClient client(server.address());
    EXPECT_TRUE(client
                    .Register(FashionOptions("f"),
                              ReadFileOrDie(FixturePath("fashion_cnn.pt")))
                    .ok());
    EXPECT_TRUE(
        client.UploadCalibration("f", "calib", {RandomImages(64, 1)}, {}, false)
            .ok());
    return d;
  }();
  return *dir;
}

std::string CopyOfBase() {
  const std::string dir = NewTempDir("store") + "/store";
  fs::copy(BaseStore(), dir, fs::copy_options::recursive);
  return dir;
}

const std::string& FaultFile() {
  static const std::string* path = [] {
    auto* p = new std::string(NewTempDir("fault") + "/fault");
    setenv("TWINSERVE_TEST_FAULT_FILE", p->c_str(), 1);
    return p;
  }();
  return *path;
}

void Arm(const std::string& spec) { std::ofstream(FaultFile()) << spec; }
void Disarm() { fs::remove(FaultFile()); }

absl::Status Quantize(TwinClient& client) {
  return QuantizeAndWait(client, "f");
}

struct Write {
  const char* name;
  const char* path_part;  // where its fault is injected
  std::function<absl::Status(TwinClient&)> run;
  // Whether its effect is visible (after a restart).
  std::function<bool(TwinClient&)> visible;
};

std::vector<Write> Writes() {
  return {
      {"register", "models/g",
       [](TwinClient& c) {
         return c
             .Register(AddSubOptions("g"),
                       ReadFileOrDie(FixturePath("add_sub.pt")))
             .status();
       },
       [](TwinClient& c) { return c.Get("g").ok(); }},
      {"calibration upload", "models/f",
       [](TwinClient& c) {
         return c
             .UploadCalibration("f", "more", {RandomImages(16, 2)}, {}, false)
             .status();
       },
       [](TwinClient& c) {
         auto sets = c.ListCalibrationSets("f");
         if (!sets.ok()) return false;
         for (const auto& s : *sets) {
           if (s.name() == "more") return s.samples() == 16;
         }
         return false;
       }},
      {"quantized artifact", "models/f", Quantize,
       [](TwinClient& c) {
         auto info = c.Get("f");
         if (!info.ok()) return false;
         for (const auto& v : info->variants()) {
           if (v.name() == "int8") return true;
         }
         return false;
       }},
      {"policy change", "models/f",
       [](TwinClient& c) {
         v1::SetTrafficPolicyRequest req;
         req.set_model("f");
         req.mutable_policy()->set_kind("pinned");
         req.mutable_policy()->set_baseline("fp32");
         req.set_reason("fault test");
         return c.SetPolicy(req).status();
       },
       [](TwinClient& c) {
         auto p = c.GetPolicy("f");
         return p.ok() && p->version() > 0;
       }},
      {"job record", "jobs/", Quantize,
       [](TwinClient& c) {
         auto jobs = c.ListJobs("f");
         return jobs.ok() && !jobs->empty();
       }},
  };
}

// Everything the restarted server holds serves: no variant half-written,
// no model broken, and fp32 answers.
void ExpectConsistent(TwinClient& client, const std::string& what) {
  auto models = client.List();
  ASSERT_TRUE(models.ok()) << what << ": " << models.status();
  for (const auto& m : *models) {
    EXPECT_EQ(m.state(), v1::READY)
        << what << ": model " << m.name() << ": " << m.last_error();
    for (const auto& v : m.variants()) {
      EXPECT_EQ(v.state(), v1::READY) << what << ": " << m.name() << ":"
                                      << v.name() << ": " << v.last_error();
    }
  }
  auto out = client.Infer("f", {RandomImages(1, 3)}, "fp32");
  EXPECT_TRUE(out.ok()) << what << ": " << out.status();
}

// kill -9 at each step of each durable write, then restart.
TEST(FaultE2eTest, KilledAtEveryStepOfEveryWrite) {
  FaultFile();  // sets the variable every server started from here sees
  for (const Write& w : Writes()) {
    for (const char* point : {"write", "fsync", "rename", "renamed"}) {
      const std::string what = absl::StrCat(w.name, ", killed at ", point);
      SCOPED_TRACE(what);
      const std::string store = CopyOfBase();
      absl::Status acked;
      {
        ServerProcess server(store);
        TwinClient client(server.address());
        Arm(absl::StrCat(point, " kill ", w.path_part));
        acked = w.run(client);
        Disarm();
        // Every write passes each of these steps: the fault fired.
        EXPECT_FALSE(acked.ok()) << what << ": the server was not killed";
        server.Kill9();  // reaps it
      }
      ServerProcess server(store);
      TwinClient client(server.address());
      ExpectConsistent(client, what);
      if (acked.ok()) {
        EXPECT_TRUE(w.visible(client)) << what << ": acknowledged but lost";
      }
    }
  }
}

// A step that fails: the write fails cleanly (nothing changes, the server
// serves on, a retry succeeds); a failure after the rename (the folder's
// fsync) leaves the write committed, and nothing it references is deleted.
TEST(FaultE2eTest, FailingStepsFailCleanlyOrCommit) {
  FaultFile();
  for (const Write& w : Writes()) {
    for (const char* point : {"fsync", "renamed", "syncdir"}) {
      const std::string what = absl::StrCat(w.name, ", ", point, " fails");
      SCOPED_TRACE(what);
      const std::string store = CopyOfBase();
      {
        ServerProcess server(store);
        TwinClient client(server.address());
        Arm(absl::StrCat(point, " fail ", w.path_part));
        absl::Status first = w.run(client);
        Disarm();
        if (first.ok()) {
          EXPECT_TRUE(w.visible(client)) << what;
        } else {
          // Failed: retried, it succeeds (the failure left no debris that
          // blocks it).
          absl::Status again = w.run(client);
          EXPECT_TRUE(again.ok()) << what << ": retry: " << again;
        }
        ExpectConsistent(client, what);
        EXPECT_EQ(server.Stop(), 0);
      }
      ServerProcess server(store);
      TwinClient client(server.address());
      ExpectConsistent(client, what + ", restarted");
      EXPECT_TRUE(w.visible(client)) << what << ": lost after a restart";
    }
  }
}

// A damaged variant file fails that variant only; a damaged calibration
// set fails the jobs that use it, not the model.
TEST(FaultE2eTest, ADamagedPartFailsThatPartOnly) {
  const std::string store = CopyOfBase();
  {
    ServerProcess server(store);
    TwinClient client(server.address());
    ASSERT_TRUE(Quantize(client).ok());
  }
  // Corrupt the int8 file and the calibration set on disk.
  for (const auto& e : fs::directory_iterator(store + "/models/f")) {
    const std::string name = e.path().filename();
    if (name.rfind("int8-", 0) == 0 || name.rfind("calib-calib", 0) == 0) {
      std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(100);
      f.write("garbage!", 8);
    }
  }
  ServerProcess server(store);
  TwinClient client(server.address());
  auto info = client.Get("f");
  ASSERT_TRUE(info.ok()) << info.status();
  for (const auto& v : info->variants()) {
    if (v.name() == "int8") {
      EXPECT_EQ(v.state(), v1::FAILED);
      EXPECT_THAT(v.last_error(), ::testing::HasSubstr("checksum mismatch"));
    } else {
      EXPECT_EQ(v.state(), v1::READY) << v.name();
    }
  }
  EXPECT_TRUE(client.Infer("f", {RandomImages(1, 3)}, "fp32").ok());
  EXPECT_TRUE(client.Infer("f", {RandomImages(1, 3)}).ok());
  v1::QuantizeRequest q;
  q.set_model("f");
  q.set_calibration_set("calib");
  q.set_variant("int8b");
  auto job = client.Quantize(q);
  ASSERT_TRUE(job.ok()) << job.status();
  auto end = client.WatchJob(job->id(), nullptr);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state(), v1::JOB_FAILED);
  EXPECT_THAT(end->message(), ::testing::HasSubstr("calibration set 'calib'"));
}

}  // namespace
}  // namespace twinserve
