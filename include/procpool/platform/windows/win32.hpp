// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/win32.hpp: <windows.h> without its min/max macros and rarely used parts, and without
// leaving NOMINMAX or WIN32_LEAN_AND_MEAN defined for the application (unless it defined them itself).
#ifndef PROCPOOL_PLATFORM_WINDOWS_WIN32_HPP
#define PROCPOOL_PLATFORM_WINDOWS_WIN32_HPP

#if !defined(NOMINMAX)
#define NOMINMAX
#define PROCPOOL_DETAIL_UNDEF_NOMINMAX
#endif
#if !defined(WIN32_LEAN_AND_MEAN)
#define WIN32_LEAN_AND_MEAN
#define PROCPOOL_DETAIL_UNDEF_LEAN
#endif
#include <windows.h>
#if defined(PROCPOOL_DETAIL_UNDEF_NOMINMAX)
#undef NOMINMAX
#undef PROCPOOL_DETAIL_UNDEF_NOMINMAX
#endif
#if defined(PROCPOOL_DETAIL_UNDEF_LEAN)
#undef WIN32_LEAN_AND_MEAN
#undef PROCPOOL_DETAIL_UNDEF_LEAN
#endif

#endif // PROCPOOL_PLATFORM_WINDOWS_WIN32_HPP
