#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Runs a Windows program under wine: the CMake toolchain's CMAKE_CROSSCOMPILING_EMULATOR and the Meson cross
# file's exe_wrapper (cmake/toolchains/mingw-w64-x86_64.cmake, cross/mingw-w64-x86_64.ini).
#   scripts/wine-exec.sh program.exe [args...]
#   scripts/wine-exec.sh --start-server    creates the prefix if needed, starts a persistent wineserver for it and
#                                          wine's own services (scripts/test.sh's wine stage, before ctest)
#   scripts/wine-exec.sh --stop-server     stops that wineserver and everything running in the prefix
# The wine prefix is always explicit (wine would otherwise create ~/.wine):
#   $PROCPOOL_WINEPREFIX when set (scripts/test.sh's wine stage: build/wine/prefix; required by the server modes),
#   else <build dir>/wine-prefix, the build dir being the nearest folder above the program that holds
#   CMakeCache.txt or meson-private.
# A missing prefix is created first (wineboot, ~8 s, under a lock so that parallel tests create it once).
# WINEDEBUG defaults to -all. Exit status: the program's (wine passes it through, modulo 256).
#
# Why a server: without a running wineserver, the first wine process of each test starts one, and wine's services
# with it; they inherit the test's output pipe, so ctest waits for them (~2.4 s per test) after the test is done.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 program.exe [args...] | --start-server | --stop-server" >&2
    exit 2
fi

prefix=${PROCPOOL_WINEPREFIX:-}
if [[ -z $prefix && $1 == --*-server ]]; then
    echo "wine-exec.sh: $1 needs PROCPOOL_WINEPREFIX" >&2
    exit 2
fi
if [[ -z $prefix ]]; then
    dir=$(cd "$(dirname "$1")" && pwd)
    while [[ $dir != / ]]; do
        if [[ -f $dir/CMakeCache.txt || -d $dir/meson-private ]]; then
            prefix=$dir/wine-prefix
            break
        fi
        dir=$(dirname "$dir")
    done
fi
if [[ -z $prefix ]]; then
    echo "wine-exec.sh: $1 is not inside a CMake or Meson build tree; set PROCPOOL_WINEPREFIX" >&2
    exit 2
fi
case $prefix in /*) ;; *) prefix=$PWD/$prefix ;; esac
export WINEPREFIX=$prefix
export WINEDEBUG=${WINEDEBUG:--all}

# wine64 directly: Debian's `wine` wrapper warns about the missing 32-bit wine on every run.
if command -v wine64 >/dev/null 2>&1; then
    wine=(wine64)
elif [[ -x /usr/lib/wine/wine64 ]]; then
    wine=(/usr/lib/wine/wine64)
elif command -v wine >/dev/null 2>&1; then
    wine=(wine)
else
    echo "wine-exec.sh: wine is not installed (Debian: apt-get install wine wine64)" >&2
    exit 127
fi
if command -v wineserver >/dev/null 2>&1; then
    wineserver=(wineserver)
else
    wineserver=(/usr/lib/wine/wineserver)
fi

# Creates the prefix if it is missing. .procpool-ready marks one whose creation finished.
ensure_prefix() {
    [[ -f $prefix/.procpool-ready ]] && return 0
    mkdir -p "$prefix"
    (
        flock 9
        if [[ ! -f $prefix/.procpool-ready ]]; then
            # No Mono or Gecko installers (they would ask, or download): nothing here needs .NET or a browser.
            if ! WINEDLLOVERRIDES="mscoree,mshtml=" "${wine[@]}" wineboot -i >>"$prefix.log" 2>&1 ||
                [[ ! -d $prefix/drive_c ]]; then
                echo "wine-exec.sh: could not create the wine prefix $prefix (log: $prefix.log)" >&2
                exit 1
            fi
            touch "$prefix/.procpool-ready"
        fi
    ) 9>"$prefix.lock"
}

# Stops this prefix's wineserver, then ends, by pid, the wine processes of this prefix that outlived it: when a
# wineserver crashes (wine 8 does, now and then, under parallel tests), its services and workers stay behind.
stop_server() {
    "${wineserver[@]}" -k >/dev/null 2>&1 || true
    "${wineserver[@]}" -w >/dev/null 2>&1 || true
    local env pid
    for env in /proc/[0-9]*/environ; do
        pid=${env#/proc/}
        pid=${pid%/environ}
        [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */wine/wine* ]] || continue
        if tr '\0' '\n' <"$env" 2>/dev/null | grep -qxF "WINEPREFIX=$prefix"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

case $1 in
--start-server)
    mkdir -p "$prefix"
    # A wineserver lingering from earlier runs in this prefix is not persistent: replace it.
    stop_server
    "${wineserver[@]}" -p >>"$prefix.log" 2>&1
    # Start wine's services now, with output to the log, rather than inside the first test (creating the prefix
    # starts them too).
    if [[ -f $prefix/.procpool-ready ]]; then
        "${wine[@]}" wineboot >>"$prefix.log" 2>&1 || true
    else
        ensure_prefix
    fi
    exit 0
    ;;
--stop-server)
    stop_server
    exit 0
    ;;
esac

ensure_prefix
exec "${wine[@]}" "$@"
