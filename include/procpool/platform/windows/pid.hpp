// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/pid.hpp: this process's id.
#ifndef PROCPOOL_PLATFORM_WINDOWS_PID_HPP
#define PROCPOOL_PLATFORM_WINDOWS_PID_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/windows/win32.hpp>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// The id of the calling process.
inline pid_type current_pid() noexcept { return static_cast<pid_type>(::GetCurrentProcessId()); }

/// current_pid(): already a read of the thread environment block here, no system call and no fork to track.
inline pid_type cached_pid() noexcept { return current_pid(); }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_PID_HPP
