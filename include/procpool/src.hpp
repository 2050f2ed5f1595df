// SPDX-License-Identifier: BSL-1.0
// procpool/src.hpp: with PROCPOOL_SEPARATE_COMPILATION, include this from exactly one .cpp of the program (or link
// the procpool::compiled CMake target / the Meson procpool_compiled_dep, which do): it compiles the pool's engines,
// the worker loop and the platform code once, instead of in every file that uses a pool.
#ifndef PROCPOOL_SRC_HPP
#define PROCPOOL_SRC_HPP

#include <procpool/config.hpp>

#if PROCPOOL_HEADER_ONLY
#error "procpool/src.hpp is for separate compilation: define PROCPOOL_SEPARATE_COMPILATION (in every translation unit), or do not include it."
#endif

#include <procpool/procpool.hpp>
#include <procpool/detail/codec_impl.hpp>
#include <procpool/detail/context_impl.hpp>
#include <procpool/detail/error_impl.hpp>
#include <procpool/detail/future_impl.hpp>
#include <procpool/detail/job_impl.hpp>
#include <procpool/detail/plugin_impl.hpp>
#include <procpool/detail/pool_impl.hpp>
#include <procpool/detail/shared_handles_impl.hpp>
#include <procpool/detail/task_impl.hpp>
#include <procpool/detail/wire_impl.hpp>
#include <procpool/detail/worker_main.hpp>

#endif // PROCPOOL_SRC_HPP
