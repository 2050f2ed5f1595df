// SPDX-License-Identifier: BSL-1.0
// procpool/platform/library.hpp: load_library and find_symbol alone (plugin.hpp's only use of the OS layer).
#ifndef PROCPOOL_PLATFORM_LIBRARY_HPP
#define PROCPOOL_PLATFORM_LIBRARY_HPP

#include <procpool/config.hpp>

#if PROCPOOL_WINDOWS
#include <procpool/platform/windows/library.hpp>
#else
#include <procpool/platform/posix/library.hpp>
#endif

#endif // PROCPOOL_PLATFORM_LIBRARY_HPP
