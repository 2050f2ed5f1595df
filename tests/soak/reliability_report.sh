#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Runs the reliability suite (tests/reliability_test.cpp) with PROCPOOL_RELIABILITY_REPORT set, and writes
# docs/reliability.md from the figures the tests themselves recorded. Fails, and leaves the document alone, when a
# test fails.
#
#   bash tests/soak/reliability_report.sh [build-dir] [output]      (defaults: build/gcc docs/reliability.md)
#   PROCPOOL_SOAK_TASKS=1000000 bash tests/soak/reliability_report.sh   # with the long soak
#
# PROCPOOL_SOAK_TASKS (default 20000) and PROCPOOL_SOAK_SEED are passed to the tests and recorded in the document.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
build=${1:-build/gcc}
out=${2:-docs/reliability.md}
exe=$build/tests/procpool_tests
[[ -x $exe ]] || { echo "reliability_report.sh: $exe not found; build it first:" \
    "cmake --build $build --target procpool_tests" >&2; exit 2; }

raw=$(mktemp)
log=$(mktemp)
trap 'rm -f "$raw" "$log"' EXIT

env_part=""
[[ -n ${PROCPOOL_SOAK_TASKS:-} ]] && env_part+="PROCPOOL_SOAK_TASKS=$PROCPOOL_SOAK_TASKS "
[[ -n ${PROCPOOL_SOAK_SEED:-} ]] && env_part+="PROCPOOL_SOAK_SEED=$PROCPOOL_SOAK_SEED "
command="PROCPOOL_RELIABILITY_REPORT=<file> $env_part$exe \"[reliability],[lifetime]\""
echo "running: $command" >&2
start=$(date +%s)
if ! PROCPOOL_RELIABILITY_REPORT=$raw "$exe" "[reliability],[lifetime]" >"$log" 2>&1; then
    cat "$log" >&2
    echo "reliability_report.sh: the suite failed; $out was not written" >&2
    exit 1
fi
elapsed=$(( $(date +%s) - start ))
summary=$(grep -E '^(All tests passed|test cases:)' "$log" | tail -1)

compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" | head -1)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" | head -1)
flags=$(sed -n 's/^CMAKE_CXX_FLAGS:[A-Z]*=//p' "$build/CMakeCache.txt" | head -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- include tests 2>/dev/null || commit+=" + uncommitted changes"

# Prints the rows of one section (tab-separated: section, header, row) as a markdown table.
table() {
    awk -F'\t' -v want="$1" '
        $1 == want {
            if (!done) {
                print $2
                n = split($2, cols, "|")
                sep = "|"
                for (i = 2; i < n; ++i) sep = sep "---|"
                print sep
                done = 1
            }
            print $3
        }' "$raw"
}

{
cat <<EOF
# Reliability

What a pool does when its workers crash, hang, grow, send garbage or lose their parent, measured by the test suite
itself: every figure below was recorded by \`tests/reliability_test.cpp\` during one run, and this file was
generated from them by \`tests/soak/reliability_report.sh\`. Nothing here is typed by hand.

- **Command:** \`$command\`
  (through \`${env_part}bash tests/soak/reliability_report.sh $build\`, which sets the report file)
- **Result:** $summary, in ${elapsed} s
- **Build:** $compiler, $build_type${flags:+, CXXFLAGS \`$flags\`}; commit $commit
- **Machine:** $(uname -sr), $(nproc) CPUs; $(date -u +%Y-%m-%d)

The tests synchronise through results, gates and pipes, never through sleeps, and assert no timing: times are
printed and recorded, never compared. The only clock-driven behaviour is the pool's own task timeout, on tasks that
block forever while every other task has no limit or a generous one. In every row, *tasks lost* (submitted, never
run) and *duplicates* (run more than once) are counted from an execution log the tasks append to, and must be 0;
descriptors (\`/proc/self/fd\`) and processes (descendants of the test process) are counted before the pool is
constructed and after it is gone, and must match.

## Crash matrix

Each fault is injected once into a pool of one worker, with four tasks queued behind it (the first one already
sent ahead to the same worker) and a batch of sixteen after it. The faulty task must fail with
\`procpool::worker_died\` carrying its task name, the worker's pid and its exit code or signal; \`on_worker_lost\`
must report the same; the follow-up tasks must all complete, once, in a replacement. Crash tasks first restore the
signal dispositions the program started with (a fork worker inherits Catch2's fatal-signal handlers). Under
AddressSanitizer a SIGSEGV (a stack overflow among them) is reported by the sanitizer, and the worker exits with
code 1: the tests accept that in sanitizer builds only.

$(table "crash matrix")

A crash in the initializer is a \`start_error\`, not an \`initializer_error\`: \`initializer_error\` carries the
exception an initializer threw, which the worker sends back; a crash leaves no exception, only the exit status of a
worker that died before it was ready, and as every worker runs the same initializer the pool cannot start.

## Timeouts, retries, on_worker_lost, memory limit, corrupt frames

$(table "faults")

A frame header holds a 32-bit length and \`PROCPOOL_MAX_FRAME_BYTES\` is 4 GiB by default, so no header can exceed
the limit: a worker that writes a header claiming 4 GiB − 1 and then stops is indistinguishable from one sending a
large result slowly. The pool waits for the bytes without allocating what the header claims (the parent's growth is
in the row), until the task's timeout. Built with a lower \`PROCPOOL_MAX_FRAME_BYTES\`, the same header is a
\`protocol_error\` at once (the test expects whichever applies).

## Chaos soak

Per 1000 tasks, drawn from a seeded \`std::mt19937_64\` (its raw output is specified by the standard, so the plan is
the same with every standard library): 10 crash their worker (SIGKILL, \`abort()\`, \`_exit(3)\` or SIGSEGV, evenly),
1 blocks until its 50 ms \`submit_with\` timeout, 10 throw \`std::out_of_range\`, the rest return a value. Every
future must resolve exactly once with the planned value or error: the counts of each outcome must equal the plan
exactly (shown as planned / seen), with no wrong outcome, no task lost, no duplicate, and one \`on_worker_lost\`
call per death.

$(table "soak")

The CI size is 20,000 tasks per start method. The long run is

    PROCPOOL_SOAK_TASKS=1000000 build/gcc/tests/procpool_tests "[soak]"

(\`PROCPOOL_SOAK_SEED\` changes the plan; add \`PROCPOOL_RELIABILITY_REPORT=<file>\` to record the figures, or run
\`PROCPOOL_SOAK_TASKS=1000000 bash tests/soak/reliability_report.sh\` to regenerate this file from such a run).

## Descriptors across recycling

A fork pool with \`max_tasks_per_worker = 1\` runs 1000 tasks, each in a fresh worker (each task checks that it is
its worker's first). The descriptor count is sampled after every task. With the pool up it holds the wake pipe,
the template's channel and one channel per worker, plus, for a moment, those of retiring workers not yet seen to
close and of replacements starting (how many depends on scheduling): the peak must stay within 16 of the count with
the pool, which a leak of one descriptor per recycle would pass after 16 recycles; the count after the pool must
equal the count before.

$(table "recycle")

## Parent killed with SIGKILL

The test forks a plain child, which starts a pool of two workers (one of them busy in a task that never returns),
sends the pids of every process below it, and blocks. The test SIGKILLs the child, reaps it, and polls
\`/proc/<pid>/stat\` until every one of those processes is gone or a zombie (5 s hard limit). The application's
own children (spawned workers, the fork template, the forkserver) hold a lifeline: a pipe whose write end only the
application holds, whose closing kills them (\`F_SETSIG\` SIGKILL); workers forked by the single-threaded template
or forkserver are bound to it with \`PR_SET_PDEATHSIG\`.

$(table "parent death")

## The way applications use a pool

\`tests/lifetime_test.cpp\`: threads that come and go, \`fork()\` of the application, the terminal's signals,
process and descriptor limits, a callback that throws, workers that die while nothing drives the pool. The process
limit rows need root (the test switches to an unprivileged user, as root ignores \`RLIMIT_NPROC\`). A pool in a
namespace-scope static destroyed after \`main\` (and in a forked child that exits) is \`tests/global_pool.cpp\`,
one ctest per start method.

$(table "lifetime")

## Fuzzing

| target | executions | crashes | notes |
|---|---|---|---|
| frame and codec fuzzers (\`fuzz/\`) | see docs/security.md / fuzz section | see docs/security.md / fuzz section | figures added by the fuzzing work, not by this suite |
EOF
} >"$out"
echo "wrote $out" >&2
