#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The whole test suite, as CI runs it (.ci/run calls this). Stages:
#   gcc        g++-12, Debug, -Werror: unit tests, examples, header tests, compile-fail tests   (build/gcc)
#   clang      clang++-14 with libc++, RelWithDebInfo, -Werror: the same; the examples in separate-compilation
#              mode (PROCPOOL_SEPARATE_COMPILATION, procpool::compiled)                         (build/clang)
#   asan       g++-12 with -fsanitize=address,undefined -fno-sanitize-recover=all: unit tests, examples (build/asan)
#   tsan       g++-12 with -fsanitize=thread: the [threads] and [lifetime] cases (not the process-limit ones: the
#              sanitizer's own threads count), one pool driven from several threads under every start method (build/tsan)
#   meson      Meson build of the unit tests and examples, meson test                          (build/meson)
#   consumers  scripts/consumer-tests.sh: find_package, add_subdirectory, FetchContent, pkg-config, Meson subproject,
#              and find_package, pkg-config and Meson in separate-compilation mode
#   fuzz       each fuzz/*.cpp under libFuzzer, 45 s in total (clang)                           (build/fuzz)
#   version    the versions of config.hpp, CMake, Meson and both .pc files agree               (build/version*)
#   wine       the Windows build: mingw-w64 cross compiler, CMake toolchain file: unit tests and examples run under
#              wine; Meson cross file: the examples built, two run; [posix] test cases are not run there (docs/windows.md)   (build/wine)
#   docs       Doxygen reference from the public headers, warnings are errors; relative links in the docs resolve
#   mpi        procpool/mpi.hpp: tests/mpi under mpirun -n 3 (shared memory, then --mca btl tcp,self), a node agent
#              killed (--enable-recovery), a mismatched binary refused, the dynamic mode from a singleton (build/mpi)
#   package    the .deb built with CPack, installed with dpkg -i, consumed by find_package and pkg-config, removed;
#              the vcpkg port's install steps, the Conan recipe and the Meson wrap checked as far as this machine can
# Run a subset with PROCPOOL_STAGES="gcc asan" (or as arguments: scripts/test.sh gcc asan).
# PROCPOOL_JOBS (default 2) sets the parallelism of builds and ctest. Logs: build/logs/<stage>.log.
# Prints "stage <name>: ok (N s)" or "stage <name>: FAILED (N s)" per stage, then "N passed, N failed".
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1

