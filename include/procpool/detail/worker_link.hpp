// SPDX-License-Identifier: BSL-1.0
// procpool/detail/worker_link.hpp: the parent's end of one worker: its process (pid, lifeline, process handle), the
// bytes queued for its channel, and the frames that come back, from the channel and the result ring, in order.
//
// The link reports what arrives (next_frame) and does not decide what it means: the engine handles each frame,
// and a protocol_error the link throws. A transport other than a socket and a ring (an MPI rank) is another link
// with the same members: append/flush/own_output out, read/next_frame in, close_channel at the end.
#ifndef PROCPOOL_DETAIL_WORKER_LINK_HPP
#define PROCPOOL_DETAIL_WORKER_LINK_HPP

#include <procpool/config.hpp>
#include <procpool/context.hpp>
#include <procpool/detail/handles.hpp>
#include <procpool/detail/job.hpp>
#include <procpool/detail/result_ring.hpp>
#include <procpool/detail/shared_handles.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/error.hpp>
#include <procpool/platform/platform.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// Bytes waiting for a worker's socket. Small frames are copied together (one send for many); a large job frame
/// is borrowed from its job, which stays in `inflight` (its frame alive) at least until its result arrives, and
/// lent runs from the caller's arguments until submit returns.
struct out_segment {
    std::vector<std::byte> owned;
    std::span<const std::byte> borrowed; // empty: the bytes are `owned`
    std::size_t pos = 0;                 // bytes already written
    const void* owner = nullptr;         // the job (state) the borrowed bytes belong to
    platform::shm_object handle = platform::invalid_shm_object; // sent with the first byte written (a share frame)
    std::shared_ptr<const void> keep{};  // what owns `handle` until then
    [[nodiscard]] bool is_borrowed() const noexcept { return borrowed.data() != nullptr; }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
        return is_borrowed() ? borrowed : std::span<const std::byte>(owned);
    }
};

/// One frame from a worker: its type and payload, valid until the next next_frame() or read().
struct link_frame {
    frame_type type;
    std::span<const std::byte> payload;
};

class worker_link {
public:
    enum class phase { hello, setup, ready, retiring, closed };

    static constexpr std::size_t borrow_bytes = 64 * 1024; // job frames from this size are written in place
    static constexpr std::size_t spare_bytes = 256 * 1024; // larger output buffers are not kept

    // ---- the process ----------------------------------------------------------------------------------------
    platform::pid_type pid = 0;
    platform::native_handle fd = platform::invalid_handle;
    std::int64_t index = 0;
    phase state = phase::hello;
    bool from_template = false;
    platform::native_handle lifeline = platform::invalid_handle; // kills it if this process ends (spawned workers)
    platform::native_handle proc = platform::invalid_handle;     // readable when it exits (pidfd), where available

    // ---- what the engine keeps about it ----------------------------------------------------------------------
    std::deque<job> inflight; // front: running; the rest: sent ahead, not started
    std::chrono::steady_clock::time_point busy_since{}; // when the front job started (as far as the parent knows)
    double task_us = 0;       // moving average of its job times; 0: none yet
    std::size_t assigned = 0;
    std::int64_t started_ms = 0;
    std::int64_t deadline_ms = 0; // when the running job times out; 0: no limit
    bool retire_when_idle = false; // over max_memory_per_worker, or leaked state (leak audit): takes no new job
    std::shared_ptr<const context_snapshot> applied; // the contexts this worker has been sent
    std::size_t plugins_sent = 0;                    // how many of the loaded plugins it has been told about
    std::exception_ptr kill_reason; // why the pool killed it, reported instead of worker_died
    std::uint64_t answered = 0;     // jobs it has answered (compared with jobs_started() at its death)
    std::uint64_t timed_out = 0;    // per_task: the job whose process the pool killed for its timeout (0: none)
    std::exception_ptr timeout_reason; // and the task_timeout it gets
    bool replace_when_reaped = false; // retired: its replacement starts once it is gone (never N+1 processes)
    bool unflushed = false;           // dispatch appended to `out` this round

