// SPDX-License-Identifier: BSL-1.0
// procpool/detail/worker_loop.hpp: the worker's side: its channel (worker_channel), running one call (run_call), the
// loop from hello through setup to retire (serve_channel), and the fork template's loop (run_fork_template).
#ifndef PROCPOOL_DETAIL_WORKER_LOOP_HPP
#define PROCPOOL_DETAIL_WORKER_LOOP_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/context.hpp>
#include <procpool/detail/handles.hpp>
#include <procpool/detail/result_ring.hpp>
#include <procpool/detail/shared_handles.hpp>
#include <procpool/detail/spin.hpp>
#include <procpool/error.hpp>
#include <procpool/log.hpp>
#include <procpool/per_process.hpp>
#include <procpool/plugin.hpp>
#include <procpool/platform/platform.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/detail/zygote.hpp>
#include <procpool/task.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// True while this process is serving as a worker (so a pool constructed from a task is a nested pool).
inline bool& serving_flag() {
    static bool serving = false;
    return serving;
}

/// Blocking frame I/O on the worker's side of the channel. Reads into a 64 KiB buffer and cuts frames out of it:
/// one system call brings a small frame's header and payload, or many frames when the pool sends ahead.
/// A task frame larger than the buffer is streamed: the caller decodes it with reader(payload, channel), which
/// reads long runs (a large vector or string argument) straight from the channel into the argument.
class worker_channel final : public byte_source {
public:
    explicit worker_channel(platform::native_handle fd) : fd_(fd) {}
    worker_channel(const worker_channel&) = delete;
    worker_channel& operator=(const worker_channel&) = delete;
    ~worker_channel() {
        std::free(large_);
        for (auto h : handles_) platform::close_handle(h);
    }
    [[nodiscard]] platform::native_handle handle() const noexcept { return fd_; }

    /// Sends a frame: into the result ring once use_ring() was called (a large one over the channel, with a
    /// `ring` record in the ring where it belongs), else over the channel. False when the parent is gone.
    bool send(std::span<const std::byte> frame) {
        if (!ring_) return platform::write_all(fd_, frame.data(), frame.size());
        const bool fits = frame.size() <= ring_max_record;
        const auto record = fits ? frame : ring_frame();
        if (!make_room(record.size())) return false;
        auto& c = ring_->control();
        std::memcpy(ring_->at(ring_head_), record.data(), record.size());
        ring_head_ += record.size();
        c.head.store(ring_head_, std::memory_order_seq_cst);
        if (!fits) return platform::write_all(fd_, frame.data(), frame.size()); // its bytes wake the parent
        if (c.parent_sleeping.load(std::memory_order_seq_cst) && c.parent_sleeping.exchange(0)) {
            const auto bell = ring_frame(); // the parent is about to block in poll: wake it through the channel
            return platform::write_all(fd_, bell.data(), bell.size());
        }
        return true;
    }

    /// Tells the parent which process runs the job started last (isolation_mode::per_task), so a timeout kills it.
    void publish_task_process(platform::pid_type pid) noexcept {
        if (!ring_) return;
        auto& c = ring_->control();
        c.task_process.store((c.started.load(std::memory_order_relaxed) << 32) | static_cast<std::uint32_t>(pid),
                             std::memory_order_release);
    }

    /// A process forked from this one sent frames into the shared ring: continue after them.
    void adopt_ring_head() noexcept {
        if (ring_) ring_head_ = ring_->control().head.load(std::memory_order_seq_cst);
    }

    /// false: a large task frame is read whole before it is handled, never streamed into the arguments (a task
    /// process forked per job must find the whole frame in its copy of the buffer).
    bool stream_tasks = true;

    /// Sends the frames after this call into `ring` (the parent reads them there once this worker is ready).
    void use_ring(std::unique_ptr<result_ring> ring) noexcept { ring_ = std::move(ring); }

