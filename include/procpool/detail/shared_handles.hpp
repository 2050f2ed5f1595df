// SPDX-License-Identifier: BSL-1.0
// procpool/detail/shared_handles.hpp: how a shared_buffer crosses to a worker. Its value on the wire is a handle
// (buffer id, size, read-only flag); the memory itself goes out of band: the parent sends a worker a `share` frame
// with the buffer's descriptor attached (SCM_RIGHTS; on Windows the frame holds the value of a handle the parent
// duplicated into the worker's process) before the first job that uses it, and an `unshare` frame
// once the parent has dropped it, so the worker unmaps it. Each process keeps a table of the buffers it has
// mapped (id -> mapping), which decoding looks up.
#ifndef PROCPOOL_DETAIL_SHARED_HANDLES_HPP
#define PROCPOOL_DETAIL_SHARED_HANDLES_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/detail/handles.hpp>
#include <procpool/error.hpp>
#include <procpool/platform/shared_mapping.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// One mapping of shared memory in this process, owned by the shared_buffer / shared_array values that view it
/// (and, in a worker, by its cache until the parent drops the buffer).
struct shared_core {
    std::uint64_t id = 0;
    std::size_t bytes = 0;
    void* base = nullptr;
    platform::shm_object handle = platform::invalid_shm_object;
    platform::shm_object ro_handle = platform::invalid_shm_object; // what a read-only view sends (made once)
    bool writable = true;
    bool inherited = false; // mapped for the processes this one forks too (see ~shared_core)
    platform::pid_type mapped_by = platform::cached_pid();
    std::mutex ro_mutex; // pools in two threads may send the same buffer read-only at once

    shared_core() = default;
    shared_core(const shared_core&) = delete;
    shared_core& operator=(const shared_core&) = delete;
    PROCPOOL_DECL ~shared_core();

    /// The handle to send for a view (read-only or not).
    platform::shm_object handle_for(bool read_only) {
        if (!read_only || !writable) return handle;
        std::lock_guard lk(ro_mutex);
        if (ro_handle == platform::invalid_shm_object) {
            ro_handle = platform::read_only_handle(handle);
            own(ro_handle);
        }
        return ro_handle;
    }
    static void own([[maybe_unused]] platform::shm_object h) {
#if !PROCPOOL_WINDOWS
        own_handle(h); // a process forked from this one (a fork template) closes it: it must not keep the memory
#endif
    }
};

/// Selects the constructor of a shared view from its mapping.
struct shared_view_tag {};

/// A buffer an encoded job refers to, and whether as a read-only view.
struct shared_ref {
    std::shared_ptr<shared_core> core;
    bool read_only = false;
};

/// Key of a mapping in a process's table: the buffer's id and whether the mapping is read-only.
inline std::uint64_t shared_key(std::uint64_t id, bool read_only) noexcept { return (id << 1) | (read_only ? 1 : 0); }

/// The buffers mapped in this process. A forked child starts with an empty one (its parent's mappings are not
/// inherited: they are MADV_DONTFORK).
class shared_table {
public:
    static shared_table& instance() {
        auto& t = slot();
        auto* p = t.load(std::memory_order_acquire);
        if (!p || p->pid_ != platform::cached_pid()) {
            static std::mutex m;
            std::lock_guard lk(m);
            p = t.load(std::memory_order_relaxed);
            if (!p || p->pid_ != platform::cached_pid()) {
                p = new shared_table; // never destroyed (a buffer in a static outlives statics); a parent's is left
                t.store(p, std::memory_order_release); // behind in a forked child, whose copies of it are not ours
            }
        }
        return *p;
    }

    /// A new id, unique across the processes of a pool (the process id is in it).
    std::uint64_t next_id() noexcept {
        return (static_cast<std::uint64_t>(pid_) << 32) | (counter_.fetch_add(1, std::memory_order_relaxed) + 1);
    }

    PROCPOOL_DECL void add(const std::shared_ptr<shared_core>& c, bool read_only);
    /// The mapping of buffer `id` for a view, or null.
    PROCPOOL_DECL std::shared_ptr<shared_core> find(std::uint64_t id, bool read_only);
    PROCPOOL_DECL void erase(const shared_core* c) noexcept;

