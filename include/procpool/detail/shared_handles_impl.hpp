// SPDX-License-Identifier: BSL-1.0
// procpool/detail/shared_handles_impl.hpp: the non-template part of shared_handles.hpp (the table of mappings, a
// buffer's handle on the wire, share frames): inline in header-only mode, compiled once in src.hpp with
// PROCPOOL_SEPARATE_COMPILATION.
#ifndef PROCPOOL_DETAIL_SHARED_HANDLES_IMPL_HPP
#define PROCPOOL_DETAIL_SHARED_HANDLES_IMPL_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/detail/shared_handles.hpp>
#include <procpool/error.hpp>
#include <procpool/platform/shared_mapping.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

PROCPOOL_DECL collect_shared::collect_shared(std::vector<shared_ref>& into, bool by_value) noexcept
    : prev_(shared_sink()), prev_by_value_(shared_by_value()) {
    shared_sink() = &into;
    shared_by_value() = by_value;
}
PROCPOOL_DECL collect_shared::~collect_shared() {
    shared_sink() = prev_;
    shared_by_value() = prev_by_value_;
}

PROCPOOL_DECL void shared_table::add(const std::shared_ptr<shared_core>& c, bool read_only) {
    std::lock_guard lk(m_);
    mapped_[shared_key(c->id, read_only)] = c;
    ++maps_;
}

PROCPOOL_DECL std::shared_ptr<shared_core> shared_table::find(std::uint64_t id, bool read_only) {
    std::lock_guard lk(m_);
    if (read_only)
        if (auto it = mapped_.find(shared_key(id, true)); it != mapped_.end())
            if (auto c = it->second.lock()) return c;
    if (auto it = mapped_.find(shared_key(id, false)); it != mapped_.end()) return it->second.lock();
    return nullptr;
}

PROCPOOL_DECL void shared_table::erase(const shared_core* c) noexcept {
    std::lock_guard lk(m_);
    for (bool ro : {false, true}) {
        auto it = mapped_.find(shared_key(c->id, ro));
        if (it != mapped_.end() && (it->second.expired() || it->second.lock().get() == c)) mapped_.erase(it);
    }
    drops_.fetch_add(1, std::memory_order_release);
}

PROCPOOL_DECL void shared_table::hold(std::shared_ptr<shared_core> c, bool read_only) {
    std::lock_guard lk(m_);
    // A mapping it replaces is unmapped after the lock is released (its destructor erases it from the table).
    std::swap(held_[shared_key(c->id, read_only)], c);
}

PROCPOOL_DECL void shared_table::release(std::uint64_t key) {
    std::shared_ptr<shared_core> c; // unmapped after the lock is released (its destructor erases it from the table)
    std::lock_guard lk(m_);
    if (auto it = held_.find(key); it != held_.end()) {
        c = std::move(it->second);
        held_.erase(it);
    }
}

PROCPOOL_DECL shared_core::~shared_core() {
    // A forked copy of the application did not inherit the mapping (MADV_DONTFORK): its range there is a hole the
    // child may have filled since, which munmap would tear out. Only the descriptors are the child's to close.
    if (inherited || platform::cached_pid() == mapped_by) platform::unmap_shared_memory(base, bytes);
    for (auto h : {handle, ro_handle}) {
        if (h == platform::invalid_shm_object) continue;
#if !PROCPOOL_WINDOWS
        release_handle(h);
#endif
        platform::close_shared_memory(h);
    }
    if (id) shared_table::instance().erase(this);
}

PROCPOOL_DECL std::shared_ptr<shared_core> make_shared_core(platform::shm_object h, std::size_t bytes, bool writable,
                                                           std::uint64_t id, bool inherited) {
    auto c = std::make_shared<shared_core>();
    c->handle = h; // closed by the core from here on, even if mapping fails
    shared_core::own(h);
    c->bytes = bytes;
    c->writable = writable;
    c->base = platform::map_shared_memory(h, bytes, writable, inherited);
    c->inherited = inherited;
    c->id = id ? id : shared_table::instance().next_id();
    shared_table::instance().add(c, !writable);
    return c;
}

PROCPOOL_DECL void check_shareable(const std::vector<shared_ref>& refs, bool remote) {
    if (!refs.empty() && remote && !platform::can_share_with_workers)
        throw std::logic_error("procpool: a shared_buffer or shared_array cannot be sent to a worker process on this "
                               "system yet (handing its memory to a worker is not implemented). Use "
                               "start_method::in_process, or pass the data by value.");
}

