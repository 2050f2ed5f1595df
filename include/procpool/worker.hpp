// SPDX-License-Identifier: BSL-1.0
// procpool/worker.hpp: serve_if_worker, the call that makes a spawned process a worker.
#ifndef PROCPOOL_WORKER_HPP
#define PROCPOOL_WORKER_HPP

#include <procpool/config.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/detail/worker_loop.hpp>
#include <procpool/platform/platform.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

PROCPOOL_BEGIN_NAMESPACE

/// Call first in main(): in a process that procpool started as a worker it serves tasks and exits; in any
/// other process it returns at once. Spawned workers run static initialization and then main(), so a pool
/// constructed before this call would start workers recursively: procpool detects that and says so.
/// \code
/// int main(int argc, char** argv) {
///     procpool::serve_if_worker(argc, argv);
///     ...
/// }
/// \endcode
inline void serve_if_worker(int argc, char** argv) {
    if (argc < 3 || !argv || !argv[1]) return;
    bool worker = std::strcmp(argv[1], detail::worker_flag) == 0;
    [[maybe_unused]] bool server = std::strcmp(argv[1], detail::forkserver_flag) == 0;
    if (!worker && !server) return;
    // Processes the tasks start must not inherit the channel (see adopt_channel), nor think they are workers.
    auto channel = platform::adopt_channel(platform::get_env(detail::worker_env));
    platform::unset_env(detail::worker_env);
    if (channel == platform::invalid_handle) {
        std::fprintf(stderr, "procpool: %s given but no worker channel was inherited; exiting\n", argv[1]);
        std::exit(2);
    }
    auto parent = static_cast<platform::pid_type>(std::strtoll(argv[2], nullptr, 10));
    auto lifeline = platform::adopt_lifeline(argc > 3 ? argv[3] : nullptr);
    if (!platform::bind_lifetime_to_parent(parent, lifeline)) std::exit(0);
    platform::ignore_terminal_signals();
#if PROCPOOL_POSIX
    if (server) detail::run_fork_template(channel, parent, true, lifeline);
#endif
    std::exit(detail::serve_channel(channel));
}

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_WORKER_HPP