    // ---- the result ring --------------------------------------------------------------------------------------
    std::unique_ptr<result_ring> ring; // where its frames arrive once it is ready (null: all on the channel)
    platform::native_handle ring_fd = platform::invalid_handle; // the ring's memory, until sent with setup
    bool ring_on = false;              // it is ready: frames on the channel follow their `ring` record

    [[nodiscard]] bool ring_has_data() const noexcept {
        return ring_on && ring->control().head.load(std::memory_order_acquire) != ring_tail_;
    }
    /// isolation_mode::per_task: the process running the worker's front job (the next it answers), or 0.
    [[nodiscard]] platform::pid_type task_process() const noexcept {
        if (!ring_on) return 0;
        const auto v = ring->control().task_process.load(std::memory_order_acquire);
        return (v >> 32) == answered + 1 ? static_cast<platform::pid_type>(v & 0xffffffffu) : 0;
    }
    /// Jobs the worker has begun (its count in the ring's control page), or nullopt without a ring.
    [[nodiscard]] std::optional<std::uint64_t> jobs_started() const noexcept {
        if (!ring_on) return std::nullopt;
        return ring->control().started.load(std::memory_order_acquire);
    }
    /// Before the parent blocks in poll: asks the worker to ring the doorbell for its next record. True when a
    /// record arrived meanwhile (then do not block).
    bool ask_for_doorbell() noexcept {
        if (!ring_on) return false;
        ring->control().parent_sleeping.store(1, std::memory_order_seq_cst);
        return ring->control().head.load(std::memory_order_seq_cst) != ring_tail_;
    }
    void doorbell_not_needed() noexcept {
        if (ring_on) ring->control().parent_sleeping.store(0, std::memory_order_relaxed);
    }

    // ---- output -------------------------------------------------------------------------------------------------
    /// Queues `frame`; `owner`: the job whose frame it is, which outlives its bytes in `out` (see out_segment): a
    /// large one is written in place.
    void append(std::span<const std::byte> frame, const void* owner = nullptr) {
        if (owner && frame.size() >= borrow_bytes) {
            out_.push_back(out_segment{{}, frame, 0, owner});
            return;
        }
        if (frame.empty()) return;
        if (out_.empty() || out_.back().is_borrowed()) {
            out_.emplace_back();
            out_.back().owned = std::move(spare_);
            spare_.clear();
        }
        auto& o = out_.back().owned;
        o.insert(o.end(), frame.begin(), frame.end());
    }

    /// Queues a job's frame, with its lent runs in place. \throws std::system_error, before queueing the job,
    /// when a shared buffer it refers to cannot be handed to the worker (Windows: DuplicateHandle failed).
    void append_job(const job& j) {
        if (!j.shared().empty() || shared_.has_sent()) append_shared(j.shared());
        const void* owner = j.state.get();
        const std::span<const std::byte> frame(j.frame);
        std::size_t at = 0;
        for (const auto& r : j.lent()) {
            append(frame.subspan(at, r.at - at), owner);
            out_.push_back(out_segment{{}, r.bytes, 0, owner});
            at = r.at;
        }
        append(frame.subspan(at), owner);
    }

    /// Queues `unshare` for the shared buffers the parent dropped since the worker heard last, so that a worker
    /// with no job coming unmaps them too. False when there are none (nothing queued).
    bool release_dropped() {
        if (!shared_.drops_pending()) return false;
        append_shared({});
        return true;
    }

    /// Queues the frames that must precede a job using `refs`: unshare for dropped buffers, share for new ones.
    /// \throws std::system_error as append_job.
    void append_shared(const std::vector<shared_ref>& refs) {
        // Its shared buffers' memory goes first, each in its own segment (the descriptor rides its first byte).
#if PROCPOOL_WINDOWS
        const auto give = [this](platform::shm_object h) { return platform::give_shared_memory(pid, h); };
#else
        const auto give = nullptr; // no handle in the frame: the descriptor is sent with it (flush)
#endif
        std::exception_ptr failed;
        auto frames = shared_.before_job(
            refs,
            [](bool unshare, const auto& msg) {
                return make_frame(unshare ? frame_type::unshare : frame_type::share, msg);
            },
            give, failed);
        for (auto& f : frames) {
            if (f.handle == platform::invalid_shm_object) {
                append(f.frame);
                continue;
            }
            out_.push_back(out_segment{std::move(f.frame), {}, 0, nullptr, f.handle, std::move(f.keep)});
        }
        if (failed) std::rethrow_exception(failed);
    }