PROCPOOL_DECL void write_shared(writer& w, const std::shared_ptr<shared_core>& c, bool read_only) {
    const bool contents = c && shared_by_value();
    w.write(c ? c->id : std::uint64_t{0});
    w.write(static_cast<std::uint64_t>(c ? c->bytes : 0));
    w.write(static_cast<std::uint8_t>((read_only ? shared_flag_read_only : 0) | (contents ? shared_flag_contents : 0)));
    if (contents) w.write_bytes(c->base, c->bytes);
    else if (c && shared_sink()) shared_sink()->push_back({c, read_only});
}

PROCPOOL_DECL std::shared_ptr<shared_core> read_shared(reader& r, bool want_read_only, std::size_t element_size) {
    const auto at = r.offset();
    const auto id = r.read<std::uint64_t>();
    const auto bytes = r.read<std::uint64_t>();
    const auto flags = r.read<std::uint8_t>();
    if (flags > (shared_flag_read_only | shared_flag_contents))
        throw protocol_error("procpool: corrupt shared buffer handle: flags " + std::to_string(flags), at);
    if ((flags & shared_flag_read_only) && !want_read_only)
        throw protocol_error("procpool: a read-only shared buffer was decoded as a writable one", at);
    if (id == 0) {
        if (bytes != 0 || flags & shared_flag_contents)
            throw protocol_error("procpool: corrupt shared buffer handle: an empty buffer of " +
                                     std::to_string(bytes) + " bytes", at);
        return nullptr;
    }
    if (flags & shared_flag_contents) { // a copy (an MPI pool's task): new memory of this process
        if (bytes % element_size || bytes > r.remaining())
            throw protocol_error("procpool: a shared buffer's contents of " + std::to_string(bytes) +
                                     " bytes are not a whole number of " + std::to_string(element_size) +
                                     "-byte elements, or more than the frame holds (" + std::to_string(r.remaining()) +
                                     " bytes)",
                                 at);
        const auto n = static_cast<std::size_t>(bytes);
        auto c = make_shared_core(platform::create_shared_memory(n), n, true);
        r.read_bytes(c->base, n, "shared buffer contents");
        return c;
    }
    auto c = shared_table::instance().find(id, want_read_only);
    if (!c)
        throw protocol_error("procpool: shared buffer " + std::to_string(id) + " is not mapped in process " +
                                 std::to_string(platform::current_pid()) +
                                 ": a handle decodes only where its buffer was created or sent with a task (a "
                                 "worker can return only a buffer it received)",
                             at);
    if (c->bytes != bytes)
        throw protocol_error("procpool: shared buffer " + std::to_string(id) + " is " + std::to_string(c->bytes) +
                                 " bytes here, but its handle says " + std::to_string(bytes),
                             at);
    if (bytes % element_size)
        throw protocol_error("procpool: shared buffer " + std::to_string(id) + " of " + std::to_string(bytes) +
                                 " bytes is not a whole number of " + std::to_string(element_size) + "-byte elements",
                             at);
    if (!want_read_only && !c->writable)
        throw protocol_error("procpool: shared buffer " + std::to_string(id) + " is mapped read-only here", at);
    return c;
}

PROCPOOL_DECL void accept_share(std::span<const std::byte> payload, platform::shm_object h) {
    share_msg m;
    try {
        m = decode<share_msg>(payload);
    } catch (...) {
        platform::close_shared_memory(h);
        throw;
    }
#if PROCPOOL_WINDOWS
    h = platform::shm_object_from_value(m.handle);
#endif
    if (h == platform::invalid_shm_object)
        throw protocol_error("procpool: a shared buffer came without its memory (the system dropped the descriptor: "
                             "too many open files?)",
                             0);
    const auto size = platform::shared_memory_size(h);
    if (m.id == 0 || size < 0 || static_cast<std::uint64_t>(size) < m.bytes) {
        if (size >= 0) platform::close_shared_memory(h); // else it is not a mapping: not ours to close (Windows)
        throw protocol_error("procpool: shared buffer " + std::to_string(m.id) + " announced as " +
                                 std::to_string(m.bytes) + " bytes came with memory of " + std::to_string(size),
                             0);
    }
    // Inherited by fork: under isolation_mode::per_task the task runs in a process this worker forks.
    shared_table::instance().hold(
        make_shared_core(h, static_cast<std::size_t>(m.bytes), m.read_only == 0, m.id, /*inherited=*/true),
        m.read_only != 0);
}

PROCPOOL_DECL void drop_shares(std::span<const std::byte> payload) {
    for (auto key : decode<std::vector<std::uint64_t>>(payload)) shared_table::instance().release(key);
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_SHARED_HANDLES_IMPL_HPP
