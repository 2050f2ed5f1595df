#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Installs the build dependencies that are missing (Debian/Ubuntu, apt-get). Quiet when nothing is missing.
#   scripts/ensure-deps.sh          what building, the tests and the examples need
#   scripts/ensure-deps.sh --ci     also clang-14 with libc++ and libFuzzer (scripts/test.sh's clang and fuzz stages),
#                                   and what --wine installs
#   scripts/ensure-deps.sh --wine   also the mingw-w64 cross compiler and wine (the wine stage: docs/windows.md)
#   scripts/ensure-deps.sh --mpi    also Open MPI (scripts/test.sh's mpi stage: procpool/mpi.hpp, docs/mpi.md)
#   scripts/ensure-deps.sh --docs   also doxygen (scripts/test.sh's docs stage: the API reference)
#   scripts/ensure-deps.sh --quick  only what examples/quickstart.cpp needs (scripts/quickstart.sh): no Catch2, no Meson
# As root (or with password-less sudo) it runs apt-get; otherwise it prints the command to run and exits 1.
# Boost: any installed Boost >= 1.75 is accepted. Do NOT install libboost-dev next to libboost1.81-dev: they conflict.
set -euo pipefail

required=(g++ cmake ninja-build pkg-config libboost1.81-dev catch2 meson)
optional=(clang-14 libc++-14-dev libc++abi-14-dev libclang-rt-14-dev libcereal-dev libasio-dev libboost-serialization1.81-dev)
# Debian 12's wine package is 32- and 64-bit in one name; wine64 alone runs the 64-bit tests.
wine=(g++-mingw-w64-x86-64-posix wine wine64)
docs=(doxygen)
mpi=(openmpi-bin libopenmpi-dev)
quick=(g++ cmake ninja-build libboost1.81-dev)

base=("${required[@]}")
extra=()
quick_only=0
for arg in "$@"; do
    case $arg in
        --ci) extra+=("${optional[@]}" "${wine[@]}") ;;
        --wine) extra+=("${wine[@]}") ;;
        --docs) extra+=("${docs[@]}") ;;
        --mpi) extra+=("${mpi[@]}") ;;
        --quick) base=("${quick[@]}"); quick_only=1 ;;
        *) echo "usage: $0 [--ci] [--wine] [--docs] [--mpi] [--quick]" >&2; exit 2 ;;
    esac
done
want=("${base[@]}" "${extra[@]}")

# Boost headers >= 1.75 from any package (or a source install): nothing to do for Boost.
boost_ok() {
    local header
    for header in /usr/include/boost/version.hpp /usr/local/include/boost/version.hpp; do
        if [[ -f $header ]]; then
            local v
            v=$(sed -nE 's/^#define BOOST_VERSION ([0-9]+).*/\1/p' "$header")
            if [[ -n $v && $v -ge 107500 ]]; then return 0; fi
        fi
    done
    return 1
}

installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    # Not Debian: check for the tools only, and say what is needed.
    miss=()
    tools=(c++ cmake ninja pkg-config meson)
    [[ $quick_only -eq 1 ]] && tools=(c++ cmake ninja)
    for tool in "${tools[@]}"; do command -v "$tool" >/dev/null || miss+=("$tool"); done
    boost_ok || miss+=("Boost>=1.75 headers")
    [[ $quick_only -eq 1 ]] || [[ -f /usr/include/catch2/catch.hpp || -f /usr/include/catch2/catch_all.hpp ||
       -f /usr/local/include/catch2/catch.hpp || -f /usr/local/include/catch2/catch_all.hpp ]] || miss+=("Catch2")
    if [[ ${#miss[@]} -gt 0 ]]; then
        echo "ensure-deps: no apt-get here; please install: ${miss[*]} (and CMake >= 3.25, a C++20 compiler)" >&2
        exit 1
    fi
    exit 0
fi

missing=()
for pkg in "${want[@]}"; do
    if [[ $pkg == libboost*-dev ]] && boost_ok; then continue; fi
    installed "$pkg" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "ensure-deps: missing packages: ${missing[*]}" >&2
    echo "ensure-deps: install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "ensure-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "ensure-deps: done" >&2