    /// Counts a job (task or chunk) as started, where the parent can see it without a system call (the ring's
    /// control page): a worker found dead with fewer jobs started than answered never began the next one, so the
    /// pool requeues it instead of failing it (it may have died while idle, before the job was sent).
    void job_started() noexcept {
        if (ring_) ring_->control().started.fetch_add(1, std::memory_order_release);
    }

    /// Reads the setup frame, and the memory of a result ring if the parent sent one with it (else
    /// `handle` is invalid_handle; the caller closes it).
    bool receive_setup(frame_type& type, std::span<const std::byte>& payload, platform::native_handle& handle) {
        handle = platform::invalid_handle;
#if !PROCPOOL_WINDOWS
        PROCPOOL_ASSERT(start_ == end_);
        if (buf_.empty()) buf_.resize(buffer_bytes);
        // The descriptor comes with the frame's first byte: read the header with recvmsg, the rest as usual.
        if (!platform::recv_handle(fd_, handle, buf_.data(), frame_header_size)) return false;
        start_ = 0;
        end_ = frame_header_size;
#endif
        return receive(type, payload);
    }

    /// Next frame; false on end of stream. `payload` stays valid until the next receive.
    /// \throws protocol_error on a corrupt header.
    bool receive(frame_type& type, std::span<const std::byte>& payload) {
        PROCPOOL_ASSERT(!streaming_);
        if (buf_.empty()) buf_.resize(buffer_bytes);
        if ((large_capacity_ > large_buffer_bytes || kept_args::instance().holds_large) && start_ == end_) {
            // A large buffer is kept only while large frames keep coming (a call with a large argument right
            // after another reuses touched pages): an idle worker gives it back after large_idle_ms.
            std::vector<platform::poll_item> item{{fd_, false}};
            platform::wait_any(item, large_idle_ms);
            if (!item[0].readable && !item[0].hangup) release_large();
        }
        while (end_ - start_ < frame_header_size)
            if (!fill()) return false;
        auto head = parse_frame_head(buf_.data() + start_, PROCPOOL_MAX_FRAME_BYTES);
        type = head.type;
        if (frame_header_size + head.length <= buffer_bytes) {
            release_large(); // the next frame is small: the large buffer goes before it is handled
            while (end_ - start_ < frame_header_size + head.length)
                if (!fill()) return false;
            payload = std::span<const std::byte>(buf_.data() + start_ + frame_header_size, head.length);
            start_ += frame_header_size + head.length;
            return true;
        }
        start_ += frame_header_size;
        if (type == frame_type::task && stream_tasks) {
            // Streamed: what has arrived is the first window; the rest stays in the channel until the arguments
            // are decoded, so it lands in them directly. Nothing is allocated for what the header claims.
            free_frame_buffer(); // but the arguments kept from the last call stay: the next one may be as large
            streaming_ = true;
            payload = std::span<const std::byte>(buf_.data() + start_, end_ - start_);
            frame_left_ = head.length - payload.size();
            start_ = end_ = 0; // the window belongs to the reader now
            return true;
        }
        // Another large frame goes to its own buffer, which grows with the bytes that arrive, not to the length
        // the header claims: a corrupt header claiming 4 GiB ends at end of stream without 4 GiB allocated first.
        large_size_ = std::min(end_ - start_, head.length);
        grow_large(large_size_);
        if (large_size_) std::memcpy(large_, buf_.data() + start_, large_size_);
        start_ += large_size_;
        while (large_size_ < head.length) {
            auto n = std::min<std::size_t>(head.length - large_size_, std::max(large_size_, std::size_t{1} << 20));
            grow_large(large_size_ + n);
            if (!platform::read_all(fd_, large_ + large_size_, n)) return false;
            large_size_ += n;
        }
        payload = std::span<const std::byte>(large_, large_size_);
        return true;
    }

    /// Frees the buffer of large frames if it is over large_buffer_bytes, and the large argument buffers the
    /// tasks keep (kept_args): an idle worker keeps no copy of its largest input.
    void release_large() noexcept {
        kept_args::instance().release();
        free_frame_buffer();
    }
    void free_frame_buffer() noexcept {
        large_size_ = 0;
        if (large_capacity_ <= large_buffer_bytes) return;
        std::free(large_);
        large_ = nullptr;
        large_size_ = large_capacity_ = 0;
    }

