// SPDX-License-Identifier: BSL-1.0
// procpool/detail/future_impl.hpp: the non-template part of future.hpp (a state's completion and callbacks, waiting
// on many states): inline in header-only mode, compiled once in src.hpp with PROCPOOL_SEPARATE_COMPILATION.
#ifndef PROCPOOL_DETAIL_FUTURE_IMPL_HPP
#define PROCPOOL_DETAIL_FUTURE_IMPL_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/detail/per_thread.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/log.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

PROCPOOL_DECL std::vector<std::function<void()>>& pending_callbacks() noexcept {
    struct tag {};
    return per_thread<std::vector<std::function<void()>>, tag>();
}

PROCPOOL_DECL void run_callback(std::function<void()>& f) noexcept {
    try {
        f();
    } catch (const std::exception& e) {
        log(log_level::info, [&] { return std::string("an on_done callback threw (ignored): ") + e.what(); });
    } catch (...) {
        log(log_level::info, [] { return std::string("an on_done callback threw a non-standard exception (ignored)"); });
    }
}

PROCPOOL_DECL void run_pending_callbacks() noexcept {
    auto& pending = pending_callbacks();
    while (!pending.empty()) {
        std::vector<std::function<void()>> batch;
        batch.swap(pending); // a callback may complete more states (and add to the list) while these run
        for (auto& f : batch) run_callback(f);
    }
}

PROCPOOL_DECL std::exception_ptr exception_from_record(const exception_record& rec) {
    try {
        throw_exception_record(rec);
    } catch (...) {
        return std::current_exception();
    }
}

PROCPOOL_DECL std::exception_ptr read_task_error(reader& r) {
    return exception_from_record(r.read<exception_record>());
}

PROCPOOL_DECL void throw_batch_count(std::size_t expected, std::uint64_t got, std::size_t offset) {
    throw protocol_error("procpool: corrupt result: batch of " + std::to_string(expected) + " answered with " +
                             std::to_string(got) + " outcomes",
                         offset);
}

struct state_base::hook_list {
    std::vector<std::pair<completion_listener*, std::size_t>> listeners;
    std::vector<std::function<void()>> callbacks;
};

PROCPOOL_DECL state_base::~state_base() { delete hooks_; }

PROCPOOL_DECL void state_base::fail(std::exception_ptr e) {
    error = std::move(e);
    complete();
}

PROCPOOL_DECL void state_base::deliver_payload(std::span<const std::byte> payload) {
    try {
        reader r(payload);
        deliver(r);
        if (r.remaining() != 0)
            throw protocol_error("procpool: corrupt result: " + std::to_string(r.remaining()) + " trailing bytes",
                                 r.offset());
    } catch (...) {
        error = std::current_exception();
    }
    complete();
}

PROCPOOL_DECL void state_base::complete() noexcept {
    std::unique_ptr<hook_list> h;
    {
        std::lock_guard lk(hooks_lock_);
        done.store(true, std::memory_order_release);
        h.reset(std::exchange(hooks_, nullptr));
        if (h)
            for (auto& [l, tag] : h->listeners) l->completed(tag);
    }
    if (!h || h->callbacks.empty()) return;
    auto& pending = pending_callbacks();
    for (auto& f : h->callbacks) pending.push_back(std::move(f));
}

PROCPOOL_DECL bool state_base::listen(completion_listener* l, std::size_t tag) {
    std::lock_guard lk(hooks_lock_);
    if (done.load(std::memory_order_relaxed)) return false;
    hooks().listeners.emplace_back(l, tag);
    return true;
}

PROCPOOL_DECL void state_base::unlisten(completion_listener* l) noexcept {
    std::lock_guard lk(hooks_lock_);
    if (hooks_) std::erase_if(hooks_->listeners, [&](const auto& x) { return x.first == l; });
}

PROCPOOL_DECL bool state_base::add_callback(std::function<void()>& f) {
    std::lock_guard lk(hooks_lock_);
    if (done.load(std::memory_order_relaxed)) return false;
    hooks().callbacks.push_back(std::move(f));
    return true;
}

PROCPOOL_DECL state_base::hook_list& state_base::hooks() {
    if (!hooks_) hooks_ = new hook_list;
    return *hooks_;
}

PROCPOOL_DECL void signal_state::deliver(reader&) {}

PROCPOOL_DECL void wait_state(state_base& s, std::optional<std::chrono::steady_clock::time_point> deadline) {
    if (s.done.load(std::memory_order_acquire)) return;
    callbacks_after run;
    if (auto e = s.owner.lock()) {
        e->wait(s, deadline);
        return;
    }
    // The pool is gone and nothing will complete this state (the pool fails every state before it goes).
    if (!s.done.load(std::memory_order_acquire))
        s.fail(std::make_exception_ptr(pool_closed("procpool: the pool was destroyed before task \"" + s.task +
                                                   "\" completed")));
}

