// SPDX-License-Identifier: BSL-1.0
// procpool/platform/this_process.hpp: the part of the OS layer the public headers use (current_pid, cached_pid,
// get_env, unset_env, stderr_is_terminal), without the rest of it: a file that includes <procpool/procpool.hpp>
// does not parse the channel, spawn and fork code (platform/platform.hpp states the contract of all of it).
#ifndef PROCPOOL_PLATFORM_THIS_PROCESS_HPP
#define PROCPOOL_PLATFORM_THIS_PROCESS_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>

#if PROCPOOL_WINDOWS
#include <procpool/platform/windows/pid.hpp>
#include <procpool/platform/windows/env.hpp>
#else
#include <procpool/platform/posix/pid.hpp>
#include <procpool/platform/posix/env.hpp>
#endif

#endif // PROCPOOL_PLATFORM_THIS_PROCESS_HPP
