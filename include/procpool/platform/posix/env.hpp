// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/env.hpp: the process's surroundings: environment variables, whether stderr is a terminal.
#ifndef PROCPOOL_PLATFORM_POSIX_ENV_HPP
#define PROCPOOL_PLATFORM_POSIX_ENV_HPP

#include <procpool/config.hpp>

#include <cstdlib>

#include <unistd.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// The value of environment variable `name`, or null.
inline const char* get_env(const char* name) noexcept { return std::getenv(name); }
/// Removes `name` from the environment (children started later do not see it).
inline void unset_env(const char* name) noexcept { ::unsetenv(name); }
/// Whether the process's standard error is a terminal (a progress bar draws only then).
inline bool stderr_is_terminal() noexcept { return ::isatty(2) == 1; }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_ENV_HPP
