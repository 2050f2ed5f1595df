// SPDX-License-Identifier: BSL-1.0
// procpool/platform/platform.hpp: picks the OS layer (the only headers that include OS headers).
#ifndef PROCPOOL_PLATFORM_PLATFORM_HPP
#define PROCPOOL_PLATFORM_PLATFORM_HPP

#include <procpool/config.hpp>

#if PROCPOOL_WINDOWS
#include <procpool/platform/windows.hpp>
#else
#include <procpool/platform/posix.hpp>
#endif

#endif // PROCPOOL_PLATFORM_PLATFORM_HPP
