#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Compile time, the cost every user pays in every translation unit that includes procpool. Best of N runs of:
#   std      a file that includes the standard headers a typical source file already has (the baseline)
#   include  a file that only includes <procpool/procpool.hpp>
#   quick0   examples/quickstart.cpp at -O0
#   quick2   examples/quickstart.cpp at -O2
# each header-only (the default) and with PROCPOOL_SEPARATE_COMPILATION (separate), plus src/procpool.cpp, the one
# file that separate mode compiles once per program; and each as a ratio to `std` measured in the same run (compare
# ratios, not seconds: the machine's load varies). Times are the compiler's CPU time (user + system), which a
# loaded machine disturbs less than the wall clock.
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

# best <args...>: the least CPU time of $runs compiles, in seconds.
best() {
    local b="" s TIMEFORMAT='%U %S'
    for ((i = 0; i < runs; ++i)); do
        s=$({ time "$cxx" -std=c++20 -I"$repo/include" -c -o "$tmp/out.o" "$@" 2>"$tmp/err"; } 2>&1) ||
            { cat "$tmp/err" >&2; exit 1; }
        s=$(awk -v t="$s" 'BEGIN { split(t, a, " "); print a[1] + a[2] }')
        if [[ -z $b ]] || awk -v s="$s" -v b="$b" 'BEGIN { exit !(s < b) }'; then b=$s; fi
    done
    printf '%.2f' "$b"
}

sep=-DPROCPOOL_SEPARATE_COMPILATION
std=$(best -O0 "$tmp/std.cpp")
ratio() { awk -v a="$1" -v b="$std" 'BEGIN { printf "%.2f", a / b }'; }
echo "compile times with $cxx, best of $runs ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')):"
printf '  %-52s %6s s\n' "typical standard headers -O0 (baseline)" "$std"
row() { # <label> <compiler args...>
    local label=$1 t
    shift
    t=$(best "$@")
    printf '  %-52s %6s s  %5sx\n' "$label" "$t" "$(ratio "$t")"
}
row "#include <procpool/procpool.hpp> only, header-only" -O0 "$tmp/include.cpp"
row "#include <procpool/procpool.hpp> only, separate" -O0 $sep "$tmp/include.cpp"
row "examples/quickstart.cpp -O0, header-only" -O0 "$repo/examples/quickstart.cpp"
row "examples/quickstart.cpp -O0, separate" -O0 $sep "$repo/examples/quickstart.cpp"
row "examples/quickstart.cpp -O2, header-only" -O2 "$repo/examples/quickstart.cpp"
row "examples/quickstart.cpp -O2, separate" -O2 $sep "$repo/examples/quickstart.cpp"
row "src/procpool.cpp -O0 (separate; once per program)" -O0 $sep "$repo/src/procpool.cpp"
row "src/procpool.cpp -O2 (separate; once per program)" -O2 $sep "$repo/src/procpool.cpp"