    /// Writes what the socket takes of the output.
    void flush() {
        while (!out_.empty()) {
            auto& seg = out_.front();
            auto bytes = seg.bytes();
            while (seg.pos < bytes.size()) {
#if PROCPOOL_WINDOWS
                auto n = platform::write_some(fd, bytes.data() + seg.pos, bytes.size() - seg.pos);
#else
                const bool with = seg.handle != platform::invalid_shm_object;
                auto n = platform::write_some_with_handles(fd, &seg.handle, with ? 1 : 0, bytes.data() + seg.pos,
                                                           bytes.size() - seg.pos);
                if (n > 0 && with) {
                    seg.handle = platform::invalid_shm_object;
                    seg.keep.reset();
                }
#endif
                if (n <= 0) return; // full (poll reports writable), or gone (the reader side reports the death)
                seg.pos += static_cast<std::size_t>(n);
            }
            if (!seg.is_borrowed() && seg.owned.capacity() <= spare_bytes) {
                seg.owned.clear();
                spare_ = std::move(seg.owned);
            }
            out_.pop_front();
        }
    }

    void send(std::span<const std::byte> frame) {
        append(frame);
        flush();
    }

    /// Copies borrowed bytes still unwritten into the link's own buffers: their job is about to go away, or its
    /// lent runs are (`owner`'s only, or every job's when null).
    void own_output(const void* owner = nullptr) {
        for (auto& seg : out_) {
            if (!seg.is_borrowed() || (owner && seg.owner != owner)) continue;
            auto rest = seg.borrowed.subspan(seg.pos);
            seg.owned.assign(rest.begin(), rest.end());
            seg.borrowed = {};
            seg.owner = nullptr;
            seg.pos = 0;
        }
    }

    /// Bytes of `owner`'s borrowed segments not written yet.
    [[nodiscard]] std::size_t unwritten(const void* owner) const noexcept {
        std::size_t n = 0;
        for (const auto& seg : out_)
            if (seg.is_borrowed() && seg.owner == owner) n += seg.borrowed.size() - seg.pos;
        return n;
    }

    [[nodiscard]] bool has_output() const noexcept { return !out_.empty(); }
    void drop_output() noexcept { out_.clear(); }

    // ---- input --------------------------------------------------------------------------------------------------
    /// One read from the channel into the frame buffer: bytes read, 0 when nothing was there, -1 at end of stream.
    /// `room`: how many bytes the read could take (a full read may be followed by more).
    long read(std::size_t& room) {
        auto space = in_.prepare();
        room = space.size();
        auto n = platform::read_some(fd, space.data(), space.size());
        if (n > 0) in_.commit(static_cast<std::size_t>(n));
        return n;
    }

    /// The next frame from the worker, in the order it sent them: without a ring, from the channel; with one, the
    /// ring's records, where a `ring` record stands for the next frame on the channel (which then comes in its
    /// place), and a `ring` frame on the channel is a doorbell. Nothing when what arrived so far is handled.
    /// \throws protocol_error on a corrupt frame or record.
    std::optional<link_frame> next_frame() {
        if (!ring_on) {
            auto f = in_.next(PROCPOOL_MAX_FRAME_BYTES);
            if (!f) return std::nullopt;
            return link_frame{f->first, f->second};
        }
        for (;;) {
            if (pending_) { // a frame from the channel: the records before its mark come first
                if (auto r = ring_record(true)) {
                    if (r->type != frame_type::ring) return r;
                    auto f = *pending_;
                    pending_.reset();
                    publish_tail();
                    return f;
                }
                throw protocol_error(std::string("procpool: a ") + frame_type_name(pending_->type) +
                                         " frame came on the channel without its record in the result ring",
                                     0);
            }
            if (auto f = in_.next(PROCPOOL_MAX_FRAME_BYTES)) {
                if (f->first != frame_type::ring) pending_ = link_frame{f->first, f->second}; // else a doorbell
                continue;
            }
            // The channel is drained: the ring's records up to its head, or to a mark whose frame is still to come.
            if (auto r = ring_record(false)) return r;
            publish_tail();
            return std::nullopt;
        }
    }