    /// True between receiving a streamed task frame and end_frame().
    [[nodiscard]] bool streaming() const noexcept { return streaming_; }

    /// Ends a streamed frame: skips what the reader left of it (after a decoding error). False if the channel
    /// ended first. Does nothing for other frames.
    bool end_frame() {
        if (!streaming_) return !broken_;
        streaming_ = false;
        while (frame_left_ > 0 && !broken_) {
            auto n = platform::read_some_blocking(fd_, buf_.data(), std::min(buf_.size(), frame_left_));
            if (n <= 0) broken_ = true;
            else frame_left_ -= static_cast<std::size_t>(n);
        }
        start_ = end_ = 0;
        return !broken_;
    }

    // byte_source, for a streamed frame
    [[nodiscard]] std::size_t pending() const noexcept override { return frame_left_; }
    std::span<const std::byte> next_window() override {
        PROCPOOL_ASSERT(streaming_ && frame_left_ > 0);
        auto n = broken_ ? 0 : platform::read_some_blocking(fd_, buf_.data(), std::min(buf_.size(), frame_left_));
        if (n <= 0) stream_ended();
        frame_left_ -= static_cast<std::size_t>(n);
        return {buf_.data(), static_cast<std::size_t>(n)};
    }
    void read_direct(std::byte* dst, std::size_t n) override {
        PROCPOOL_ASSERT(streaming_ && n <= frame_left_);
        if (broken_ || !platform::read_all(fd_, dst, n)) stream_ended();
        frame_left_ -= n;
    }

    /// The oldest descriptor that came over the channel and was not taken yet (invalid_handle: none).
    platform::native_handle take_handle() noexcept {
        if (handles_.empty() || dropped_) return platform::invalid_handle; // after a drop they would be mismatched
        auto h = handles_.front();
        handles_.erase(handles_.begin());
        return h;
    }

    static constexpr std::size_t buffer_bytes = 64 * 1024;
    static constexpr int large_idle_ms = 50;

private:
    /// Waits until the ring has room for n bytes. False if the parent is gone.
    bool make_room(std::size_t n) {
        auto& c = ring_->control();
        auto room = [&] { return ring_->bytes() - (ring_head_ - c.tail.load(std::memory_order_seq_cst)) >= n; };
        if (room()) return true;
        for (;;) {
            c.worker_waiting.store(1, std::memory_order_seq_cst); // the parent wakes it after reading
            if (room()) break;
            // The parent drains the ring when it reads the channel: ring whether or not it sleeps.
            const auto bell = ring_frame();
            if (!platform::write_all(fd_, bell.data(), bell.size())) return false;
            platform::wait_on_shared(c.worker_waiting, 1, 100);
            if (room()) break;
            if (platform::peer_closed(fd_)) return false;
        }
        c.worker_waiting.store(0, std::memory_order_relaxed);
        return true;
    }

    [[noreturn]] void stream_ended() {
        broken_ = true;
        throw protocol_error("procpool: the channel ended in the middle of a task frame (" +
                                 std::to_string(frame_left_) + " bytes missing)",
                             0);
    }

    /// Reads what the parent has sent, at least one byte, making room in the buffer first.
    bool fill() {
        if (start_ == end_) start_ = end_ = 0;
        else if (start_ > 0 && buf_.size() - end_ < frame_header_size + 4096) {
            std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
            end_ -= start_;
            start_ = 0;
        }
        auto* at = buf_.data() + end_;
        const auto room = buf_.size() - end_;
        // Nonzero: bytes read, or -1 at end of stream (read_some's 0 means nothing yet).
#if PROCPOOL_WINDOWS
        auto n = spin_.wait([&] { return platform::read_some(fd_, at, room); },
                            [&] { return platform::read_some_blocking(fd_, at, room); });
#else
        // Descriptors that come with the bytes (a share frame's) wait in handles_ for the frame that takes them.
        auto n = spin_.wait([&] { return platform::read_some_with_handles(fd_, at, room, false, handles_, dropped_); },
                            [&] { return platform::read_some_with_handles(fd_, at, room, true, handles_, dropped_); });
#endif
        if (n <= 0) return false;
        end_ += static_cast<std::size_t>(n);
        return true;
    }

