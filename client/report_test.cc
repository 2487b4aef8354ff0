#include "client/report.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::QuantizationReport Int4Report() {
  v1::QuantizationReport r;
  r.set_model("mlp");
  r.set_variant("int4-weight");
  r.set_mode("int4-weight");
  r.set_kernel_path("avx2");
  auto* fc1 = r.add_linear_kernels();
  fc1->set_layer("fc1");
  fc1->set_out_features(512);
  fc1->set_in_features(784);
  fc1->set_kernel("twinserve int4-weight g128");
  fc1->set_awq_alpha(0.3);
  fc1->set_awq_error_ratio(0.82);
  fc1->set_gemm_from_rows(16);
  fc1->set_twinserve_ms_b1(-1);
  fc1->set_libtorch_ms_b1(-1);
  auto* fc2 = r.add_linear_kernels();
  fc2->set_layer("fc2");
  fc2->set_out_features(10);
  fc2->set_in_features(512);
  fc2->set_kernel("fp32 (asked)");
  fc2->set_awq_alpha(-1);
  fc2->set_awq_error_ratio(-1);
  fc2->set_twinserve_ms_b1(-1);
  fc2->set_libtorch_ms_b1(-1);
  return r;
}

TEST(ReportTest, LinearKernelsTableNamesPathKernelsAndChoices) {
  const std::string text = FormatReport(Int4Report(), /*brief=*/true);
  EXPECT_THAT(text, HasSubstr("Linear kernels (avx2 path)"));
  EXPECT_THAT(text, HasSubstr("512x784"));
  EXPECT_THAT(text, HasSubstr("twinserve int4-weight g128"));
  EXPECT_THAT(text, HasSubstr("0.30"));
  EXPECT_THAT(text, HasSubstr("16 rows"));
  EXPECT_THAT(text, HasSubstr("fp32 (asked)"));
  EXPECT_THAT(text, HasSubstr("never"));
  // The static recipe line belongs to static reports only.
  EXPECT_THAT(text, Not(HasSubstr("recipe:")));
}

TEST(ReportTest, DynamicRowsShowBothKernelsTimes) {
  v1::QuantizationReport r = Int4Report();
  r.set_mode("dynamic");
  auto* k = r.mutable_linear_kernels(0);
  k->set_kernel("twinserve int8-dynamic");
  k->set_twinserve_ms_b1(0.155);
  k->set_libtorch_ms_b1(0.931);
  EXPECT_THAT(FormatReport(r, true), HasSubstr("(0.155 vs 0.931 ms)"));
}

TEST(ReportTest, NoLinearTableWithoutLinearKernels) {
  v1::QuantizationReport r;
  r.set_mode("static");
  EXPECT_THAT(FormatReport(r, false), Not(HasSubstr("Linear kernels")));
}

}  // namespace
}  // namespace twinserve