all_stages="gcc clang asan tsan meson consumers fuzz version wine docs mpi package"
if [[ $# -gt 0 ]]; then
    stages="$*"
else
    stages=${PROCPOOL_STAGES:-$all_stages}
fi
for stage in $stages; do
    if [[ " $all_stages " != *" $stage "* ]]; then
        echo "test.sh: unknown stage '$stage' (stages: $all_stages)" >&2
        exit 2
    fi
done
jobs=${PROCPOOL_JOBS:-2}
export CMAKE_GENERATOR=${CMAKE_GENERATOR:-Ninja}
export CTEST_OUTPUT_ON_FAILURE=1

deps_args=()
[[ " $stages " == *" clang "* || " $stages " == *" fuzz "* ]] && deps_args+=(--ci)
[[ " $stages " == *" wine "* ]] && deps_args+=(--wine)
[[ " $stages " == *" mpi "* ]] && deps_args+=(--mpi)
bash scripts/ensure-deps.sh "${deps_args[@]}" || exit 1

# cmake_stage <build dir> <cmake args...>: configure, build everything, run ctest.
cmake_stage() {
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" &&
        cmake --build "$dir" -j "$jobs" &&
        ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 900
}

stage_gcc() {
    cmake_stage build/gcc -DCMAKE_CXX_COMPILER=g++-12 -DCMAKE_BUILD_TYPE=Debug
}

stage_clang() {
    cmake_stage build/clang -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS=-stdlib=libc++ -DCMAKE_EXE_LINKER_FLAGS=-stdlib=libc++ -DPROCPOOL_EXAMPLES_SEPARATE=ON
}

stage_asan() {
    local san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    # Warnings are the gcc and clang stages' business: sanitizers make g++ warn spuriously (std::regex, -O1).
    # -O0 (Debug): g++ compiles a sanitized Catch2 v2 main.cpp in ~70 s at -O0 but ~260 s at -O1.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_init_order=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    cmake_stage build/asan -DCMAKE_CXX_COMPILER=g++-12 -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_CXX_FLAGS="$san -Wno-maybe-uninitialized" -DCMAKE_EXE_LINKER_FLAGS="$san" -DPROCPOOL_WERROR=OFF \
        -DPROCPOOL_BUILD_HEADER_TESTS=OFF -DPROCPOOL_BUILD_COMPILE_FAIL_TESTS=OFF -DPROCPOOL_BUILD_BENCH=OFF \
        -DPROCPOOL_MPI=OFF # MPI_Init's own allocations would fail LeakSanitizer: the mpi stage covers MPI
}

# ThreadSanitizer: g++-12 with libstdc++, whose templates are instrumented as they are compiled (clang 14 cannot
# compile libstdc++ 12's <ranges>, and its libc++ is not instrumented). Debug: g++ compiles sanitized code at -O0
# several times faster. Only the test executable is built; the cases that drive a pool from several threads run
# (halt_on_error: the first report fails the stage).
stage_tsan() {
    local san="-fsanitize=thread -fno-omit-frame-pointer"
    cmake -S . -B build/tsan -DCMAKE_CXX_COMPILER=g++-12 -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san" \
        -DPROCPOOL_WERROR=OFF -DPROCPOOL_BUILD_HEADER_TESTS=OFF -DPROCPOOL_BUILD_COMPILE_FAIL_TESTS=OFF \
        -DPROCPOOL_BUILD_BENCH=OFF -DPROCPOOL_BUILD_EXAMPLES=OFF -DPROCPOOL_CATCH_DISCOVER=OFF &&
        cmake --build build/tsan -j "$jobs" --target procpool_tests &&
        TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
            build/tsan/tests/procpool_tests "[threads],[lifetime]~[limits]" &&
        echo "tsan: ThreadSanitizer reported nothing for the [threads] and [lifetime] cases"
}

stage_meson() {
    if [[ -f build/meson/build.ninja ]]; then
        meson setup --reconfigure build/meson || return 1 # picks up new test files
    else
        CXX=${CXX:-g++-12} meson setup build/meson --buildtype=debug || return 1
    fi
    meson compile -C build/meson -j "$jobs" &&
        meson test -C build/meson --num-processes "$jobs" --print-errorlogs
}

stage_consumers() {
    if [[ ! -f build/gcc/CMakeCache.txt ]]; then
        cmake -S . -B build/gcc -DCMAKE_CXX_COMPILER=g++-12 -DCMAKE_BUILD_TYPE=Debug || return 1
    fi
    CXX=${CXX:-g++-12} bash scripts/consumer-tests.sh build/gcc
}

fuzz_targets() {
    local f n=0
    for f in fuzz/*.cpp; do [[ -f $f ]] && n=$((n + 1)); done
    echo "$n"
}

stage_fuzz() {
    local n seconds
    n=$(fuzz_targets)
    seconds=$((45 / n)) # 45 s shared by the targets (at most 60 s in all: at least 5 s each up to 12 targets)
    [[ $seconds -lt 5 ]] && seconds=5
    cmake -S . -B build/fuzz -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DPROCPOOL_BUILD_FUZZ=ON -DPROCPOOL_BUILD_TESTS=OFF -DPROCPOOL_BUILD_EXAMPLES=OFF -DPROCPOOL_INSTALL=OFF \
        -DPROCPOOL_FUZZ_SECONDS="$seconds" &&
        cmake --build build/fuzz -j "$jobs" &&
        ctest --test-dir build/fuzz -L fuzz --output-on-failure -j 1   # fuzzers are CPU bound: one at a time
}

# The Windows build, run under wine: one prefix (build/wine/prefix) and one persistent wineserver for the CMake and
# the Meson builds, stopped at the end. No build type: -O0 without -g, the quickest to build (and a -g build loses
# exceptions under wine: docs/windows.md). The tests run one at a time (~30 s): with two test processes at once,
# wine 8's wineserver crashed now and then, and every process start failed after that.
stage_wine() {
    if [[ ! -f include/procpool/platform/windows.hpp ]]; then
        echo "!!! stage wine SKIPPED: include/procpool/platform/windows.hpp does not exist (no Windows backend yet)"
        return 0
    fi
    export PROCPOOL_WINEPREFIX=$repo/build/wine/prefix
    local t0=$SECONDS rc=0
    mkdir -p build/wine
    rm -f "$PROCPOOL_WINEPREFIX.log" # wine's messages of this stage only
    scripts/wine-exec.sh --start-server || return 1
    trap 'scripts/wine-exec.sh --stop-server' EXIT
    echo "wine: prefix and wineserver ready in $((SECONDS - t0)) s ($PROCPOOL_WINEPREFIX)"

    cmake -S . -B build/wine/cmake -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake \
        -DCMAKE_BUILD_TYPE= -DPROCPOOL_BUILD_BENCH=OFF -DPROCPOOL_BUILD_COMPILE_FAIL_TESTS=OFF -DPROCPOOL_INSTALL=OFF &&
        cmake --build build/wine/cmake -j "$jobs" &&
        wine_retry ctest --test-dir build/wine/cmake --output-on-failure -j 1 --timeout 900 || rc=1

    # The Meson cross build proves the cross file and meson.build's Windows branches: the examples, two of them run
    # (the unit tests ran above; building them twice with mingw was a third of this stage).
    printf "[constants]\nprocpool_root = '%s'\n" "$repo" >build/wine/procpool-root.ini
    if [[ -f build/wine/meson/build.ninja ]]; then
        meson setup --reconfigure build/wine/meson || rc=1
    else
        meson setup build/wine/meson --cross-file build/wine/procpool-root.ini \
            --cross-file cross/mingw-w64-x86_64.ini --buildtype=plain -Dtests=false || rc=1
    fi
    meson compile -C build/wine/meson -j "$jobs" &&
        wine_retry meson test -C build/wine/meson --num-processes 1 --print-errorlogs example.quickstart \
            example.plugins || rc=1

    if grep -q "wineserver crashed" "$PROCPOOL_WINEPREFIX.log" 2>/dev/null; then
        echo "wine: the wineserver crashed during this stage (see $PROCPOOL_WINEPREFIX.log): failures after that" \
            "are wine's, not the tests'"
    fi
    scripts/wine-exec.sh --stop-server
    trap - EXIT
    wine_summary
    return $rc
}

# wine_retry <test command...>: runs it, and once more if it fails, saying so. Under wine 8, CreateProcessW of a
# worker fails now and then with ERROR_INTERNAL_ERROR ("Internal error"; docs/windows.md), about once in five runs
# of the suite; a second failure is a real one.
wine_retry() {
    "$@" && return 0
    local failed=build/wine/cmake/Testing/Temporary/LastTestsFailed.log
    if [[ $1 == ctest && -f $failed ]]; then
        echo "wine: RETRY: these tests failed and run once more: $(cut -d: -f2- "$failed" | paste -sd ';')"
        "$@" --rerun-failed
    else
        echo "wine: RETRY: '$*' failed and runs once more"
        "$@"
    fi
}

# "N run under wine, M POSIX-only not run", from ctest's lists of the CMake build (one test per Catch test case).
wine_summary() {
    local count='s/^Total Tests: //p' all unit posix
    all=$(ctest --test-dir build/wine/cmake -N -LE posix | sed -n "$count")
    unit=$(ctest --test-dir build/wine/cmake -N -L unit | sed -n "$count")
    posix=$(ctest --test-dir build/wine/cmake -N -L posix | sed -n "$count")
    echo "wine: ${all:-?} ctest tests run under wine (${unit:-?} unit test cases, the rest examples and header checks);" \
        "${posix:-?} POSIX-only test cases ([posix], ctest label posix) not run there:"
    ctest --test-dir build/wine/cmake -N -L posix | sed -n 's/^ *Test *#[0-9]*: /    /p'
}

pc_version() { sed -nE 's/^Version:[[:space:]]*//p' "$1"; }

# The versions the package recipes spell out (they cannot read config.hpp): one "<what> <version>" line each.
recipe_versions() {
    local vcpkg conan wrap
    vcpkg=$(python3 -c 'import json; print(json.load(open("ports/procpool/vcpkg.json"))["version"])') || return 1
    conan=$(python3 -c 'import ast
for n in ast.walk(ast.parse(open("conanfile.py").read())):
    if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "version": print(n.value.value)') || return 1
    wrap=$(sed -nE 's/^directory = procpool-//p' packaging/meson/procpool.wrap)
    printf '%-32s %s\n' "vcpkg.json" "${vcpkg:-?}" "conanfile.py" "${conan:-?}" "packaging/meson/procpool.wrap" \
        "${wrap:-?}"
}

stage_version() {
    local header python cmake_v cmake_pc cmake_cfg meson_v meson_pc part
    header=""
    for part in MAJOR MINOR PATCH; do
        header+=$(sed -nE "s/^#[[:space:]]*define[[:space:]]+PROCPOOL_VERSION_${part}[[:space:]]+([0-9]+).*/\1/p" \
            include/procpool/config.hpp).
    done
    header=${header%.}
    python=$(python3 scripts/version.py) || return 1

    cmake -S . -B build/version -DPROCPOOL_BUILD_TESTS=OFF -DPROCPOOL_BUILD_EXAMPLES=OFF -DPROCPOOL_INSTALL=ON \
        >/dev/null || return 1
    cmake_v=$(sed -nE 's/^CMAKE_PROJECT_VERSION:STATIC=//p' build/version/CMakeCache.txt)
    cmake_pc=$(pc_version build/version/procpool.pc)
    cmake_cfg=$(sed -nE 's/^set\(PACKAGE_VERSION "([^"]*)"\)/\1/p' build/version/procpoolConfigVersion.cmake)

    if [[ -f build/version-meson/build.ninja ]]; then
        meson setup --reconfigure build/version-meson >/dev/null || return 1
    else
        meson setup build/version-meson -Dtests=false -Dexamples=false >/dev/null || return 1
    fi
    meson_v=$(meson introspect build/version-meson --projectinfo |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])') || return 1
    meson_pc=$(pc_version build/version-meson/meson-private/procpool.pc)

    printf '%-32s %s\n' "config.hpp" "$header" "scripts/version.py" "$python" "CMake project()" "$cmake_v" \
        "CMake procpoolConfigVersion" "$cmake_cfg" "CMake procpool.pc" "$cmake_pc" \
        "Meson project()" "$meson_v" "Meson procpool.pc" "$meson_pc"
    local recipes
    recipes=$(recipe_versions) || return 1
    printf '%s\n' "$recipes"
    local v ok=0
    for v in "$python" "$cmake_v" "$cmake_cfg" "$cmake_pc" "$meson_v" "$meson_pc" $(awk '{print $NF}' <<<"$recipes"); do
        if [[ $v != "$header" ]]; then
            echo "version mismatch: '$v' differs from config.hpp's '$header'"
            ok=1
        fi
    done
    [[ -n $header ]] || { echo "no version in config.hpp"; ok=1; }
    return $ok
}

# The API reference (docs/Doxyfile: public headers only, every public name documented, warnings are errors) and the
# relative links of the Markdown docs, which render on GitHub without a build.
# The MPI tests run under mpirun (one executable; Debug: it compiles fastest, the cases take seconds). Root (CI)
# needs the OMPI_ALLOW_RUN_AS_ROOT variables; the singleton's MPI_Comm_spawn needs oversubscription on 2 cores.
stage_mpi() {
    cmake -S . -B build/mpi -DCMAKE_CXX_COMPILER=g++-12 -DCMAKE_BUILD_TYPE=Debug -DPROCPOOL_BUILD_MPI_TESTS=ON &&
        cmake --build build/mpi -j "$jobs" --target procpool_mpi_tests example_mpi_cluster || return 1
    local t=build/mpi/tests/procpool_mpi_tests ex=build/mpi/examples/example_mpi_cluster
    local run=(timeout 300 mpirun --oversubscribe)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    echo "--- static world, default transports" && "${run[@]}" -n 3 "$t" "[mpi]" &&
        echo "--- static world, TCP" && "${run[@]}" --mca btl tcp,self -n 3 "$t" "[mpi]" &&
        echo "--- a node agent killed" && "${run[@]}" --enable-recovery -n 3 "$t" "[mpi_kill]" &&
        echo "--- a node agent killed, TCP" && "${run[@]}" --enable-recovery --mca btl tcp,self -n 3 "$t" "[mpi_kill]" &&
        echo "--- another build refused" && "${run[@]}" -n 2 "$t" "[mpi_mismatch]" : -n 1 "$ex" &&
        echo "--- dynamic, from a singleton" && timeout 300 "$t" "[mpi_spawn]" &&
        echo "--- the example" && "${run[@]}" -n 3 "$ex"
}

stage_docs() {
    bash scripts/ensure-deps.sh --docs || return 1
    local version pages
    version=$(python3 scripts/version.py) || return 1
    rm -rf build/docs && mkdir -p build/docs
    if ! (cd docs && PROCPOOL_VERSION=$version doxygen Doxyfile); then
        echo "docs: doxygen reported a warning (an error here: docs/Doxyfile sets WARN_AS_ERROR)"
        return 1
    fi
    pages=$(find build/docs/html -name '*.html' | wc -l)
    echo "docs: doxygen $(doxygen --version): procpool $version reference, $pages pages, 0 warnings" \
        "(build/docs/html/index.html)"
    python3 scripts/check-doc-links.py README.md CHANGELOG.md docs/*.md
}

# Packages: the .deb (CPack) installed with dpkg -i, consumed from /usr by find_package and pkg-config, then removed;
# the vcpkg port's steps run by CMake (packaging/vcpkg-port-test.cmake) and consumed with find_package; the Conan
# recipe's package() run without Conan (packaging/conan-recipe-test.py); the Meson wrap used with a local archive.
# dpkg -i needs root: CI runs as root on a throwaway machine.
package_consumer() { # <name> <cmake args...>: tests/consumers/find_package built and run, printing "procpool <v>"
    local name=$1 out
    shift
    cmake -S tests/consumers/find_package -B "build/package/$name" -DCMAKE_CXX_COMPILER="${CXX:-g++-12}" \
        -DPROCPOOL_EXPECTED_VERSION="$version" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON "$@" >/dev/null &&
        cmake --build "build/package/$name" >/dev/null &&
        out=$("build/package/$name/consumer") && echo "package: $name: $out" && [[ $out == "procpool $version" ]]
}

stage_package() {
    local version deb rc=0 flags out
    version=$(python3 scripts/version.py) || return 1
    if [[ $(id -u) -ne 0 ]]; then
        echo "package: dpkg -i needs root (CI runs as root); run this stage as root"
        return 1
    fi
    if dpkg-query -W libprocpool-dev >/dev/null 2>&1; then
        echo "package: libprocpool-dev is installed already; remove it first (dpkg -r libprocpool-dev)"
        return 1
    fi
    rm -rf build/package
    cmake -S . -B build/package -DPROCPOOL_BUILD_TESTS=OFF -DPROCPOOL_BUILD_EXAMPLES=OFF -DPROCPOOL_BUILD_BENCH=OFF \
        >/dev/null &&
        (cd build/package && cpack -G DEB -B deb >/dev/null) || return 1
    deb=build/package/deb/libprocpool-dev_${version}_all.deb
    [[ -f $deb ]] || { echo "package: no $deb"; return 1; }
    echo "package: built $deb ($(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)," \
        "$(dpkg-deb -c "$deb" | grep -c '\.hpp$') headers)"

    dpkg -i "$deb" >/dev/null || return 1
    echo "package: dpkg -i: $(dpkg-query -W -f='${Package} ${Version} ${db:Status-Status}' libprocpool-dev)"
    package_consumer deb_find_package || rc=1 # found under /usr, no prefix given
    flags=$(env -u PKG_CONFIG_PATH pkg-config --cflags --libs procpool) || rc=1
    echo "package: pkg-config --cflags --libs procpool: $flags"
    [[ $(grep -o -- '-pthread' <<<"$flags" | wc -l) -eq 1 ]] || { echo "package: -pthread is not there once"; rc=1; }
    mkdir -p build/package/deb_pkg_config
    # shellcheck disable=SC2046 # word splitting of the flags is intended
    "${CXX:-g++-12}" -std=c++20 $(pkg-config --cflags procpool) tests/consumers/pkg_config/main.cpp \
        $(pkg-config --libs procpool) -o build/package/deb_pkg_config/consumer &&
        out=$(build/package/deb_pkg_config/consumer) && echo "package: deb_pkg_config: $out" &&
        [[ $out == "procpool $version" ]] || rc=1
    dpkg -r libprocpool-dev >/dev/null || rc=1
    [[ ! -e /usr/include/procpool ]] || { echo "package: /usr/include/procpool is left after dpkg -r"; rc=1; }
    echo "package: dpkg -r: $(dpkg-query -W -f='${db:Status-Status}' libprocpool-dev 2>/dev/null || echo removed)"

    cmake -DPROCPOOL_SOURCE="$repo" -DWORK="$repo/build/package/vcpkg" -P packaging/vcpkg-port-test.cmake \
        >build/package/vcpkg.log 2>&1 && tail -n 1 build/package/vcpkg.log || { cat build/package/vcpkg.log; rc=1; }
    package_consumer vcpkg_find_package -DCMAKE_PREFIX_PATH="$repo/build/package/vcpkg/packages/procpool_x64-linux" ||
        rc=1
    python3 packaging/conan-recipe-test.py . build/package/conan || rc=1
    package_meson_wrap || rc=1
    return $rc
}

# packaging/meson/procpool.wrap with its URL and hash pointing at a local archive of this checkout.
package_meson_wrap() {
    local version dir=build/package/meson_wrap archive hash out
    version=$(python3 scripts/version.py) || return 1
    mkdir -p "$dir/subprojects/packagecache" && cp tests/consumers/meson_subproject/* "$dir/" || return 1
    archive=$repo/$dir/procpool-$version.tar.gz
    git ls-files -z --cached --others --exclude-standard |
        tar --null -T - --transform "s,^,procpool-$version/," -czf "$archive" || return 1
    hash=$(sha256sum "$archive" | cut -d' ' -f1)
    sed -e "s|^source_url = .*|source_url = file://$archive|" -e "s|^source_hash = .*|source_hash = $hash|" \
        packaging/meson/procpool.wrap >"$dir/subprojects/procpool.wrap" || return 1
    CXX=${CXX:-g++-12} meson setup "$dir/build" "$dir" --wrap-mode=default >"$dir.log" 2>&1 &&
        meson compile -C "$dir/build" >>"$dir.log" 2>&1 || { tail -n 20 "$dir.log"; return 1; }
    out=$("$dir/build/consumer") && echo "package: meson_wrap: $out" && [[ $out == "procpool $version" ]]
}

mkdir -p build/logs
summary=()
passed=0
failed=0
for stage in $stages; do
    if [[ $stage == fuzz && $(fuzz_targets) -eq 0 ]]; then
        summary+=("stage fuzz: skipped (no fuzz/*.cpp)")
        echo "${summary[-1]}"
        continue
    fi
    echo "=== stage $stage ==="
    start=$SECONDS
    if "stage_$stage" 2>&1 | tee "build/logs/$stage.log"; then
        line="stage $stage: ok ($((SECONDS - start)) s)"
        passed=$((passed + 1))
    else
        line="stage $stage: FAILED ($((SECONDS - start)) s; log: build/logs/$stage.log)"
        failed=$((failed + 1))
    fi
    summary+=("$line")
    echo "$line"
done

echo
echo "=== summary ==="
for line in "${summary[@]}"; do echo "$line"; done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