    // malloc/realloc rather than a vector: a large buffer grows without a copy (mremap) and without zero-filling.
    void grow_large(std::size_t bytes) {
        if (bytes <= large_capacity_) return;
        auto cap = std::max(bytes, std::min<std::size_t>(large_capacity_ * 2, bytes + (std::size_t{1} << 20)));
        cap = std::max(cap, std::size_t{1} << 16);
        auto* p = static_cast<std::byte*>(std::realloc(large_, cap));
        if (!p) throw std::bad_alloc();
        if (cap >= (std::size_t{2} << 20)) platform::advise_huge_pages(p + large_capacity_, cap - large_capacity_);
        large_ = p;
        large_capacity_ = cap;
    }

    platform::native_handle fd_;
    std::vector<std::byte> buf_;
    std::size_t start_ = 0, end_ = 0;
    bool streaming_ = false, broken_ = false;
    adaptive_spin spin_; // for the next frame after an answer: in a chatty exchange it comes within microseconds
    std::size_t frame_left_ = 0; // bytes of the streamed frame still in the channel
    std::byte* large_ = nullptr;
    std::size_t large_size_ = 0, large_capacity_ = 0;
    std::unique_ptr<result_ring> ring_; // null: frames go over the channel
    std::uint64_t ring_head_ = 0;       // bytes published in the ring
    std::vector<platform::native_handle> handles_; // descriptors received, in order, not yet taken
    bool dropped_ = false;                         // the system dropped some (EMFILE)
};

inline exception_record unknown_task_record(std::string_view name) {
    std::string known;
    for (const auto& n : registry::instance().names()) known += (known.empty() ? "" : ", ") + n;
    exception_record r;
    r.kind = exception_kind::unknown_task;
    r.type = "procpool::unknown_task";
    std::string plugins;
    for (const auto& p : loaded_plugins()) plugins += (plugins.empty() ? "" : ", ") + p;
    r.what = "procpool: unknown task \"" + std::string(name) + "\" in process " +
             std::to_string(platform::current_pid()) + "; it has registered: " + (known.empty() ? "(none)" : known) +
             "; plugins loaded: " + (plugins.empty() ? "(none)" : plugins) +
             ". Register the task with PROCPOOL_TASK in a source file linked into this executable, or load the "
             "plugin that defines it with procpool::load_plugin.";
    return r;
}

/// Runs one call of `entry` (null: no task `name`), writing ok + value (or the exception) to `out`. Exceptions
/// thrown while encoding the result are caught too: the partial value is dropped.
inline void run_call(const task_entry* entry, std::string_view name, reader& args, std::vector<std::byte>& out) {
    auto mark = out.size();
    writer w(out);
    try {
        if (!entry) throw unknown_task(unknown_task_record(name).what);
        w.write(true);
        entry->invoke(args, w);
        return;
    } catch (...) {
        out.resize(mark);
        w.write(false);
        auto rec = capture_exception(std::current_exception());
        name_limit(rec, name);
        w.write(rec);
    }
}

inline void run_call(const task_entry* entry, std::string_view name, std::span<const std::byte> args,
                     std::vector<std::byte>& out) {
    reader r(args);
    run_call(entry, name, r, out);
}

inline void run_call(std::string_view name, std::span<const std::byte> args, std::vector<std::byte>& out) {
    run_call(registry::instance().find(name), name, args, out);
}

