# SPDX-License-Identifier: BSL-1.0
# Cross build for 64-bit Windows with mingw-w64 (posix threads), run under wine:
#   cmake -S . -B build/wine/cmake -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake
#   cmake --build build/wine/cmake && ctest --test-dir build/wine/cmake      (docs/windows.md)
# Debian: apt-get install g++-mingw-w64-x86-64-posix wine wine64 (scripts/ensure-deps.sh --wine).
#
# Header-only dependencies (Boost, Catch2 v2) come from the build machine's packages: the build tree gets a small
# prefix, <build>/host-headers, holding symlinks to only /usr/include/boost, /usr/include/catch2 and the files of
# Catch2's CMake package, and CMake looks for packages there and in the mingw-w64 sysroot only. /usr/include itself is never
# searched: its glibc headers would break the mingw-w64 build. PROCPOOL_HOST_HEADERS_FROM (default /usr) names
# another prefix to take them from.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_procpool_triple x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${_procpool_triple}-gcc-posix)
set(CMAKE_CXX_COMPILER ${_procpool_triple}-g++-posix)
set(CMAKE_RC_COMPILER ${_procpool_triple}-windres)

# COFF objects hold at most 32767 sections; Catch2 and the codec tests' templates need more in a Debug build.
set(CMAKE_C_FLAGS_INIT "-Wa,-mbig-obj")
set(CMAKE_CXX_FLAGS_INIT "-Wa,-mbig-obj")

# Static libgcc, libstdc++ and winpthread: the executables and plugin DLLs run without mingw DLLs beside them.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static")

# Tests and examples run under wine (ctest, and Catch's test discovery at build time).
set(CMAKE_CROSSCOMPILING_EMULATOR "${CMAKE_CURRENT_LIST_DIR}/../../scripts/wine-exec.sh")
cmake_path(NORMAL_PATH CMAKE_CROSSCOMPILING_EMULATOR)

set(PROCPOOL_HOST_HEADERS_FROM "/usr" CACHE PATH
    "Prefix whose include/boost, include/catch2 and Catch2 CMake package the Windows cross build uses")
set(_procpool_host_headers "${CMAKE_BINARY_DIR}/host-headers")
if(NOT CMAKE_IN_TRY_COMPILE)
    file(MAKE_DIRECTORY "${_procpool_host_headers}/include" "${_procpool_host_headers}/lib/cmake/Catch2")
    foreach(_procpool_dir IN ITEMS boost catch2)
        if(EXISTS "${PROCPOOL_HOST_HEADERS_FROM}/include/${_procpool_dir}"
           AND NOT EXISTS "${_procpool_host_headers}/include/${_procpool_dir}")
            file(CREATE_LINK "${PROCPOOL_HOST_HEADERS_FROM}/include/${_procpool_dir}"
                 "${_procpool_host_headers}/include/${_procpool_dir}" SYMBOLIC)
        endif()
    endforeach()
    # Catch2's package file by file: its targets file takes the include directory from the real path of its
    # folder, so a link to the folder would bring back /usr/include. Not Catch2Targets-<config>.cmake: it only
    # locates the host's compiled libCatch2WithMain.a, which a Windows build cannot link (tests/main.cpp has main).
    file(GLOB _procpool_files "${PROCPOOL_HOST_HEADERS_FROM}/lib/cmake/Catch2/*.cmake")
    foreach(_procpool_file IN LISTS _procpool_files)
        cmake_path(GET _procpool_file FILENAME _procpool_name)
        if(NOT _procpool_name MATCHES "^Catch2Targets-" AND NOT EXISTS "${_procpool_host_headers}/lib/cmake/Catch2/${_procpool_name}")
            file(CREATE_LINK "${_procpool_file}" "${_procpool_host_headers}/lib/cmake/Catch2/${_procpool_name}"
                 SYMBOLIC)
        endif()
    endforeach()
endif()

# Libraries, headers and packages: the mingw-w64 sysroot and the host-headers prefix only; programs: the host's.
set(CMAKE_FIND_ROOT_PATH "/usr/${_procpool_triple}" "${_procpool_host_headers}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Boost's own CMake package lives in the host's lib/ with its libraries: FindBoost finds the headers instead.
set(Boost_NO_BOOST_CMAKE ON)
