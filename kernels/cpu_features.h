// Which SIMD paths this CPU can run, detected once at run time. Kernels
// with several paths dispatch on Best() (or on a path a test asks for).
#ifndef TWINSERVE_KERNELS_CPU_FEATURES_H_
#define TWINSERVE_KERNELS_CPU_FEATURES_H_

namespace twinserve {

enum class KernelPath {
  kScalar,      // portable C++, the reference the tests compare against
  kAvx2,        // AVX2 + FMA
  kAvx512Vnni,  // AVX-512 F/BW/VL + VNNI
};

const char* KernelPathName(KernelPath path);

// Whether this CPU can run `path` (kScalar always).
bool CpuSupports(KernelPath path);

// The fastest path this CPU supports; $TWINSERVE_KERNEL_PATH ("scalar",
// "avx2", "avx512_vnni") lowers it for comparisons (a path the CPU lacks is
// ignored).
KernelPath BestKernelPath();

// The CPU flag a path needs, for skip messages ("avx512_vnni").
const char* RequiredFlags(KernelPath path);

}  // namespace twinserve

#endif  // TWINSERVE_KERNELS_CPU_FEATURES_H_