    // ---- the end ------------------------------------------------------------------------------------------------
    void close_ring_fd() noexcept {
        if (ring_fd == platform::invalid_handle) return;
        release_handle(ring_fd);
        platform::close_handle(ring_fd);
        ring_fd = platform::invalid_handle;
    }

    /// Closes the channel (the worker sees end of stream) and drops what was queued for it.
    void close_channel() noexcept {
        shared_.clear(); // a replacement has mapped nothing
        out_.clear(); // unwritten bytes, some borrowed from jobs the engine requeues
        pending_.reset();
        close_ring_fd();
        if (fd == platform::invalid_handle) return;
        release_handle(fd);
        platform::close_handle(fd);
        fd = platform::invalid_handle;
    }

    /// Closes the lifeline and the process handle: only once the worker was reaped (closing a live worker's
    /// lifeline kills it), or when the pool is torn down.
    void close_process_handles() noexcept {
        platform::drop_lifeline(lifeline);
        if (proc != platform::invalid_handle) {
            release_handle(proc);
            platform::close_handle(proc);
            proc = platform::invalid_handle;
        }
    }

private:
    /// The record at the ring's tail, consumed; at a `ring` mark: consumed only with `take_mark` (and returned),
    /// else left for the frame it stands for. Nothing at the head. The tail is published by publish_tail().
    std::optional<link_frame> ring_record(bool take_mark) {
        // The head is read again only once the records up to the last one seen are handled: the worker writes it
        // for every record, so reading it for every record too would bounce its cache line for nothing.
        if (ring_tail_ == ring_head_) {
            ring_head_ = ring->control().head.load(std::memory_order_acquire);
            if (ring_head_ - ring_tail_ > ring->bytes())
                throw protocol_error("procpool: the result ring's head (" + std::to_string(ring_head_) + ") is corrupt", 0);
            if (ring_tail_ == ring_head_) return std::nullopt;
        }
        const auto head = ring_head_;
        if (head - ring_tail_ < frame_header_size) throw protocol_error("procpool: a truncated record in the result ring", 0);
        const std::byte* at = ring->at(ring_tail_);
        auto h = parse_frame_head(at, ring_max_record);
        const auto size = frame_header_size + h.length;
        if (size > head - ring_tail_) throw protocol_error("procpool: a truncated record in the result ring", 0);
        if (h.type == frame_type::ring && !take_mark) return std::nullopt;
        ring_tail_ += size;
        return link_frame{h.type, std::span<const std::byte>(at + frame_header_size, h.length)};
    }

    /// Gives the worker the room of the records handled so far, and wakes it if it waits for room. Called when a
    /// run of records is handled (not per record: one shared store and load instead of one each).
    void publish_tail() noexcept {
        auto& c = ring->control();
        if (c.tail.load(std::memory_order_relaxed) == ring_tail_) return;
        c.tail.store(ring_tail_, std::memory_order_seq_cst);
        if (c.worker_waiting.load(std::memory_order_seq_cst) && c.worker_waiting.exchange(0))
            platform::wake_shared(c.worker_waiting);
    }

    frame_reader in_;
    std::deque<out_segment> out_;
    std::vector<std::byte> spare_; // capacity of a written segment, for the next one
    std::uint64_t ring_tail_ = 0;  // how far the ring has been read
    std::uint64_t ring_head_ = 0;  // the worker's head when last read (records up to it are published)
    std::optional<link_frame> pending_; // a frame from the channel waiting for the records before it
    shared_sender shared_;              // the shared buffers this worker has mapped
};

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_WORKER_LINK_HPP
