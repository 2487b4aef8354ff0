#include "server/store/records.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

TEST(RecordsTest, ManifestRoundTripsEveryField) {
  ModelRecord r;
  r.name = "m";
  r.registration_id = "r-123";
  r.revision = 7;
  r.description = "two heads";
  r.signature.inputs = {{"a", DataType::kFp32, {-1, 4}}};
  r.signature.outputs = {{"y", DataType::kInt64, {-1}}};
  r.created_unix_ms = 1;
  r.updated_unix_ms = 2;
  r.generation = 3;
  r.variants["fp32"] = {"fp32-g3-ab.pt", "00ff", 10, 4, 0, ""};
  r.variants["int8"] = {"int8-g3-cd.pt", "11ee", 5, 6, 3, "{\"x\":1}"};
  r.calibration_sets["calib"] = {"calib-calib-ef.bin", "22dd", 100, 8, true, 9};
  r.policy_json = "{\"kind\":\"pinned\"}";
  r.policy_history_json = "[]";
  r.batching_json = "{}";
  auto back = FromManifest(ToManifest(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ToManifest(*back), ToManifest(r));
  EXPECT_EQ(back->registration_id, "r-123");
  EXPECT_EQ(back->revision, 7u);
  EXPECT_EQ(ReferencedFiles(*back),
            (std::set<std::string>{"fp32-g3-ab.pt", "int8-g3-cd.pt",
                                   "calib-calib-ef.bin"}));
}

TEST(RecordsTest, EarlierManifestsGetAStableIdAndCorruptOnesAreDataLoss) {
  const std::string old = R"({"format": 1, "name": "m", "created_unix_ms": 5,
      "updated_unix_ms": 5, "generation": 2, "inputs": [], "outputs": [],
      "variants": {}})";
  auto r = FromManifest(old);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registration_id, "legacy-5-g2");
  EXPECT_EQ(r->revision, 1u);
  EXPECT_EQ(FromManifest("{").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(FromManifest(R"({"format": 9})").status().message(),
              HasSubstr("format 9"));
}

// The store joins these names to the model's folder: a manifest must not
// lead it to read, check or delete a file elsewhere.
TEST(RecordsTest, NamesThatWouldLeaveTheModelFolderAreDataLoss) {
  ModelRecord r;
  r.name = "m";
  r.variants["fp32"] = {"fp32-1.pt", "00", 1, 1, 0, ""};
  r.calibration_sets["calib"] = {"calib-1.bin", "00", 1, 1, false, 1};
  ASSERT_TRUE(FromManifest(ToManifest(r)).ok());
  for (const char* bad : {"../other/fp32.pt", "/etc/passwd", "a/b", "..", ""}) {
    ModelRecord v = r;
    v.variants["fp32"].file = bad;
    EXPECT_EQ(FromManifest(ToManifest(v)).status().code(),
              absl::StatusCode::kDataLoss)
        << bad;
    ModelRecord c = r;
    c.calibration_sets["calib"].file = bad;
    EXPECT_EQ(FromManifest(ToManifest(c)).status().code(),
              absl::StatusCode::kDataLoss)
        << bad;
    ModelRecord n = r;
    n.name = bad;
    EXPECT_EQ(FromManifest(ToManifest(n)).status().code(),
              absl::StatusCode::kDataLoss)
        << bad;
  }
  ModelRecord vn = r;
  vn.variants["../x"] = vn.variants["fp32"];
  EXPECT_THAT(FromManifest(ToManifest(vn)).status().message(),
              HasSubstr("variant name"));
}

}  // namespace
}  // namespace twinserve
