#include "kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace twinserve {

const char* KernelPathName(KernelPath path) {
  switch (path) {
    case KernelPath::kScalar:
      return "scalar";
    case KernelPath::kAvx2:
      return "avx2";
    case KernelPath::kAvx512Vnni:
      return "avx512_vnni";
  }
  return "unknown";
}

const char* RequiredFlags(KernelPath path) {
  switch (path) {
    case KernelPath::kScalar:
      return "";
    case KernelPath::kAvx2:
      return "avx2 fma";
    case KernelPath::kAvx512Vnni:
      return "avx512f avx512bw avx512vl avx512_vnni";
  }
  return "";
}

bool CpuSupports(KernelPath path) {
  __builtin_cpu_init();
  switch (path) {
    case KernelPath::kScalar:
      return true;
    case KernelPath::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KernelPath::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

KernelPath BestKernelPath() {
  static const KernelPath best = [] {
    KernelPath p = KernelPath::kScalar;
    for (KernelPath c : {KernelPath::kAvx2, KernelPath::kAvx512Vnni}) {
      if (CpuSupports(c)) p = c;
    }
    if (const char* env = std::getenv("TWINSERVE_KERNEL_PATH")) {
      for (KernelPath c :
           {KernelPath::kScalar, KernelPath::kAvx2, KernelPath::kAvx512Vnni}) {
        if (std::strcmp(env, KernelPathName(c)) == 0 && CpuSupports(c) &&
            static_cast<int>(c) < static_cast<int>(p)) {
          p = c;
        }
      }
    }
    return p;
  }();
  return best;
}

}  // namespace twinserve
