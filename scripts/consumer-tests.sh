#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Consumer tests (STYLE.md §7): builds tests/consumers/* against procpool the ways users get it.
#   scripts/consumer-tests.sh <cmake-build-dir>
# The build dir is configured here if it is not yet (tests and examples off). Work and logs go to
# <build-dir>/consumer-tests/. Prints one PASS/FAIL line per consumer; exits non-zero if any failed.
# Honours CXX (compiler of the consumers, default c++) and CMAKE_GENERATOR (default Ninja if available).
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 <cmake-build-dir>" >&2
    exit 2
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$1"
build=$(cd "$1" && pwd)
work="$build/consumer-tests"
consumers="$repo/tests/consumers"
cxx=${CXX:-c++}
if [[ -z ${CMAKE_GENERATOR:-} ]] && command -v ninja >/dev/null; then
    export CMAKE_GENERATOR=Ninja
fi
header_version() { # the header is the one source of the version
    local part out=""
    for part in MAJOR MINOR PATCH; do
        out+=$(sed -nE "s/^#[[:space:]]*define[[:space:]]+PROCPOOL_VERSION_${part}[[:space:]]+([0-9]+).*/\1/p" \
            "$repo/include/procpool/config.hpp").
    done
    echo "${out%.}"
}
expected=$(header_version)

rm -rf "$work"
mkdir -p "$work"
failed=0
ran=0

