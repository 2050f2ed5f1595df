// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/utf8.hpp: UTF-8 (procpool's strings) to UTF-16 (the W functions) and back.
#ifndef PROCPOOL_PLATFORM_WINDOWS_UTF8_HPP
#define PROCPOOL_PLATFORM_WINDOWS_UTF8_HPP

#include <procpool/config.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <cstddef>
#include <string>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// UTF-16 for the Win32 W functions.
inline std::wstring widen(const std::string& s) {
    if (s.empty()) return {};
    int n = ::MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
    std::wstring w(static_cast<std::size_t>(n), L'\0');
    ::MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), w.data(), n);
    return w;
}

/// UTF-8 from a Win32 UTF-16 string.
inline std::string narrow(const std::wstring& w) {
    if (w.empty()) return {};
    int n = ::WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), nullptr, 0, nullptr, nullptr);
    std::string s(static_cast<std::size_t>(n), '\0');
    ::WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), s.data(), n, nullptr, nullptr);
    return s;
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_UTF8_HPP
