// SPDX-License-Identifier: BSL-1.0
// procpool/detail/inline_engine.hpp: start_method::in_process: jobs run in the calling process, through the same
// frames, decoding and encoding a worker uses, so that serialization problems still show.
#ifndef PROCPOOL_DETAIL_INLINE_ENGINE_HPP
#define PROCPOOL_DETAIL_INLINE_ENGINE_HPP

#include <procpool/config.hpp>
#include <procpool/detail/engine.hpp>
#include <procpool/detail/job.hpp>
#include <procpool/detail/worker_loop.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/log.hpp>
#include <procpool/options.hpp>
#include <procpool/platform/platform.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/task.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// Runs jobs in the calling process through the same frames a worker gets (start_method::in_process).
class inline_engine final : public pool_engine, public std::enable_shared_from_this<inline_engine> {
public:
    explicit inline_engine(pool_options opts) : opts_(std::move(opts)) {}
    ~inline_engine() override {
        platform::close_handle(never_r_);
        platform::close_handle(never_w_);
    }
    inline_engine(const inline_engine&) = delete;
    inline_engine& operator=(const inline_engine&) = delete;

    void start() override {
        registry::instance().verify();
        context_registry::instance().verify();
        if (opts_.initializer) {
            if (auto err = run_hook(*opts_.initializer))
                throw initializer_error("procpool: the initializer \"" + opts_.initializer->name + "\" threw: " +
                                            err->type + ": " + err->what,
                                        exception_from_record(*err));
        }
    }

    // Threads may submit and shut down at once, as with every start method. Tasks run one at a time, as in one
    // worker (a task may submit to this pool from inside: the mutex is recursive), and shutdown waits for the
    // running one before the finalizer.
    void submit(job j) override {
        std::lock_guard lk(m_);
        if (closed_) throw pool_closed("procpool: submit on a pool that was shut down");
        j.state->owner = weak_from_this();
        const auto type = parse_frame_head(j.frame.data(), j.frame.size()).type;
        reader r(std::span<const std::byte>(j.frame).subspan(frame_header_size));
        const auto name = read_job_head(r).task;
        std::vector<std::byte> out;
        if (type == frame_type::task) {
            run_call(name, std::span(j.frame).subspan(frame_header_size + r.offset()), out);
        } else {
            auto payload = std::span<const std::byte>(j.frame).subspan(frame_header_size);
            batch_items items(r);
            const task_entry* entry = registry::instance().find(name);
            writer(out).write(items.size());
            items.for_each(payload, [&](std::span<const std::byte> item) { run_call(entry, name, item, out); });
        }
        j.state->deliver_payload(out);
    }

    bool wait(state_base& s, std::optional<std::chrono::steady_clock::time_point>) override {
        return s.done.load(std::memory_order_acquire);
    }
    std::size_t wait_any(std::span<state_base* const> states) override {
        for (std::size_t i = 0; i < states.size(); ++i)
            if (states[i]->done.load(std::memory_order_acquire)) return i;
        return 0;
    }
    bool cancel(state_base&) override { return false; }
    void interrupt() override {} // nothing waits in here: a job is done when submit returns
    [[nodiscard]] std::size_t size() const noexcept override { return 0; }
    [[nodiscard]] std::vector<long> pids() const override { return {}; }
    [[nodiscard]] bool remote() const noexcept override { return false; } // the caller's state is live here
    /// Jobs are done when submit returns, so there is never anything to poll for: a channel end nothing writes
    /// to, so that an event loop written for every start method works here too.
    [[nodiscard]] platform::native_handle native_handle() override {
        std::lock_guard lk(m_);
        if (never_r_ == platform::invalid_handle) platform::make_channel(never_r_, never_w_);
        return never_r_;
    }

    void shutdown(bool = false) override {
        std::lock_guard lk(m_);
        if (closed_) return;
        closed_ = true;
        if (opts_.finalizer) {
            if (auto err = run_hook(*opts_.finalizer))
                log(log_level::info, [&] { return "finalizer threw: " + err->type + ": " + err->what; });
        }
    }

private:
    pool_options opts_;
    std::recursive_mutex m_;
    bool closed_ = false;
    platform::native_handle never_r_ = platform::invalid_handle, never_w_ = platform::invalid_handle;
};

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_INLINE_ENGINE_HPP
