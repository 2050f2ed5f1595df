// SPDX-License-Identifier: BSL-1.0
// procpool/detail/result_ring.hpp: a worker's results in memory it shares with the pool (Linux).
//
// Why: one tiny task's result sent over the channel costs a socket buffer, allocated by the worker's send and
// freed by the parent's receive; for tiny tasks that was over half of the parent's time. Results written to
// shared memory cost a copy, and the channel carries a doorbell only when the parent is about to block.
//
// Layout: a control page, then `bytes` of data mapped twice in a row (platform::map_ring), so every record is
// one span even where it wraps. Records are frames exactly as the channel would carry them. A frame larger
// than max_record goes over the channel, with a `ring` record in its place so the parent keeps the order.
//
// A worker that crashes leaves what it published: the parent reads the ring to its head before it decides which
// job the death belongs to, so a result published before the crash is never blamed for it.
#ifndef PROCPOOL_DETAIL_RESULT_RING_HPP
#define PROCPOOL_DETAIL_RESULT_RING_HPP

#include <procpool/config.hpp>
#include <procpool/error.hpp>
#include <procpool/platform/platform.hpp>
#include <procpool/detail/wire.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// The shared control page. head: bytes the worker has published; tail: bytes the parent has consumed.
struct ring_control {
    alignas(64) std::atomic<std::uint64_t> head{0};
    alignas(64) std::atomic<std::uint64_t> tail{0};
    alignas(64) std::atomic<std::uint32_t> parent_sleeping{0}; // the next record rings the doorbell
    alignas(64) std::atomic<std::uint32_t> worker_waiting{0};  // the worker waits for room: wake it
    alignas(64) std::atomic<std::uint64_t> started{0};         // jobs the worker has begun (worker_channel::job_started)
    // isolation_mode::per_task: (started << 32) | pid of the process running job number `started`, so that a
    // timeout kills that process alone.
    alignas(64) std::atomic<std::uint64_t> task_process{0};
};
static_assert(sizeof(ring_control) <= platform::ring_control_bytes);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free);

/// Data bytes of each worker's ring, and the largest frame written into it (larger ones go over the channel).
inline constexpr std::size_t result_ring_bytes = std::size_t{256} << 10;
inline constexpr std::size_t ring_max_record = std::size_t{16} << 10;

/// A mapped ring (either side). Unmapped on destruction; the descriptor is not kept.
class result_ring {
public:
    /// Maps the memory `fd` refers to (the caller keeps and closes `fd`). \throws protocol_error if it is not a
    /// ring of `bytes`.
    result_ring(platform::native_handle fd, std::size_t bytes) : mapped_by_(platform::cached_pid()), bytes_(bytes) {
        base_ = platform::map_ring(fd, bytes);
        if (!base_)
            throw protocol_error("procpool: the result ring's memory could not be mapped as " + std::to_string(bytes) +
                                     " bytes",
                                 0);
    }
    result_ring(const result_ring&) = delete;
    result_ring& operator=(const result_ring&) = delete;
    // The mapping is not inherited by fork (unless inherit_on_fork): in a forked copy of the application its range
    // is a hole the child may have mapped something else into since, which munmap would tear out.
    ~result_ring() {
        if (inherited_ || platform::cached_pid() == mapped_by_) platform::unmap_ring(base_, bytes_);
    }

    /// New shared memory for a ring (the parent's side), mapped; `fd` (to send to the worker, then close) refers
    /// to it. Null, and `fd` invalid, where unsupported or when the system refuses.
    static std::unique_ptr<result_ring> create(std::size_t bytes, platform::native_handle& fd) {
        fd = platform::create_ring_memory(bytes);
        if (fd == platform::invalid_handle) return nullptr;
        try {
            auto r = std::make_unique<result_ring>(fd, bytes);
            new (r->base_) ring_control{}; // the memory is zeros; this starts the objects' lifetimes
            return r;
        } catch (const protocol_error&) {
            platform::close_handle(fd);
            fd = platform::invalid_handle;
            return nullptr;
        }
    }

    /// The processes this one forks from now on share the ring (isolation_mode::per_task).
    void inherit_on_fork() noexcept {
        platform::inherit_ring(base_, bytes_);
        inherited_ = true;
    }

    [[nodiscard]] ring_control& control() const noexcept { return *static_cast<ring_control*>(base_); }
    [[nodiscard]] std::byte* data() const noexcept { return static_cast<std::byte*>(base_) + platform::ring_control_bytes; }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
    /// The record at stream position `pos`: contiguous for up to bytes() bytes (the data is mapped twice).
    [[nodiscard]] std::byte* at(std::uint64_t pos) const noexcept { return data() + (pos % bytes_); }

private:
    void* base_ = nullptr;
    platform::pid_type mapped_by_;
    bool inherited_ = false;
    std::size_t bytes_;
};

/// The empty `ring` frame: the record that stands for a frame sent over the channel, and the doorbell.
inline std::span<const std::byte> ring_frame() noexcept {
    static const auto frame = make_empty_frame(frame_type::ring);
    return frame;
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_RESULT_RING_HPP
