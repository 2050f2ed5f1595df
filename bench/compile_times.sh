#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Compile time, the cost every user pays in every translation unit that includes procpool. Best of N runs of:
#   std      a file that includes the standard headers a typical source file already has (the baseline)
#   include  a file that only includes <procpool/procpool.hpp>
#   quick0   examples/quickstart.cpp at -O0
#   quick2   examples/quickstart.cpp at -O2
# and each as a ratio to `std` measured in the same run (compare ratios, not seconds: the machine's load varies).
#   bash bench/compile_times.sh [compiler] [runs]        (defaults: g++-12, 3)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${1:-g++-12}
runs=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/std.cpp" <<'EOF'
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>
int main() {}
EOF
printf '#include <procpool/procpool.hpp>\nint main() {}\n' >"$tmp/include.cpp"

# best <args...>: the fastest of $runs compiles, in seconds.
best() {
    local b="" t0 t1 s
    for ((i = 0; i < runs; ++i)); do
        t0=$(date +%s.%N)
        "$cxx" -std=c++20 -I"$repo/include" -c -o "$tmp/out.o" "$@"
        t1=$(date +%s.%N)
        s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        if [[ -z $b ]] || awk -v s="$s" -v b="$b" 'BEGIN { exit !(s < b) }'; then b=$s; fi
    done
    printf '%.2f' "$b"
}

std=$(best -O0 "$tmp/std.cpp")
inc=$(best -O0 "$tmp/include.cpp")
q0=$(best -O0 "$repo/examples/quickstart.cpp")
q2=$(best -O2 "$repo/examples/quickstart.cpp")
ratio() { awk -v a="$1" -v b="$std" 'BEGIN { printf "%.2f", a / b }'; }
echo "compile times with $cxx, best of $runs ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')):"
printf '  %-44s %6s s\n' "typical standard headers (baseline)" "$std"
printf '  %-44s %6s s  %sx\n' "#include <procpool/procpool.hpp> only" "$inc" "$(ratio "$inc")"
printf '  %-44s %6s s  %sx\n' "examples/quickstart.cpp -O0" "$q0" "$(ratio "$q0")"
printf '  %-44s %6s s  %sx\n' "examples/quickstart.cpp -O2" "$q2" "$(ratio "$q2")"
