// SPDX-License-Identifier: BSL-1.0
// procpool/detail/pool_impl.hpp: the pool's non-template members and the engine factory: what
// PROCPOOL_SEPARATE_COMPILATION compiles once (src.hpp) instead of in every file that includes pool.hpp.
#ifndef PROCPOOL_DETAIL_POOL_IMPL_HPP
#define PROCPOOL_DETAIL_POOL_IMPL_HPP

#include <procpool/config.hpp>
#include <procpool/detail/inline_engine.hpp>
#include <procpool/detail/make_engine.hpp>
#include <procpool/detail/process_engine.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/detail/worker_loop.hpp>
#include <procpool/detail/zygote.hpp>
#include <procpool/platform/platform.hpp>
#include <procpool/pool.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

PROCPOOL_BEGIN_NAMESPACE

PROCPOOL_DECL std::shared_ptr<detail::pool_engine> detail::make_engine(pool_options opts) {
    check_isolation_options(opts);
    if (opts.start == start_method::in_process) return std::make_shared<inline_engine>(std::move(opts));
    return std::make_shared<process_engine>(std::move(opts));
}

PROCPOOL_DECL void detail::throw_unknown_task(std::string_view name) {
    throw unknown_task(unknown_task_record(name).what);
}

PROCPOOL_DECL pool::pool(pool_options opts)
    : method_(opts.start), per_task_(opts.isolation == isolation_mode::per_task), owner_(platform::current_pid()) {
    if (const char* ch = platform::get_env(detail::worker_env); ch && !detail::serving_flag()) {
        // A spawned worker whose main() constructed a pool before serve_if_worker: say so, on both sides.
        std::string msg =
            "procpool: a pool was constructed in a spawned worker process before procpool::serve_if_worker(argc, "
            "argv) ran. Spawned workers re-run main(); make `procpool::serve_if_worker(argc, argv);` the first "
            "line of main(), before any pool is constructed.";
        detail::worker_channel chan(platform::adopt_channel(ch));
        chan.send(detail::make_frame(detail::frame_type::guard_missing, msg));
        std::fprintf(stderr, "%s\n", msg.c_str());
        platform::quick_exit_process(3);
    }
    if (opts.workers == 0) opts.workers = std::max(1u, std::thread::hardware_concurrency());
    engine_ = detail::make_engine(std::move(opts));
    engine_->start();
}

PROCPOOL_DECL pool::pool(detail::engine_tag, std::shared_ptr<detail::pool_engine> engine, start_method method)
    : method_(method), owner_(platform::current_pid()), engine_(std::move(engine)) {
    engine_->start();
}

PROCPOOL_DECL pool::~pool() {
    if (platform::current_pid() != owner_) return; // a forked copy: the workers are not ours
    try {
        shutdown(shutdown_mode::wait);
    } catch (...) {
    }
}

PROCPOOL_DECL void pool::enqueue(detail::job j) {
    check_owner();
    detail::check_shareable(j.shared(), engine_->remote());
    detail::callbacks_after run; // states a dispatch completed (a send to a dead worker...)
    engine_->submit(std::move(j));
}

PROCPOOL_DECL void pool::check_owner() const {
    if (platform::cached_pid() != owner_) // runs on every submit: no system call
        throw error("procpool: this pool belongs to process " + std::to_string(owner_) +
                    "; a forked worker cannot use its parent's pool. Construct a pool inside the task instead "
                    "(nested pools are supported).");
}

PROCPOOL_DECL void pool::shutdown(shutdown_mode mode) {
    check_owner();
    detail::callbacks_after run; // the done-callbacks of the tasks shutdown completed or cancelled
    engine_->shutdown(mode == shutdown_mode::cancel_pending);
}

PROCPOOL_DECL std::shared_ptr<const detail::context_snapshot> pool::capture_contexts() {
    auto& reg = detail::context_registry::instance();
    if (!engine_->remote() || reg.empty()) return nullptr;
    auto now = reg.capture();
    std::lock_guard lock(contexts_mutex_);
    if (!last_contexts_ || *last_contexts_ != now)
        last_contexts_ = std::make_shared<const detail::context_snapshot>(std::move(now));
    return last_contexts_;
}

PROCPOOL_DECL std::size_t detail::chunksize_for(const map_options& o, std::size_t automatic) {
    if (o.timeout.count() < 0)
        throw std::invalid_argument("procpool: map_options::timeout is negative; give a positive per-item limit, or "
                                    "0 for none.");
    if (o.timeout.count() == 0) return o.chunksize ? o.chunksize : automatic;
    if (o.chunksize > 1)
        throw std::invalid_argument("procpool: map_options::timeout is per item, so each item is sent alone; it "
                                    "cannot be combined with chunksize " + std::to_string(o.chunksize) +
                                    ". Leave chunksize at 0 (or 1), or use pool_options::timeout for a limit "
                                    "per chunk.");
    return 1;
}

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_POOL_IMPL_HPP
