# SPDX-License-Identifier: BSL-1.0
# cmake -D CXX=<g++> -D INCLUDE_DIR=<repo>/include [-D "FLAGS=..."] -P check_lean.cmake
# Every file that uses a pool pays for what <procpool/procpool.hpp> includes (README "Compile time"). With separate
# compilation, that is the public headers only, and they must not pull in standard headers that a typical file does
# not have and that procpool's interface does not need: <filesystem> and <complex> (their values are encoded when the
# user's file has included them), <algorithm>, <coroutine> (co_await works when the coroutine's file has included
# it). Checked with libstdc++, whose transitive includes this list was measured against (-H lists every header).
cmake_minimum_required(VERSION 3.25)
if(NOT CXX OR NOT INCLUDE_DIR)
    message(FATAL_ERROR "usage: cmake -D CXX=<compiler> -D INCLUDE_DIR=<dir> [-D FLAGS=...] -P check_lean.cmake")
endif()
set(_tu "${CMAKE_CURRENT_BINARY_DIR}/procpool_lean_check.cpp")
file(WRITE "${_tu}" "#include <procpool/procpool.hpp>\nint main() {}\n")
separate_arguments(_flags UNIX_COMMAND "${FLAGS}")
execute_process(COMMAND "${CXX}" ${_flags} -std=c++20 -DPROCPOOL_SEPARATE_COMPILATION "-I${INCLUDE_DIR}" -H
                        -fsyntax-only "${_tu}"
                RESULT_VARIABLE _rc ERROR_VARIABLE _err OUTPUT_QUIET)
if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "compiling <procpool/procpool.hpp> failed:\n${_err}")
endif()
set(_errors "")
foreach(_std IN ITEMS filesystem complex algorithm coroutine)
    if(_err MATCHES "(^|\n)\\.+ [^\n]*/${_std}\n")
        list(APPEND _errors "<${_std}>")
    endif()
endforeach()
if(_errors)
    list(JOIN _errors ", " _text)
    message(FATAL_ERROR "<procpool/procpool.hpp> (separate compilation) includes ${_text}: every file that uses "
                        "a pool would parse it. Move what needs it into a detail/*_impl.hpp, or take the type as a "
                        "template parameter.")
endif()
message(STATUS "lean headers: <procpool/procpool.hpp> includes none of <filesystem> <complex> <algorithm> <coroutine>")
