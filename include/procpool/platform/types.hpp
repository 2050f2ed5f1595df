// SPDX-License-Identifier: BSL-1.0
// procpool/platform/types.hpp: the types of the OS interface, the same on every platform.
#ifndef PROCPOOL_PLATFORM_TYPES_HPP
#define PROCPOOL_PLATFORM_TYPES_HPP

#include <procpool/config.hpp>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// A channel end: a descriptor on POSIX, an index into the channel table on Windows.
using native_handle = int;
using pid_type = long;
inline constexpr native_handle invalid_handle = -1;

/// One channel to wait on (wait_any): what the caller wants, and what is ready.
struct poll_item {
    native_handle fd;
    bool want_write;
    bool readable = false;
    bool writable = false;
    bool hangup = false;
};

/// How a process ended.
struct exit_status {
    int code = -1;  // exit code (-1 when killed); on Windows an NTSTATUS such as 0xC0000005 when it crashed
    int signal = 0; // the signal that killed it (POSIX), 9 when the pool terminated it (Windows), else 0
};

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_TYPES_HPP