    /// In a worker: keeps a mapping the parent sent until the parent says it dropped the buffer.
    PROCPOOL_DECL void hold(std::shared_ptr<shared_core> c, bool read_only);
    PROCPOOL_DECL void release(std::uint64_t key);

    /// How many buffers this process has dropped (a link compares it to know when to look for expired ones).
    [[nodiscard]] std::uint64_t drops() const noexcept { return drops_.load(std::memory_order_acquire); }
    /// How many mappings this process has made (the tests check that a buffer sent again is not mapped again).
    [[nodiscard]] std::uint64_t maps() const noexcept {
        std::lock_guard lk(m_);
        return maps_;
    }

    /// In a task process a per-task worker just forked (single-threaded): the worker's table, and the mappings it
    /// holds (inherited, see map_shared_memory), are this process's too.
    static void adopt_in_forked_child() noexcept {
        if (auto* p = slot().load(std::memory_order_acquire)) {
            new (&p->m_) std::mutex; // another thread of the worker may have held it at fork time
            p->pid_ = platform::cached_pid();
        }
    }

private:
    static std::atomic<shared_table*>& slot() noexcept {
        static std::atomic<shared_table*> t{nullptr};
        return t;
    }
    shared_table() : pid_(platform::cached_pid()) {}
    platform::pid_type pid_;
    mutable std::mutex m_;
    std::unordered_map<std::uint64_t, std::weak_ptr<shared_core>> mapped_;
    std::unordered_map<std::uint64_t, std::shared_ptr<shared_core>> held_;
    std::atomic<std::uint32_t> counter_{0};
    std::atomic<std::uint64_t> drops_{0};
    std::uint64_t maps_ = 0;
};


/// Maps `h` (taking it) as a new buffer of this process. \throws std::system_error.
PROCPOOL_DECL std::shared_ptr<shared_core> make_shared_core(platform::shm_object h, std::size_t bytes, bool writable,
                                                     std::uint64_t id = 0, bool inherited = false);

/// Where the buffers an encoding refers to are collected: set while a job's arguments are encoded, so the job
/// keeps them alive and its worker is sent their memory first. Elsewhere (a result, in_process) only ids are written.
inline std::vector<shared_ref>*& shared_sink() noexcept {
    static thread_local std::vector<shared_ref>* sink = nullptr;
    return sink;
}

/// Set while a job is encoded for workers on other machines (an MPI pool): shared buffers are written with their
/// contents, and the task gets a copy, instead of a handle to memory that exists only here.
inline bool& shared_by_value() noexcept {
    static thread_local bool by_value = false;
    return by_value;
}

/// Collects the buffers encoded while it lives into `into` (or, `by_value`, writes their contents instead).
class collect_shared {
public:
    PROCPOOL_DECL explicit collect_shared(std::vector<shared_ref>& into, bool by_value = false) noexcept;
    PROCPOOL_DECL ~collect_shared();
    collect_shared(const collect_shared&) = delete;
    collect_shared& operator=(const collect_shared&) = delete;

private:
    std::vector<shared_ref>* prev_;
    bool prev_by_value_;
};

/// A handle's flags: a read-only view; the contents follow (a copy, see shared_by_value).
inline constexpr std::uint8_t shared_flag_read_only = 1, shared_flag_contents = 2;

/// \throws std::logic_error if `refs` must go to workers that cannot get them (not implemented on this system).
PROCPOOL_DECL void check_shareable(const std::vector<shared_ref>& refs, bool remote);

/// Writes a buffer's handle, and collects it when a job is being encoded.
PROCPOOL_DECL void write_shared(writer& w, const std::shared_ptr<shared_core>& c, bool read_only);

/// Reads a buffer's handle and finds its mapping in this process. Null for an empty buffer.
/// \throws protocol_error when the handle names no buffer mapped here, or not with that size or access.
PROCPOOL_DECL std::shared_ptr<shared_core> read_shared(reader& r, bool want_read_only, std::size_t element_size);