/// The item blobs of a batch frame (u64 count, then count times u64 length + bytes), checked whole before any
/// item runs. \throws protocol_error when they do not fit the frame.
class batch_items {
public:
    explicit batch_items(reader& r) : count_(r.read<std::uint64_t>()), base_(r.offset()) {
        // Walk the lengths once: a corrupt chunk fails before any item runs, as a decoded vector would.
        reader scan = r;
        for (std::uint64_t i = 0; i < count_; ++i) {
            auto len = scan.read<std::uint64_t>();
            if (len > scan.remaining())
                throw protocol_error("procpool: corrupt batch: item " + std::to_string(i) + " of " +
                                         std::to_string(len) + " bytes at byte offset " + std::to_string(scan.offset()) +
                                         " exceeds the " + std::to_string(scan.remaining()) + " bytes left",
                                     scan.offset());
            scan.skip(static_cast<std::size_t>(len));
        }
        r = scan;
    }
    [[nodiscard]] std::uint64_t size() const noexcept { return count_; }
    /// Calls f(span) for every item, in order.
    template <class F>
    void for_each(std::span<const std::byte> payload, F&& f) const {
        reader r(payload.subspan(base_));
        for (std::uint64_t i = 0; i < count_; ++i) {
            auto len = static_cast<std::size_t>(r.read<std::uint64_t>());
            f(payload.subspan(base_ + r.offset(), len));
            r.skip(len);
        }
    }

private:
    std::uint64_t count_;
    std::size_t base_;
};

/// Runs an initializer or finalizer; returns the exception it threw, if any.
inline std::optional<exception_record> run_hook(const task_call& call) {
    std::vector<std::byte> out;
    run_call(call.name, call.args, out);
    reader r(out);
    if (r.read<bool>()) return std::nullopt;
    return r.read<exception_record>();
}

/// Where serve_channel runs. A worker process owns itself; a test harness (the fuzz target) runs the loop inside
/// its own process, where the setup frame's per-task forks and resource limits would change the harness itself:
/// there they are refused (init_failed), as any other setup the worker cannot honour.
enum class serve_host : std::uint8_t { worker_process, embedded };