PROCPOOL_DECL completion_queue::~completion_queue() {
    for (auto& s : watched_)
        if (s) s->unlisten(this);
}

PROCPOOL_DECL void completion_queue::watch(std::shared_ptr<state_base> s, std::size_t tag) {
    auto e = s->owner.lock();
    if (!e && !s->done.load(std::memory_order_acquire)) wait_state(*s); // fails it: nothing would complete it
    std::unique_lock lk(m_);
    ++open_;
    if (!e || s->done.load(std::memory_order_acquire)) {
        ready_.push_back(tag);
        return;
    }
    if (tag >= watched_.size()) {
        watched_.resize(tag + 1);
        engine_of_.resize(tag + 1, 0);
    }
    std::size_t k = 0;
    while (k < engines_.size() && engines_[k].raw != e.get()) ++k;
    if (k == engines_.size()) engines_.push_back(entry{e, e.get(), 0, std::make_unique<signal_state>()});
    ++engines_[k].pending; // counted before listen(): completed() may run as soon as it is registered
    engine_of_[tag] = k;
    watched_[tag] = s; // kept alive while registered: the caller may drop its future meanwhile
    lk.unlock();       // listen() takes the state's lock, which completed() holds when it takes m_
    if (s->listen(this, tag)) return;
    lk.lock();
    --engines_[k].pending;
    watched_[tag].reset();
    ready_.push_back(tag);
}

PROCPOOL_DECL void completion_queue::reserve(std::size_t n) {
    std::lock_guard lk(m_);
    if (n > watched_.size()) {
        watched_.resize(n);
        engine_of_.resize(n, 0);
    }
}

PROCPOOL_DECL std::optional<std::size_t> completion_queue::next() {
    callbacks_after run;
    std::unique_lock lk(m_);
    for (;;) {
        if (!ready_.empty()) {
            auto tag = ready_.front();
            ready_.pop_front();
            if (tag < watched_.size()) watched_[tag].reset(); // completed: no longer registered with the state
            --open_;
            return tag;
        }
        if (open_ == 0) return std::nullopt;
        std::vector<std::pair<std::shared_ptr<engine>, signal_state*>> active;
        std::vector<std::shared_ptr<state_base>> orphans;
        for (std::size_t k = 0; k < engines_.size(); ++k) {
            auto& x = engines_[k];
            if (x.pending == 0) continue;
            x.signal->done.store(false, std::memory_order_relaxed); // under m_: completed() sets it after this
            if (auto e = x.e.lock()) {
                active.emplace_back(std::move(e), x.signal.get());
            } else { // the pool is gone without failing these (it fails every state first): fail them here
                for (std::size_t t = 0; t < watched_.size(); ++t)
                    if (watched_[t] && engine_of_[t] == k) orphans.push_back(watched_[t]);
            }
        }
        lk.unlock();
        for (auto& o : orphans) wait_state(*o);
        if (orphans.empty()) drive(active);
        lk.lock();
    }
}

PROCPOOL_DECL std::size_t completion_queue::open() const {
    std::lock_guard lk(m_);
    return open_;
}

PROCPOOL_DECL void completion_queue::completed(std::size_t tag) noexcept {
    std::lock_guard lk(m_);
    ready_.push_back(tag);
    --engines_[engine_of_[tag]].pending;
    for (auto& x : engines_) x.signal->done.store(true, std::memory_order_release);
}

PROCPOOL_DECL void completion_queue::drive(const std::vector<std::pair<std::shared_ptr<engine>, signal_state*>>& active) {
    if (active.size() == 1) {
        active[0].first->wait(*active[0].second, std::nullopt);
        return;
    }
    std::vector<std::exception_ptr> errors(active.size());
    auto stop_all = [&](std::size_t except) noexcept {
        for (auto& x : active) x.second->done.store(true, std::memory_order_release);
        for (std::size_t k = 0; k < active.size(); ++k)
            if (k != except) active[k].first->interrupt();
    };
    auto run = [&](std::size_t i) noexcept {
        try {
            active[i].first->wait(*active[i].second, std::nullopt);
        } catch (...) {
            errors[i] = std::current_exception();
        }
        run_pending_callbacks(); // on this thread, which completed them
        stop_all(i);
    };
    std::vector<std::thread> drivers;
    drivers.reserve(active.size() - 1);
    try {
        for (std::size_t i = 1; i < active.size(); ++i) drivers.emplace_back(run, i);
    } catch (...) { // no thread for one of them: stop the ones started, and report it
        stop_all(active.size());
        for (auto& t : drivers) t.join();
        throw;
    }
    run(0);
    for (auto& t : drivers) t.join();
    for (auto& x : errors)
        if (x) std::rethrow_exception(x);
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_FUTURE_IMPL_HPP
