// SPDX-License-Identifier: BSL-1.0
// procpool/platform/shared_mapping.hpp: shared memory objects and their mappings, and the calling process's id: what
// shared_buffer and shared_array need of the OS, without the rest of the platform layer (pool.hpp includes it).
#ifndef PROCPOOL_PLATFORM_SHARED_MAPPING_HPP
#define PROCPOOL_PLATFORM_SHARED_MAPPING_HPP

#include <procpool/config.hpp>
#include <procpool/platform/this_process.hpp>

#if PROCPOOL_WINDOWS
#include <procpool/platform/windows/shared_mapping.hpp>
#else
#include <procpool/platform/posix/shared_mapping.hpp>
#endif

#endif // PROCPOOL_PLATFORM_SHARED_MAPPING_HPP
