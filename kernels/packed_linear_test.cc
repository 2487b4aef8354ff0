#include "kernels/packed_linear.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace twinserve {
namespace {

std::vector<float> Random(int64_t n, std::mt19937* rng, float scale = 1) {
  std::normal_distribution<float> d(0, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(*rng);
  return v;
}

// y = x W^T + b in double, for reference; also sum |x W| per output, the
// scale of the rounding error a float sum may have.
void Reference(const std::vector<float>& w, const std::vector<float>& x,
               const std::vector<float>& b, int64_t m, int64_t n, int64_t k,
               std::vector<double>* y, std::vector<double>* mag) {
  y->assign(m * n, 0);
  mag->assign(m * n, 0);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      double s = b[c], a = std::fabs(b[c]);
      for (int64_t j = 0; j < k; ++j) {
        s += static_cast<double>(x[r * k + j]) * w[c * k + j];
        a += std::fabs(static_cast<double>(x[r * k + j]) * w[c * k + j]);
      }
      (*y)[r * n + c] = s;
      (*mag)[r * n + c] = a;
    }
  }
}

struct Shape3 {
  int64_t m, n, k;
};

// Odd sizes on purpose: tails of every loop, padding of every block.
const Shape3 kShapes[] = {{1, 1, 1},
                          {3, 3, 17},
                          {1, 17, 3},
                          {17, 1000, 33},
                          {1, 5, 4097},
                          {3, 4097, 5},
                          {2, 64, 1000},
                          {1, 1000, 1000},
                          // Row blocks (4 rows), odd channel counts, tiles.
                          {5, 17, 64},
                          {8, 3, 4097},
                          {64, 65, 300}};

TEST(PackedLinearTest, PackedWeightsAreWithinHalfAStep) {
  std::mt19937 rng(1);
  const int64_t n = 7, k = 300;
  const std::vector<float> w = Random(n * k, &rng);
  const PackedInt8 p8 = PackInt8(w.data(), n, k);
  const std::vector<float> u8 = Unpack(p8);
  for (int64_t i = 0; i < n * k; ++i) {
    EXPECT_LE(std::fabs(u8[i] - w[i]), p8.scale[i / k] * 0.5f + 1e-6f) << i;
  }
  for (int64_t group : {32, 64, 128}) {
    const PackedInt4 p4 = PackInt4(w.data(), n, k, group);
    EXPECT_EQ(p4.k_padded % group, 0);
    const std::vector<float> u4 = Unpack(p4);
    const int64_t groups = p4.k_padded / group;
    for (int64_t i = 0; i < n * k; ++i) {
      const float step = p4.scale[(i / k) * groups + (i % k) / group];
      EXPECT_LE(std::fabs(u4[i] - w[i]), step * 0.5f + 1e-5f)
          << "group " << group << " at " << i;
    }
    // 4 bits per weight plus a scale and a zero point per group.
    EXPECT_EQ(static_cast<int64_t>(p4.q.size()), n * p4.k_padded / 2);
  }
}

TEST(PackedLinearTest, InputScalingIsExactInRealArithmetic) {
  std::mt19937 rng(2);
  const int64_t m = 3, n = 9, k = 70;
  std::vector<float> w = Random(n * k, &rng), x = Random(m * k, &rng);
  std::vector<float> s(k), b(n, 0.5f);
  for (int64_t j = 0; j < k; ++j) s[j] = 0.25f + (j % 5);
  const PackedInt4 p = PackInt4(w.data(), n, k, 32, s.data());
  // Against the FP32 weights the packed matrix stands for.
  const std::vector<float> u = Unpack(p);
  std::vector<double> ref, mag;
  Reference(u, x, b, m, n, k, &ref, &mag);
  std::vector<float> y(m * n);
  LinearInt4Weight(p, x.data(), m, b.data(), y.data(), KernelPath::kScalar);
  for (int64_t i = 0; i < m * n; ++i) {
    EXPECT_NEAR(y[i], ref[i], 1e-4 * mag[i] + 1e-5) << i;
  }
}

