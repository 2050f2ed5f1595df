// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/env.hpp: reading and removing environment variables.
#ifndef PROCPOOL_PLATFORM_POSIX_ENV_HPP
#define PROCPOOL_PLATFORM_POSIX_ENV_HPP

#include <procpool/config.hpp>

#include <cstdlib>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// The value of environment variable `name`, or null.
inline const char* get_env(const char* name) noexcept { return std::getenv(name); }
/// Removes `name` from the environment (children started later do not see it).
inline void unset_env(const char* name) noexcept { ::unsetenv(name); }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_ENV_HPP
