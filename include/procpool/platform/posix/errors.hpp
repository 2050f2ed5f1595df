// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/errors.hpp: a failed system call as an exception (errno and what was attempted).
#ifndef PROCPOOL_PLATFORM_POSIX_ERRORS_HPP
#define PROCPOOL_PLATFORM_POSIX_ERRORS_HPP

#include <procpool/config.hpp>

#include <cerrno>
#include <string>
#include <system_error>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Throws std::system_error for errno, the message saying what failed ("procpool: <what>").
[[noreturn]] inline void throw_errno(const char* what) {
    throw std::system_error(errno, std::generic_category(), std::string("procpool: ") + what);
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_ERRORS_HPP
