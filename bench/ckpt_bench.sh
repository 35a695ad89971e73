# Usage: [CKPT_BENCH_BUILD=dir] bench/ckpt_bench.sh [ckpt_bench flags]
# Builds ckpt_bench in $CKPT_BENCH_BUILD (default build-cb/: configured here, Release, no tests; an
# existing Release build directory is reused as configured, which skips a full build), then runs it on
# configs/shapes/gpt2-124m.ini. Its scratch directory is inside that build directory, so the disk
# measured is that directory's disk (--dir DIR overrides).
set -e
src="$(cd "$(dirname "$0")/.." && pwd)"
build="${CKPT_BENCH_BUILD:-build-cb}"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFLYWHEEL_BUILD_TESTS=OFF
elif ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$build/CMakeCache.txt"; then
  echo "ckpt_bench.sh: $build is not a Release build (timings of other builds mean little)" >&2
  exit 1
fi
cmake --build "$build" -j2 --target ckpt_bench
exec "$build/bench/ckpt_bench" --shape "$src/configs/shapes/gpt2-124m.ini" "$@"
