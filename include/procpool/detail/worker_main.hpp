// SPDX-License-Identifier: BSL-1.0
// procpool/detail/worker_main.hpp: serve_if_worker's definition: a worker process's start (channel, lifetime,
// then the fork template or the worker loop). With PROCPOOL_SEPARATE_COMPILATION only src.hpp includes it.
#ifndef PROCPOOL_DETAIL_WORKER_MAIN_HPP
#define PROCPOOL_DETAIL_WORKER_MAIN_HPP

#include <procpool/config.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/detail/worker_loop.hpp>
#include <procpool/platform/platform.hpp>
#include <procpool/worker.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

PROCPOOL_BEGIN_NAMESPACE

PROCPOOL_DECL void serve_if_worker(int argc, char** argv) {
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

#endif // PROCPOOL_DETAIL_WORKER_MAIN_HPP
