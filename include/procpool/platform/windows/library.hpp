// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/library.hpp: loading a plugin's DLL and finding its symbols.
#ifndef PROCPOOL_PLATFORM_WINDOWS_LIBRARY_HPP
#define PROCPOOL_PLATFORM_WINDOWS_LIBRARY_HPP

#include <procpool/config.hpp>
#include <procpool/platform/windows/win32.hpp>
#include <procpool/platform/windows/errors.hpp>
#include <procpool/platform/windows/utf8.hpp>

#include <cstring>
#include <string>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Loads a DLL. Returns null and sets `err` on failure.
inline void* load_library(const std::string& path, std::string& err) noexcept {
    try {
        HMODULE h = ::LoadLibraryExW(widen(path).c_str(), nullptr, LOAD_WITH_ALTERED_SEARCH_PATH);
        if (!h) err = last_error_text(::GetLastError());
        return reinterpret_cast<void*>(h);
    } catch (...) {
        err = "out of memory";
        return nullptr;
    }
}

/// Address of an exported symbol of a loaded DLL, or null.
inline void* find_symbol(void* library, const char* name) noexcept {
    FARPROC p = ::GetProcAddress(reinterpret_cast<HMODULE>(library), name);
    void* out = nullptr;
    static_assert(sizeof out == sizeof p);
    std::memcpy(&out, &p, sizeof out);
    return out;
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_LIBRARY_HPP
