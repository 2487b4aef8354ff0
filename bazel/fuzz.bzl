"""twinserve_fuzz_test: one libFuzzer target and its seed corpus.

With the default toolchain (gcc) the target is an ordinary test that runs
every seed through LLVMFuzzerTestOneInput, so `bazel test //...` checks the
corpus still passes. With `--config=fuzz` (clang, libFuzzer, ASan, UBSan) the
same target is a fuzzer; .ci/fuzz runs each one for a bounded time.
"""

load("@rules_cc//cc:defs.bzl", "cc_test")

def twinserve_fuzz_test(name, srcs, deps, corpus, **kwargs):
    """A fuzz target.

    Args:
      name: the target, conventionally "<thing>_fuzz".
      srcs: sources; one defines LLVMFuzzerTestOneInput.
      deps: libraries under test.
      corpus: folder (in this package) holding the seed inputs.
      **kwargs: passed to cc_test.
    """
    cc_test(
        name = name,
        srcs = srcs,
        deps = deps + select({
            "//bazel:fuzzing": [],
            "//conditions:default": ["//bazel:fuzz_replay_main"],
        }),
        data = native.glob([corpus + "/**"]),
        args = select({
            "//bazel:fuzzing": ["-max_total_time=10"],
            "//conditions:default": [],
        }) + [native.package_name() + "/" + corpus],
        tags = ["fuzz"],
        **kwargs
    )
