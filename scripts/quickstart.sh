#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Quick start: installs missing build dependencies, builds examples/quickstart.cpp and runs it.
# Build tree: build/quickstart (tests off, warnings not fatal: your compiler may be newer than ours).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

bash scripts/ensure-deps.sh --quick   # compiler, CMake, Ninja, Boost: no Catch2 or Meson (the tests need those)
if [[ ! -f examples/quickstart.cpp ]]; then
    echo "quickstart: examples/quickstart.cpp does not exist" >&2
    exit 1
fi
export CMAKE_GENERATOR=${CMAKE_GENERATOR:-Ninja}
cmake -S . -B build/quickstart -DCMAKE_BUILD_TYPE=Release \
    -DPROCPOOL_BUILD_TESTS=OFF -DPROCPOOL_BUILD_EXAMPLES=ON -DPROCPOOL_BUILD_BENCH=OFF -DPROCPOOL_WERROR=OFF >/dev/null
cmake --build build/quickstart -j "${PROCPOOL_JOBS:-2}" --target example_quickstart
echo "--- build/quickstart/examples/example_quickstart"
exec build/quickstart/examples/example_quickstart
