// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/library.hpp: loading a plugin's shared library and finding its symbols (dlopen).
#ifndef PROCPOOL_PLATFORM_POSIX_LIBRARY_HPP
#define PROCPOOL_PLATFORM_POSIX_LIBRARY_HPP

#include <procpool/config.hpp>

#include <string>

#include <dlfcn.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Loads a shared library (dlopen, symbols resolved now, kept local). Returns null and sets `err` on failure.
inline void* load_library(const std::string& path, std::string& err) noexcept {
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char* e = ::dlerror();
        err = e ? e : "dlopen failed";
    }
    return h;
}

/// Address of an exported symbol of a loaded library, or null.
inline void* find_symbol(void* library, const char* name) noexcept { return ::dlsym(library, name); }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_LIBRARY_HPP
