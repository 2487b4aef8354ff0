// Human-readable tables for quantization reports and job progress, shared
// by twinctl and the demo.
#ifndef TWINSERVE_CLIENT_REPORT_H_
#define TWINSERVE_CLIENT_REPORT_H_

#include <string>

#include "proto/twinserve.pb.h"

namespace twinserve {

// Whole-model comparison (accuracy, agreement, size, latency side by side),
// then the per-layer SQNR table unless `brief`.
std::string FormatReport(const v1::QuantizationReport& report, bool brief);

// "[#######.....]  58%  calibrating (ranges)  12.3 s", one line.
std::string FormatProgress(const v1::Job& job);

}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_REPORT_H_