/// The worker loop: hello, setup, then tasks until retire or end of stream. Returns the exit code.
inline int serve_channel(platform::native_handle fd, serve_host host = serve_host::worker_process) noexcept {
    serving_flag() = true;
    worker_channel ch(fd);
    try {
        auto& reg = registry::instance();
        reg.verify();
        context_registry::instance().verify();
        hello_msg hello;
        hello.registry_hash = reg.hash();
        hello.executable = platform::executable_identity();
        hello.pid = platform::current_pid();
        if (!ch.send(make_frame(frame_type::hello, hello))) return 0;

        frame_type type{};
        std::span<const std::byte> payload;
        platform::native_handle ring_memory = platform::invalid_handle;
        struct closer {
            platform::native_handle& h;
            ~closer() {
                if (h != platform::invalid_handle) platform::close_handle(h);
            }
        } close_ring_memory{ring_memory};
        if (!ch.receive_setup(type, payload, ring_memory)) return 0; // refused by the parent, or the parent is gone
        if (type != frame_type::setup)
            throw protocol_error(std::string("procpool: expected setup, got ") + frame_type_name(type), 0);
        auto setup = decode<setup_msg>(payload);
        std::unique_ptr<result_ring> ring;
        if (setup.result_ring) {
            if (ring_memory == platform::invalid_handle)
                throw protocol_error("procpool: the setup frame announced a result ring, but no memory came with it", 0);
            if (setup.result_ring < 4 * ring_max_record)
                throw protocol_error("procpool: the setup frame announced a result ring of " +
                                         std::to_string(setup.result_ring) + " bytes, too small",
                                     0);
            ring = std::make_unique<result_ring>(ring_memory, setup.result_ring);
        }
        if (ring_memory != platform::invalid_handle) { // the mapping stays; the descriptor would only leak
            platform::close_handle(ring_memory);
            ring_memory = platform::invalid_handle;
        }
        set_log_level(static_cast<log_level>(setup.log_level));
        try {
            load_plugins(setup.plugins);
        } catch (...) {
            ch.send(make_frame(frame_type::init_failed, capture_exception(std::current_exception())));
            return 4;
        }
        if (setup.initializer) {
            if (auto err = run_hook(*setup.initializer)) {
                ch.send(make_frame(frame_type::init_failed, *err));
                return 4;
            }
        }
        if (host == serve_host::embedded &&
            (setup.per_task || setup.limit_address_space || setup.limit_cpu_seconds || setup.limit_open_files ||
             setup.no_core_dumps)) {
            exception_record rec;
            rec.type = "procpool::start_error";
            rec.what = "procpool: this worker loop runs inside another program, which per-task isolation and "
                       "pool_options::limits would change as a whole: refused";
            ch.send(make_frame(frame_type::init_failed, rec));
            return 4;
        }
        // After the initializer (paid once, unconstrained), before the first task.
        if (auto err = apply_limits(setup); !err.empty()) {
            exception_record rec;
            rec.type = "procpool::start_error";
            rec.what = err;
            ch.send(make_frame(frame_type::init_failed, rec));
            return 4;
        }
#if PROCPOOL_POSIX
        std::optional<task_forker> forker;
        if (setup.per_task) {
            forker.emplace();
            ch.stream_tasks = false;
            if (ring) ring->inherit_on_fork(); // the task processes answer through it
        }
#endif
        if (!ch.send(make_empty_frame(frame_type::ready))) return 0;
        if (ring) ch.use_ring(std::move(ring)); // what follows ready goes to the ring
        log(log_level::debug, [&] { return "worker " + std::to_string(setup.worker_index) + " ready"; });

        kept_args::instance().enabled = true; // this thread runs one task at a time from here on
        std::vector<std::byte> out;
        // A task process takes its changes with it: there is nothing to audit.
        const auto audit = setup.per_task ? leak_policy::off : static_cast<leak_policy>(setup.leak_audit);
        auto& contexts = context_registry::instance();
        std::optional<exception_record> context_failure; // fails the next task instead of running it
        // Runs one task or chunk with the context failure and the leak audit around it. The outcome(s) are
        // appended to `out` after the header `head` wrote.
        auto run_job = [&](const task_entry* entry, const std::string& name, auto&& head, auto&& body,
                           frame_type result_type) -> bool {
            begin_frame(out);
            writer w(out);
            head(w);
            auto mark = out.size();
            auto call = [&](auto&& args, std::vector<std::byte>& o) { run_call(entry, name, args, o); };
            std::vector<std::string> changed;
            if (context_failure) {
                body([&](auto&&, std::vector<std::byte>& o) {
                    writer(o).write(false);
                    writer(o).write(*context_failure);
                });
                context_failure.reset();
            } else if (audit == leak_policy::off || contexts.empty()) {
                body(call);
            } else {
                auto before = contexts.capture();
                body(call);
                changed = changed_contexts(before, contexts.capture());
            }
            // The rest of a streamed frame is read before anything is sent: the pool hears of a job only once
            // its whole frame has left.
            if (!ch.end_frame()) return false;
            if (!changed.empty()) {
                if (!ch.send(make_frame(frame_type::leak, leak_msg{name, changed}))) return false;
                if (audit == leak_policy::fail) {
                    out.resize(mark);
                    std::string list;
                    for (const auto& c : changed) list += (list.empty() ? "\"" : ", \"") + c + "\"";
                    exception_record rec;
                    rec.kind = exception_kind::state_leak;
                    rec.type = "procpool::state_leak";
                    rec.what = "procpool: task \"" + name + "\" changed context " + list + " in worker pid " +
                               std::to_string(platform::current_pid()) + " and did not restore it";
                    body([&](auto&&, std::vector<std::byte>& o) {
                        writer(o).write(false);
                        writer(o).write(rec);
                    });
                }
            }
            finish_frame(out, result_type);
            // Sent at once, never held back for the next task: if that one crashes or times out, the parent must
            // know this one finished (it fails only the job at the front of the worker's queue).
            bool sent = ch.send(out);
            if (out.capacity() > large_buffer_bytes) std::vector<std::byte>().swap(out); // keep no large buffer idle
            return sent;
        };
        // Runs a job here, or (per_task) in a fresh fork of this worker; false when the parent is gone.
        auto isolated = [&](std::uint64_t id, auto&& job) -> bool {
#if PROCPOOL_POSIX
            if (forker) {
                const bool ok = forker->run(ch, id, job);
                context_failure.reset(); // the child reported it
                return ok;
            }
#endif
            (void)id;
            return job();
        };
        for (;;) {
            if (!ch.receive(type, payload)) return 0; // parent gone: exit without the finalizer
            switch (type) {
            case frame_type::context: {
                try {
                    contexts.apply(decode<context_snapshot>(payload));
                } catch (...) {
                    context_failure = capture_exception(std::current_exception());
                }
                break;
            }
            case frame_type::share:
            case frame_type::unshare: {
                try { // a failure here fails the next task (as a context's does), not the worker
#if PROCPOOL_WINDOWS
                    if (type == frame_type::share) accept_share(payload); // the handle is in the frame
#else
                    if (type == frame_type::share) accept_share(payload, ch.take_handle());
#endif
                    else drop_shares(payload);
                } catch (...) {
                    context_failure = capture_exception(std::current_exception());
                }
                break;
            }
            case frame_type::plugins: {
                try {
                    load_plugins(decode<std::vector<std::string>>(payload));
                } catch (...) {
                    context_failure = capture_exception(std::current_exception());
                }
                break;
            }
            case frame_type::task: {
                ch.job_started();
                // A streamed frame's reader pulls the rest from the channel (large arguments land in place).
                auto r = ch.streaming() ? reader(payload, ch) : reader(payload);
                auto head = read_job_head(r); // (no structured binding: clang 14 cannot capture one)
                const auto id = head.id;
                const auto& name = head.task;
                if (!isolated(id, [&] {
                        return run_job(
                            registry::instance().find(name), name, [&](writer& w) { w.write(id); },
                            [&](auto&& call) { call(r, out); }, frame_type::result);
                    }))
                    return 0;
                break;
            }
            case frame_type::batch: {
                ch.job_started();
                reader r(payload);
                auto head = read_job_head(r); // (no structured binding: clang 14 cannot capture one)
                const auto id = head.id;
                const auto& name = head.task;
                batch_items items(r);
                if (!isolated(id, [&] {
                        return run_job(
                            registry::instance().find(name), name, // looked up once per chunk
                            [&](writer& w) {
                                w.write(id);
                                w.write(items.size());
                            },
                            [&](auto&& call) { items.for_each(payload, [&](std::span<const std::byte> item) { call(item, out); }); },
                            frame_type::batch_result);
                    }))
                    return 0;
                break;
            }
            case frame_type::retire: {
                std::optional<exception_record> err;
                if (setup.finalizer) err = run_hook(*setup.finalizer);
                run_retire_hooks(); // per_process instances built in this worker
                ch.send(make_frame(frame_type::bye, err));
                return 0;
            }
            default:
                throw protocol_error(std::string("procpool: unexpected ") + frame_type_name(type) + " frame in a worker",
                                     0);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "procpool: worker pid %ld stops: %s\n", platform::current_pid(), e.what());
        return 5;
    } catch (...) {
        return 5;
    }
}

/// In a freshly forked child (single-threaded): close every parent-owned handle except `keep`.
inline void close_inherited_handles(platform::native_handle keep1, platform::native_handle keep2 = -1) noexcept {
    auto& hs = owned_handles();
    new (&hs.mutex) std::mutex; // another thread of the parent may have held it at fork time
    for (auto h : hs.handles)
        if (h != keep1 && h != keep2) platform::close_handle(h);
    hs.handles.clear();
    if (keep1 >= 0) hs.handles.insert(keep1);
    if (keep2 >= 0) hs.handles.insert(keep2);
}

/// The fork template ("zygote"): a single-threaded copy of the parent taken when the pool was constructed.
/// Every worker is forked from it, so replacements start from the same state as the first workers, and no
/// fork ever happens in a parent that has started threads since. Never returns.
#if PROCPOOL_POSIX
/// As a forkserver (`announce`), it first tells the pool it is serving: the pool tells that apart from a main()
/// that constructs a pool before serve_if_worker.
/// It dies with the application through `lifeline` (see platform::make_lifeline); its workers die with it.
[[noreturn]] inline void run_fork_template(platform::native_handle ctl, platform::pid_type parent, bool announce,
                                           platform::native_handle lifeline) noexcept {
    if (!platform::bind_lifetime_to_parent(parent, lifeline)) platform::quick_exit_process(0);
    platform::ignore_terminal_signals(); // its workers inherit this
    close_inherited_handles(ctl);
    if (announce) {
        try {
            auto ready = make_empty_frame(frame_type::ready);
            if (!platform::write_all(ctl, ready.data(), ready.size())) platform::quick_exit_process(0);
        } catch (...) {
            platform::quick_exit_process(6);
        }
    }
    platform::native_handle exits = -1;
    try {
        exits = platform::child_exit_events();
    } catch (...) {
        platform::quick_exit_process(6);
    }
    for (;;) {
        std::vector<platform::poll_item> items{{ctl, false}, {exits, false}};
        try {
            // Not forever: a SIGCHLD whose handler runs late (a sanitizer runtime defers signals to its next
            // intercepted call) must not leave a worker unreported; the loop reaps whatever ended anyway.
            platform::wait_any(items, 200);
        } catch (...) {
            platform::quick_exit_process(0);
        }
        if (items[1].readable) platform::drain(exits);
        while (auto ended = platform::reap_any()) {
            template_record rec{template_event::exited, ended->second.code, ended->second.signal, 0, ended->first};
            if (!platform::write_all(ctl, &rec, sizeof rec)) platform::quick_exit_process(0);
        }
        if (!items[0].readable && !items[0].hangup) continue;
        char cmd = 0;
        if (!platform::read_all(ctl, &cmd, 1)) platform::quick_exit_process(0); // the pool is gone
        platform::native_handle mine = -1, theirs = -1;
        int err = 0;
        platform::pid_type pid = -1;
        try {
            platform::make_channel(mine, theirs);
        } catch (const std::system_error& e) {
            err = e.code().value(); // reported, not fatal: the pool decides whether to try again
        } catch (...) {
            err = ENOMEM;
        }
        if (!err) pid = platform::fork_process_noexcept(err);
        if (pid == 0) {
            platform::reset_child_exit_events(exits);
            platform::close_handle(ctl);
            platform::close_handle(theirs);
            if (lifeline != platform::invalid_handle) platform::close_handle(lifeline);
            owned_handles().handles.clear();
            platform::bind_lifetime_to_parent(platform::parent_pid()); // this thread is the template's only one
            platform::quick_exit_process(serve_channel(mine));
        }
        if (mine >= 0) platform::close_handle(mine);
        bool sent = false;
        if (pid > 0) {
            // Opened before the worker can have been reaped (reap_any runs only in this loop): the pid is its own.
            const platform::native_handle fds[2] = {theirs, platform::open_process_handle(pid)};
            template_record rec{template_event::started, 0, 0, 0, pid};
            sent = platform::send_handles(ctl, fds, fds[1] >= 0 ? 2 : 1, &rec, sizeof rec);
            if (fds[1] >= 0) platform::close_handle(fds[1]);
        } else {
            template_record rec{template_event::start_failed, err, 0, 0, pid};
            sent = platform::write_all(ctl, &rec, sizeof rec);
        }
        if (theirs >= 0) platform::close_handle(theirs);
        if (!sent) platform::quick_exit_process(0);
    }
}
#endif

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_WORKER_LOOP_HPP