# run <name> <command...>: runs the command with output to $work/<name>.log and prints PASS or FAIL.
run() {
    local name=$1
    shift
    local log="$work/$name.log"
    ran=$((ran + 1))
    if ("$@") >"$log" 2>&1; then
        echo "PASS $name"
    else
        echo "FAIL $name (log: $log)"
        tail -n 25 "$log" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

# check_output <exe>: the consumer must run and print the header's version.
check_output() {
    local out
    out=$("$1") || return 1
    echo "$out"
    [[ $out == "procpool $expected" ]] || { echo "expected 'procpool $expected', got '$out'"; return 1; }
}

# --- install into a staging prefix, then move it: the installed package must be relocatable ----------------
prepare() {
    if [[ ! -f $build/CMakeCache.txt ]]; then
        cmake -S "$repo" -B "$build" -DPROCPOOL_BUILD_TESTS=OFF -DPROCPOOL_BUILD_EXAMPLES=OFF || return 1
    fi
    cmake --install "$build" --prefix "$work/stage" || return 1
    mv "$work/stage" "$work/prefix" || return 1
    test -f "$work/prefix/include/procpool/config.hpp" || return 1
    test -f "$work/prefix/share/cmake/procpool/procpoolConfig.cmake" || return 1
    test -f "$work/prefix/share/pkgconfig/procpool.pc" || return 1
    # The source archive users would get: the files git tracks or would track (falls back to a plain copy).
    local list="$work/files.txt"
    if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$repo" ls-files -z --cached --others --exclude-standard >"$list" || return 1
        (cd "$repo" && tar --null -T "$list" --transform 's,^,procpool/,' -czf "$work/procpool-src.tar.gz") || return 1
    else
        (cd "$repo/.." && tar --exclude=procpool/build --exclude=.git -czf "$work/procpool-src.tar.gz" \
            --transform "s,^$(basename "$repo"),procpool," "$(basename "$repo")") || return 1
    fi
}
run install prepare
if [[ $failed -ne 0 ]]; then
    echo "consumer tests: installation failed; nothing else runs"
    exit 1
fi

cmake_consumer() { # <source> <binary> <cmake args...>
    local src=$1 bin=$2
    shift 2
    cmake -S "$src" -B "$bin" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug "$@" &&
        cmake --build "$bin" -j2 &&
        check_output "$bin/consumer"
}

# (a) find_package from the installed (and moved) prefix, with an exact version request.
run find_package cmake_consumer "$consumers/find_package" "$work/find_package" \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DPROCPOOL_EXPECTED_VERSION="$expected" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON

# (a') find_package from the build tree, through export(EXPORT ...).
run find_package_build_tree cmake_consumer "$consumers/find_package" "$work/find_package_build_tree" \
    -Dprocpool_DIR="$build" -DPROCPOOL_EXPECTED_VERSION="$expected"

# (b) add_subdirectory of the source tree, and FetchContent of the source archive.
run add_subdirectory cmake_consumer "$consumers/add_subdirectory" "$work/add_subdirectory" \
    -DPROCPOOL_SOURCE_DIR="$repo"
run fetchcontent cmake_consumer "$consumers/add_subdirectory" "$work/fetchcontent" \
    -DPROCPOOL_URL="file://$work/procpool-src.tar.gz"

# (c) pkg-config, from the moved prefix only.
pkg_config_consumer() {
    export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" PKG_CONFIG_LIBDIR="$work/prefix/share/pkgconfig"
    local version cflags libs
    version=$(pkg-config --modversion procpool) || return 1
    [[ $version == "$expected" ]] || { echo "pkg-config says $version, expected $expected"; return 1; }
    cflags=$(pkg-config --cflags procpool) || return 1
    libs=$(pkg-config --libs procpool) || return 1
    echo "cflags: $cflags"
    echo "libs: $libs"
    mkdir -p "$work/pkg_config"
    # shellcheck disable=SC2086 # word splitting of the flags is intended
    "$cxx" -std=c++20 $cflags "$consumers/pkg_config/main.cpp" $libs -o "$work/pkg_config/consumer" &&
        check_output "$work/pkg_config/consumer"
}
run pkg_config pkg_config_consumer

# (d) Meson: dependency('procpool') from subprojects/procpool (the source archive, unpacked).
meson_consumer() {
    local src="$work/meson_subproject"
    cp -r "$consumers/meson_subproject" "$src" || return 1
    mkdir -p "$src/subprojects" && tar -xzf "$work/procpool-src.tar.gz" -C "$src/subprojects" || return 1
    CXX="$cxx" meson setup "$src/build" "$src" --force-fallback-for=procpool &&
        meson compile -C "$src/build" -j 2 &&
        check_output "$src/build/consumer"
}
run meson_subproject meson_consumer

# (e) Separate compilation (PROCPOOL_SEPARATE_COMPILATION): two files use a pool, the engine is compiled once.
# CMake: procpool::compiled from the installed package; Meson: procpool_compiled_dep; pkg-config: the documented
# recipe (the macro, and one file that includes <procpool/src.hpp>).
run find_package_compiled cmake_consumer "$consumers/find_package" "$work/find_package_compiled" \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON -DPROCPOOL_CONSUMER_COMPILED=ON
pkg_config_compiled_consumer() {
    export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" PKG_CONFIG_LIBDIR="$work/prefix/share/pkgconfig"
    local cflags libs out="$work/pkg_config_compiled" f
    cflags="$(pkg-config --cflags procpool) -DPROCPOOL_SEPARATE_COMPILATION" || return 1
    libs=$(pkg-config --libs procpool) || return 1
    mkdir -p "$out" && printf '#include <procpool/src.hpp>\n' >"$out/procpool_src.cpp" || return 1
    for f in "$consumers/find_package/main.cpp" "$consumers/find_package/second.cpp" "$out/procpool_src.cpp"; do
        # shellcheck disable=SC2086 # word splitting of the flags is intended
        "$cxx" -std=c++20 $cflags -DCONSUMER_SEPARATE=1 -c "$f" -o "$out/$(basename "$f" .cpp).o" || return 1
    done
    # shellcheck disable=SC2086
    "$cxx" "$out"/*.o $libs -o "$out/consumer" && check_output "$out/consumer"
}
run pkg_config_compiled pkg_config_compiled_consumer
meson_compiled_consumer() {
    local src="$work/meson_compiled"
    cp -r "$consumers/meson_compiled" "$src" || return 1
    cp "$consumers/find_package/main.cpp" "$consumers/find_package/second.cpp" "$src/" || return 1
    mkdir -p "$src/subprojects" && tar -xzf "$work/procpool-src.tar.gz" -C "$src/subprojects" || return 1
    CXX="$cxx" meson setup "$src/build" "$src" --force-fallback-for=procpool,procpool_compiled &&
        meson compile -C "$src/build" -j 2 &&
        check_output "$src/build/consumer"
}
run meson_compiled meson_compiled_consumer

echo "consumer tests: $((ran - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
