// SPDX-License-Identifier: BSL-1.0
// procpool/config.hpp: version, namespace macros and overridable knobs.
#ifndef PROCPOOL_CONFIG_HPP
#define PROCPOOL_CONFIG_HPP

#include <cassert>

/// The one source of the version: CMake, Meson and CI read these three lines.
#define PROCPOOL_VERSION_MAJOR 0
/// Minor version: new features; before 1.0, also incompatible changes.
#define PROCPOOL_VERSION_MINOR 1
/// Patch version: fixes only.
#define PROCPOOL_VERSION_PATCH 0
/// The version as one number, MAJOR * 10000 + MINOR * 100 + PATCH (0.1.0 is 100).
#define PROCPOOL_VERSION (PROCPOOL_VERSION_MAJOR * 10000 + PROCPOOL_VERSION_MINOR * 100 + PROCPOOL_VERSION_PATCH)

#if !defined(__cplusplus) || (__cplusplus < 202002L && (!defined(_MSVC_LANG) || _MSVC_LANG < 202002L))
#error "procpool: C++20 is required. Compile with -std=c++20 (or /std:c++20)."
#endif

// A versioned inline namespace keeps two procpool versions apart when a plugin brings its own copy.
/// Opens namespace procpool and its versioned inline namespace (internal use).
#define PROCPOOL_BEGIN_NAMESPACE                                                                                       \
    namespace procpool {                                                                                               \
    inline namespace v0 {
/// Closes what PROCPOOL_BEGIN_NAMESPACE opened.
#define PROCPOOL_END_NAMESPACE                                                                                         \
    }                                                                                                                  \
    }

// Separate compilation (README "Compile time"): define PROCPOOL_SEPARATE_COMPILATION in every translation unit, and
// include <procpool/src.hpp> from exactly one; the headers then declare what src.hpp defines.
#if defined(PROCPOOL_SEPARATE_COMPILATION)
#define PROCPOOL_HEADER_ONLY 0
#define PROCPOOL_DECL
#else
/// 1 (the default): every definition is in the headers. 0 when PROCPOOL_SEPARATE_COMPILATION is defined: the
/// engines, the worker loop and the platform code are compiled once, in the file that includes <procpool/src.hpp>.
#define PROCPOOL_HEADER_ONLY 1
/// How the non-template functions that src.hpp compiles are declared: `inline` in header-only mode, else nothing.
#define PROCPOOL_DECL inline
#endif

#ifndef PROCPOOL_ASSERT
/// Broken preconditions are bugs; override to route them to your own handler.
#define PROCPOOL_ASSERT(cond) assert(cond)
#endif

#ifndef PROCPOOL_MAX_FRAME_BYTES
/// Largest frame either side accepts (a length field above it is a protocol_error before any allocation).
#define PROCPOOL_MAX_FRAME_BYTES 4294967296ull
#endif
#if PROCPOOL_MAX_FRAME_BYTES < 4096
#error "procpool: PROCPOOL_MAX_FRAME_BYTES must be at least 4096. Raise it or leave it undefined."
#endif

#ifndef PROCPOOL_SPIN_MICROSECONDS
/// How long a process waiting for its peer's answer polls before it blocks (detail/spin.hpp); 0: block at once.
#define PROCPOOL_SPIN_MICROSECONDS 50
#endif

#ifndef PROCPOOL_RESULT_RING
/// 1: on Linux, workers write results into memory shared with the pool (detail/result_ring.hpp); 0: every result
/// travels over the channel.
#define PROCPOOL_RESULT_RING 1
#endif

#if defined(_WIN32)
#define PROCPOOL_WINDOWS 1
#define PROCPOOL_POSIX 0
#else
/// 1 when building for Windows (CreateProcessW workers), else 0.
#define PROCPOOL_WINDOWS 0
/// 1 on POSIX systems (spawn, fork, forkserver), else 0.
#define PROCPOOL_POSIX 1
#endif

#endif // PROCPOOL_CONFIG_HPP
