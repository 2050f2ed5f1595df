// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/errors.hpp: a failed Win32 call as an exception, and an error code in words.
#ifndef PROCPOOL_PLATFORM_WINDOWS_ERRORS_HPP
#define PROCPOOL_PLATFORM_WINDOWS_ERRORS_HPP

#include <procpool/config.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <string>
#include <system_error>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Throws std::system_error for GetLastError(), the message saying what failed ("procpool: <what>").
[[noreturn]] inline void throw_last_error(const char* what) {
    throw std::system_error(static_cast<int>(::GetLastError()), std::system_category(), std::string("procpool: ") + what);
}

/// The system's message for an error code, without its trailing period and line break.
inline std::string last_error_text(DWORD code) {
    char* buf = nullptr;
    DWORD n = ::FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                               nullptr, code, 0, reinterpret_cast<char*>(&buf), 0, nullptr);
    std::string s = n && buf ? std::string(buf, n) : "error " + std::to_string(code);
    if (buf) ::LocalFree(buf);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '.')) s.pop_back();
    return s;
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_ERRORS_HPP
