// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/env.hpp: reading and removing environment variables (the C runtime's copy and the
// process's block, which children inherit).
#ifndef PROCPOOL_PLATFORM_WINDOWS_ENV_HPP
#define PROCPOOL_PLATFORM_WINDOWS_ENV_HPP

#include <procpool/config.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <cstdlib>
#include <string>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// The value of environment variable `name`, or null.
inline const char* get_env(const char* name) noexcept { return std::getenv(name); }
/// Removes `name` from the environment (children started later do not see it).
inline void unset_env(const char* name) noexcept {
    ::SetEnvironmentVariableA(name, nullptr); // the block children inherit
    std::string kv = std::string(name) + "=";
    ::_putenv(kv.c_str()); // the C runtime's copy, which getenv reads
}
/// Whether the process's standard error is a console (a progress bar draws only then).
inline bool stderr_is_terminal() noexcept {
    DWORD mode = 0;
    return ::GetConsoleMode(::GetStdHandle(STD_ERROR_HANDLE), &mode) != 0;
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_ENV_HPP
