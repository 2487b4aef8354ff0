#!/usr/bin/env bash
# --run_under wrapper of `--config=tsan`: preloads the absl::Mutex shim
# (tsan_absl_mutex.cc) so TSan sees Abseil's locks, then runs the test.
set -e
shim=""
for d in "${RUNFILES_DIR:-}" "$0.runfiles" "$(dirname "$0")"; do
  for c in "$d/twinserve/bazel/libtsan_absl_mutex.so" "$d/libtsan_absl_mutex.so"; do
    [ -z "$shim" ] && [ -f "$c" ] && shim="$(cd "$(dirname "$c")" && pwd)/$(basename "$c")"
  done
done
if [ -z "$shim" ]; then
  echo "tsan_run.sh: libtsan_absl_mutex.so not found" >&2
  exit 1
fi
tsan=$(ldconfig -p | awk '/libtsan\.so\.2 .*x86-64/ {print $NF; exit}')
export LD_PRELOAD="$tsan $shim${LD_PRELOAD:+ $LD_PRELOAD}"
exec "$@"
