// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows.hpp: the Windows side of the OS interface, one header per mechanism under windows/ (this
// umbrella keeps older includes working). Channels are overlapped named pipes behind a table of small integer
// descriptors; workers are CreateProcessW'd copies of the running executable in a job object that kills them when
// the parent goes away. platform.hpp states what the rest of procpool may call.
#ifndef PROCPOOL_PLATFORM_WINDOWS_HPP
#define PROCPOOL_PLATFORM_WINDOWS_HPP

#include <procpool/platform/types.hpp>

#include <procpool/platform/windows/win32.hpp>    // <windows.h>, without min/max
#include <procpool/platform/windows/errors.hpp>   // throw_last_error, last_error_text
#include <procpool/platform/windows/utf8.hpp>     // widen, narrow
#include <procpool/platform/windows/pid.hpp>      // current_pid, cached_pid
#include <procpool/platform/windows/clock.hpp>    // now_ms, sleep_for_ms
#include <procpool/platform/windows/env.hpp>      // get_env, unset_env
#include <procpool/platform/windows/channel.hpp>  // make_channel, read/write, wait_any, peer_closed, close_handle
#include <procpool/platform/windows/process.hpp>  // reap, kill, describe_exit, open_process_handle, resident_bytes
#include <procpool/platform/windows/lifetime.hpp> // the workers' job object, bind_lifetime_to_parent, lifelines (none)
#include <procpool/platform/windows/spawn.hpp>    // spawn_self, adopt_channel, executable_path/identity
#include <procpool/platform/windows/shm.hpp>      // the result ring's memory (none here)
#include <procpool/platform/windows/shared_mapping.hpp> // shared_buffer memory (sent to workers as handles)
#include <procpool/platform/windows/library.hpp>  // load_library, find_symbol
#include <procpool/platform/windows/event_set.hpp> // event sets: none yet (pool::native_handle throws)
#include <procpool/platform/windows/zygote.hpp>   // apply_limits: resource limits in a job object (no fork here)

#endif // PROCPOOL_PLATFORM_WINDOWS_HPP