// Every kernel on `path` against the scalar reference, and the scalar
// reference against double precision on the unpacked weights.
void CheckPath(KernelPath path) {
  std::mt19937 rng(3);
  for (const Shape3& s : kShapes) {
    SCOPED_TRACE(std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                 std::to_string(s.k));
    const std::vector<float> w = Random(s.n * s.k, &rng);
    const std::vector<float> x = Random(s.m * s.k, &rng, 2);
    const std::vector<float> b = Random(s.n, &rng);
    std::vector<float> want(s.m * s.n), got(s.m * s.n);
    std::vector<double> ref, mag;

    const PackedInt8 p8 = PackInt8(w.data(), s.n, s.k);
    Reference(Unpack(p8), x, b, s.m, s.n, s.k, &ref, &mag);
    LinearInt8Weight(p8, x.data(), s.m, b.data(), want.data(),
                     KernelPath::kScalar);
    LinearInt8Weight(p8, x.data(), s.m, b.data(), got.data(), path);
    for (int64_t i = 0; i < s.m * s.n; ++i) {
      ASSERT_NEAR(want[i], ref[i], 1e-5 * mag[i] + 1e-6) << "int8 ref " << i;
      // SIMD paths round the inputs to 16 bits per row.
      ASSERT_NEAR(got[i], want[i], 1e-4 * mag[i] + 1e-5) << "int8 " << i;
    }

    for (int64_t group : {32, 64, 128}) {
      const PackedInt4 p4 = PackInt4(w.data(), s.n, s.k, group);
      Reference(Unpack(p4), x, b, s.m, s.n, s.k, &ref, &mag);
      LinearInt4Weight(p4, x.data(), s.m, b.data(), want.data(),
                       KernelPath::kScalar);
      LinearInt4Weight(p4, x.data(), s.m, b.data(), got.data(), path);
      for (int64_t i = 0; i < s.m * s.n; ++i) {
        // The zero-point correction subtracts large sums: relative to
        // them, not to the result.
        ASSERT_NEAR(want[i], ref[i], 1e-4 * mag[i] * 8 + 1e-5)
            << "int4 g" << group << " ref " << i;
        ASSERT_NEAR(got[i], want[i], 1e-4 * mag[i] * 8 + 1e-5)
            << "int4 g" << group << " " << i;
      }
    }

    // Dequantization (the GEMM form) of a channel range, input scaling
    // included: the unpacked weights.
    std::vector<float> in_scale(s.k);
    for (int64_t j = 0; j < s.k; ++j) in_scale[j] = 0.5f + (j % 7) * 0.25f;
    const PackedInt4 scaled = PackInt4(w.data(), s.n, s.k, 64, in_scale.data());
    const int64_t c0 = s.n / 3, c1 = s.n;
    std::vector<float> deq((c1 - c0) * s.k);
    const std::vector<float> u8 = Unpack(p8);
    DequantizeChannels(p8, c0, c1, deq.data(), path);
    for (int64_t i = 0; i < (c1 - c0) * s.k; ++i) {
      ASSERT_EQ(deq[i], u8[c0 * s.k + i]) << "dequantize int8 " << i;
    }
    const std::vector<float> u4 = Unpack(scaled);
    DequantizeChannels(scaled, c0, c1, deq.data(), path);
    for (int64_t i = 0; i < (c1 - c0) * s.k; ++i) {
      ASSERT_NEAR(deq[i], u4[c0 * s.k + i],
                  1e-5 * (1 + std::fabs(u4[c0 * s.k + i])))
          << "dequantize int4 " << i;
    }

    // Dynamic: the integer dot products are exact, so every path gives the
    // same bits.
    LinearInt8Dynamic(p8, x.data(), s.m, b.data(), want.data(),
                      KernelPath::kScalar);
    LinearInt8Dynamic(p8, x.data(), s.m, b.data(), got.data(), path);
    for (int64_t i = 0; i < s.m * s.n; ++i) {
      ASSERT_EQ(got[i], want[i]) << "dynamic " << i;
    }
  }
}

void CheckPathOrSkip(KernelPath path) {
  if (!CpuSupports(path)) {
    GTEST_SKIP() << "this CPU lacks " << RequiredFlags(path) << ": the "
                 << KernelPathName(path) << " path is not tested here";
  }
  CheckPath(path);
}

TEST(PackedLinearTest, ScalarMatchesDoublePrecision) {
  CheckPath(KernelPath::kScalar);
}
TEST(PackedLinearTest, Avx2MatchesScalar) {
  CheckPathOrSkip(KernelPath::kAvx2);
}
TEST(PackedLinearTest, Avx512VnniMatchesScalar) {
  CheckPathOrSkip(KernelPath::kAvx512Vnni);
}

TEST(PackedLinearTest, DynamicIsCloseToFp32) {
  std::mt19937 rng(4);
  const int64_t m = 4, n = 64, k = 512;
  const std::vector<float> w = Random(n * k, &rng), x = Random(m * k, &rng);
  const std::vector<float> b(n, 0);
  std::vector<double> ref, mag;
  Reference(w, x, b, m, n, k, &ref, &mag);
  const PackedInt8 p = PackInt8(w.data(), n, k);
  std::vector<float> y(m * n);
  LinearInt8Dynamic(p, x.data(), m, b.data(), y.data());
  double err = 0, norm = 0;
  for (int64_t i = 0; i < m * n; ++i) {
    err += (y[i] - ref[i]) * (y[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  // 7-bit activations and 8-bit weights: about 1% relative error.
  EXPECT_LT(std::sqrt(err / norm), 0.03);
}

TEST(PackedLinearTest, OutputRangesComposeToTheWhole) {
  std::mt19937 rng(5);
  const int64_t m = 2, n = 37, k = 100;
  const std::vector<float> w = Random(n * k, &rng), x = Random(m * k, &rng);
  const PackedInt8 p8 = PackInt8(w.data(), n, k);
  const PackedInt4 p4 = PackInt4(w.data(), n, k, 64);
  std::vector<float> whole(m * n), parts(m * n);
  LinearInt8Weight(p8, x.data(), m, nullptr, whole.data());
  LinearInt8Weight(p8, x.data(), m, nullptr, parts.data(), BestKernelPath(), 0,
                   13);
  LinearInt8Weight(p8, x.data(), m, nullptr, parts.data(), BestKernelPath(),
                   13);
  EXPECT_EQ(whole, parts);
  LinearInt4Weight(p4, x.data(), m, nullptr, whole.data());
  LinearInt4Weight(p4, x.data(), m, nullptr, parts.data(), BestKernelPath(), 0,
                   20);
  LinearInt4Weight(p4, x.data(), m, nullptr, parts.data(), BestKernelPath(),
                   20);
  EXPECT_EQ(whole, parts);
}

}  // namespace
}  // namespace twinserve
