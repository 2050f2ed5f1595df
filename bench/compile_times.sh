#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Compile time, the cost every user pays in every translation unit that includes procpool. Best of N runs of:
#   std      a file that includes the standard headers a typical source file already has (the baseline)
#   include  a file that only includes <procpool/procpool.hpp>
#   quick0   examples/quickstart.cpp at -O0
#   quick2   examples/quickstart.cpp at -O2
# each header-only (the default) and with PROCPOOL_SEPARATE_COMPILATION (separate), plus src/procpool.cpp, the one
# file that separate mode compiles once per program; and each as a ratio to `std`, whose compiles alternate with the
# row's own (compare ratios, not seconds: the machine's speed varies). Times are the compiler's CPU time (user + system), which a
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

# cpu <args...>: the CPU time of one compile, in seconds.
cpu() {
    local s TIMEFORMAT='%U %S'
    s=$({ time "$cxx" -std=c++20 -I"$repo/include" -c -o "$tmp/out.o" "$@" 2>"$tmp/err"; } 2>&1) ||
        { cat "$tmp/err" >&2; exit 1; }
    awk -v t="$s" 'BEGIN { split(t, a, " "); print a[1] + a[2] }'
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a < b) ? a : b }'; }

sep=-DPROCPOOL_SEPARATE_COMPILATION
# Each row alternates its compiles with the baseline's and divides the least of each: this machine's speed drifts
# over minutes, and a baseline measured once at the start would move every later ratio with it.
std_all=""
echo "compile times with $cxx, least of $runs, each row alternated with the baseline ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')):"
row() { # <label> <compiler args...>
    local label=$1 t="" b="" i
    shift
    for ((i = 0; i < runs; ++i)); do
        b=$(min "$(cpu -O0 "$tmp/std.cpp")" "$b")
        t=$(min "$(cpu "$@")" "$t")
    done
    std_all=$(min "$b" "$std_all")
    printf '  %-52s %6.2f s  %5.2fx  (baseline %.2f s)\n' "$label" "$t" "$(awk -v a="$t" -v b="$b" 'BEGIN { print a / b }')" "$b"
}
row "#include <procpool/procpool.hpp> only, header-only" -O0 "$tmp/include.cpp"
row "#include <procpool/procpool.hpp> only, separate" -O0 $sep "$tmp/include.cpp"
row "examples/quickstart.cpp -O0, header-only" -O0 "$repo/examples/quickstart.cpp"
row "examples/quickstart.cpp -O0, separate" -O0 $sep "$repo/examples/quickstart.cpp"
row "examples/quickstart.cpp -O2, header-only" -O2 "$repo/examples/quickstart.cpp"
row "examples/quickstart.cpp -O2, separate" -O2 $sep "$repo/examples/quickstart.cpp"
row "src/procpool.cpp -O0 (separate; once per program)" -O0 $sep "$repo/src/procpool.cpp"
row "src/procpool.cpp -O2 (separate; once per program)" -O2 $sep "$repo/src/procpool.cpp"
printf '  %-52s %6.2f s\n' "typical standard headers -O0 (baseline), least" "$std_all"
