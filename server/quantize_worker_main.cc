// twinserve_quantize JOB_FILE: runs one quantization job for the server
// that started it (quant/quantize_worker.h describes the protocol).
#include <cstdio>

#include "quant/quantize_worker.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: %s JOB_FILE\nRuns one quantization job for "
                 "twinserve; the server starts it.\n",
                 argv[0]);
    return 2;
  }
  return twinserve::RunWorkerJob(argv[1]);
}
