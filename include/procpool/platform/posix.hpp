// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix.hpp: the POSIX side of the OS interface, one header per mechanism under posix/ (this
// umbrella keeps older includes working). Linux-only calls (prctl, /proc, closefrom, memfd, futex, pidfd) are used
// where available and have a portable fallback. platform.hpp states what the rest of procpool may call.
#ifndef PROCPOOL_PLATFORM_POSIX_HPP
#define PROCPOOL_PLATFORM_POSIX_HPP

#include <procpool/platform/types.hpp>

#include <procpool/platform/posix/errors.hpp>     // throw_errno
#include <procpool/platform/posix/pid.hpp>        // current_pid, cached_pid, parent_pid
#include <procpool/platform/posix/clock.hpp>      // now_ms, sleep_for_ms
#include <procpool/platform/posix/env.hpp>        // get_env, unset_env
#include <procpool/platform/posix/channel.hpp>    // make_channel, read/write, wait_any, peer_closed, close_handle
#include <procpool/platform/posix/fd_passing.hpp> // send_handle(s), recv_handle(s) (SCM_RIGHTS)
#include <procpool/platform/posix/process.hpp>    // reap, kill, describe_exit, open_process_handle, resident_bytes
#include <procpool/platform/posix/spawn.hpp>      // spawn_self, adopt_channel, executable_path/identity
#include <procpool/platform/posix/fork.hpp>       // fork_process, child_exit_events (the fork template's)
#include <procpool/platform/posix/lifetime.hpp>   // lifelines, bind_lifetime_to_parent, ignore_terminal_signals
#include <procpool/platform/posix/shm.hpp>        // the result ring's memory, wait_on_shared / wake_shared
#include <procpool/platform/posix/shared_mapping.hpp> // shared_buffer memory, descriptors sent with bytes
#include <procpool/platform/posix/library.hpp>    // load_library, find_symbol
#include <procpool/platform/posix/event_set.hpp>  // event sets for pool::native_handle (epoll + timerfd)
#include <procpool/platform/posix/zygote.hpp>     // shared_word, wait_child, apply_limits (per-task isolation, limits)

#endif // PROCPOOL_PLATFORM_POSIX_HPP
