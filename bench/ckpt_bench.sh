# Usage: bench/ckpt_bench.sh [ckpt_bench flags]  (builds build-cb/, runs ckpt_bench on configs/shapes/gpt2-124m.ini)
cmake -S "$(dirname "$0")/.." -B build-cb -DCMAKE_BUILD_TYPE=Release -DFLYWHEEL_BUILD_TESTS=OFF && cmake --build build-cb -j2 --target ckpt_bench
exec ./build-cb/bench/ckpt_bench --shape configs/shapes/gpt2-124m.ini "$@"
