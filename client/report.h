// Human-readable tables for quantization reports and job progress, shared
// by twinctl and the demo.
#ifndef TWINSERVE_CLIENT_REPORT_H_
#define TWINSERVE_CLIENT_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "proto/twinserve.pb.h"

namespace twinserve {

// Whole-model comparison (accuracy, agreement, size, latency side by side),
// then the per-layer SQNR table unless `brief`.
std::string FormatReport(const v1::QuantizationReport& report, bool brief);

// The side-by-side comparison table of `now`; with `before` (an earlier
// snapshot of the same model), rates and latency quantiles are over the
// window between them, else since the server started.
std::string FormatCompare(const v1::ModelStats& now,
                          const v1::ModelStats* before);

// "[#######.....]  58%  calibrating (ranges)  12.3 s", one line.
std::string FormatProgress(const v1::Job& job);

}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_REPORT_H_