// ---- the wire: share / unshare frames -----------------------------------------------------------------------------

/// A `share` frame's payload; the buffer's descriptor comes with the frame (POSIX), or is in it (Windows).
struct share_msg {
    std::uint64_t id = 0;
    std::uint64_t bytes = 0;
    std::uint8_t read_only = 0;
#if PROCPOOL_WINDOWS
    std::uint64_t handle = 0; // the mapping's handle in the worker's process (platform::give_shared_memory)
#endif
};

/// A frame to send, with the handle it carries and the buffer that must live until it is written.
struct share_out {
    std::vector<std::byte> frame;
    platform::shm_object handle;
    std::shared_ptr<const void> keep;
};

/// The parent's side, per worker: which buffers the worker has mapped (sent once each), and telling it to drop
/// those the parent no longer holds.
class shared_sender {
public:
    /// The frames that must reach the worker before a job that refers to `refs`: unshare for buffers dropped since,
    /// share for those it has not been sent. `give` (Windows) puts a handle into the worker's process and returns
    /// its value there. When a buffer cannot be sent, `failed` says why and the frames made so far are returned
    /// (they must still be sent; the job must not be): the buffer is not counted as sent, a later job tries again.
    template <class MakeFrame, class Give>
    std::vector<share_out> before_job(const std::vector<shared_ref>& refs, MakeFrame&& make_frame,
                                      [[maybe_unused]] const Give& give, std::exception_ptr& failed) {
        std::vector<share_out> out;
        auto& table = shared_table::instance();
        if (!sent_.empty() && table.drops() != drops_seen_) {
            drops_seen_ = table.drops();
            std::vector<std::uint64_t> gone;
            for (auto it = sent_.begin(); it != sent_.end();) {
                if (it->second.expired()) {
                    gone.push_back(it->first);
                    it = sent_.erase(it);
                } else {
                    ++it;
                }
            }
            if (!gone.empty()) out.push_back({make_frame(true, gone), platform::invalid_shm_object, nullptr});
        }
        for (const auto& r : refs) {
            const bool ro = r.read_only || !r.core->writable;
            const auto key = shared_key(r.core->id, ro);
            if (!sent_.try_emplace(key, r.core).second) continue;
            try {
                share_msg m{r.core->id, r.core->bytes, static_cast<std::uint8_t>(ro)};
                auto h = r.core->handle_for(ro);
#if PROCPOOL_WINDOWS
                m.handle = give(h); // the worker's own handle now: nothing rides with the frame
                h = platform::invalid_shm_object;
#endif
                out.push_back({make_frame(false, m), h, r.core});
            } catch (...) {
                sent_.erase(key);
                failed = std::current_exception();
                break;
            }
        }
        return out;
    }
    /// Whether the worker was sent any buffer (it may have some to drop).
    [[nodiscard]] bool has_sent() const noexcept { return !sent_.empty(); }
    /// Whether this process dropped a buffer since before_job last looked, while the worker maps some.
    [[nodiscard]] bool drops_pending() const noexcept {
        return !sent_.empty() && shared_table::instance().drops() != drops_seen_;
    }
    /// The worker is gone: a replacement has mapped nothing.
    void clear() noexcept { sent_.clear(); }

private:
    std::unordered_map<std::uint64_t, std::weak_ptr<shared_core>> sent_;
    std::uint64_t drops_seen_ = 0;
};

/// In a worker: maps the buffer a `share` frame announces, whose descriptor `h` came with it (taken; on Windows
/// the frame holds the handle). \throws protocol_error when it came without one or the memory is smaller than
/// announced.
PROCPOOL_DECL void accept_share(std::span<const std::byte> payload,
                         platform::shm_object h = platform::invalid_shm_object);

/// In a worker: the parent dropped these buffers (keys); the worker's mappings go once its tasks hold none.
PROCPOOL_DECL void drop_shares(std::span<const std::byte> payload);

} // namespace detail

PROCPOOL_END_NAMESPACE

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/shared_handles_impl.hpp>
#endif

#endif // PROCPOOL_DETAIL_SHARED_HANDLES_HPP
