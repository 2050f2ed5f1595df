// SPDX-License-Identifier: BSL-1.0
// procpool/detail/wire.hpp: every message between the pool and its workers, and its framing. The parent and the
// worker share this file and nothing else of each other.
//
// A frame is a 5-byte header, u32 little-endian payload length then u8 frame type, followed by the payload,
// whose fields are encoded with the value codec (codec.hpp). Every session starts with the worker's hello,
// which the parent checks (protocol and codec versions, executable identity, task registry hash) before it
// sends anything else:
//   worker -> parent   hello | guard_missing
//   parent -> worker   setup (worker index, initializer, finalizer)
//   worker -> parent   ready | init_failed
//   parent -> worker   [context] [unshare] [share...] task | batch | retire   worker -> parent   [leak] result | batch_result | bye
#ifndef PROCPOOL_DETAIL_WIRE_HPP
#define PROCPOOL_DETAIL_WIRE_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>
#include <procpool/task.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

// 3: task_died, share, unshare frames; setup limits and isolation. 4: a shared buffer's handle may carry its
// contents (MPI pools); a Windows share frame carries the handle's value.
inline constexpr std::uint32_t protocol_version = 4;
inline constexpr std::size_t frame_header_size = 5;

enum class frame_type : std::uint8_t {
    hello = 1,
    guard_missing,
    setup,
    ready,
    init_failed,
    task,
    batch,
    result,
    batch_result,
    retire,
    bye,
    context, // parent -> worker: context values to apply before the next task
    leak,    // worker -> parent: the leak audit found a task that changed contexts
    plugins, // parent -> worker: plugins loaded since, to load before the next task
    ring,    // worker -> parent, in the result ring: the next frame is on the channel; on the channel: a doorbell
    task_died, // worker -> parent (isolation_mode::per_task): the process it forked for a job ended without answering
    share,   // parent -> worker: a shared buffer's memory (its descriptor comes with the frame; shared_handles.hpp)
    unshare, // parent -> worker: shared buffers the parent dropped, to unmap
    last_ = unshare
};

inline const char* frame_type_name(frame_type t) noexcept {
    switch (t) {
    case frame_type::hello: return "hello";
    case frame_type::guard_missing: return "guard_missing";
    case frame_type::setup: return "setup";
    case frame_type::ready: return "ready";
    case frame_type::init_failed: return "init_failed";
    case frame_type::task: return "task";
    case frame_type::batch: return "batch";
    case frame_type::result: return "result";
    case frame_type::batch_result: return "batch_result";
    case frame_type::retire: return "retire";
    case frame_type::bye: return "bye";
    case frame_type::context: return "context";
    case frame_type::leak: return "leak";
    case frame_type::plugins: return "plugins";
    case frame_type::ring: return "ring";
    case frame_type::task_died: return "task_died";
    case frame_type::share: return "share";
    case frame_type::unshare: return "unshare";
    }
    return "unknown";
}

struct hello_msg {
    std::uint32_t protocol = protocol_version;
    std::uint32_t codec = codec_version;
    std::uint64_t registry_hash = 0;
    std::string executable;
    std::int64_t pid = 0;
};

struct setup_msg {
    std::int64_t worker_index = 0;
    std::optional<task_call> initializer;
    std::optional<task_call> finalizer;
    std::uint8_t log_level = 0;
    std::uint8_t leak_audit = 0; // leak_policy
    std::vector<std::string> plugins; // to load, in order, before the initializer
    std::uint32_t result_ring = 0;    // data bytes of the result ring whose memory came with this frame; 0: none
    bool per_task = false;            // isolation_mode::per_task: fork a process per job
    std::uint64_t limit_address_space = 0; // resource_limits, applied after the initializer (0: none)
    std::uint64_t limit_cpu_seconds = 0;
    std::uint64_t limit_open_files = 0;
    bool no_core_dumps = false;
};

/// A job's process (isolation_mode::per_task) ended without answering: how, so the pool fails just that job.
struct task_died_msg {
    std::uint64_t id = 0; // the job
    std::int64_t pid = 0; // the process forked for it
    std::int32_t code = -1;
    std::int32_t signal = 0;
};

/// The leak audit's finding: `task` changed these contexts.
struct leak_msg {
    std::string task;
    std::vector<std::string> contexts;
};

/// A worker frees buffers above this size once their frame is handled (an idle worker keeps none); the pool touches
/// the pages of a frame this large before encoding into it.
inline constexpr std::size_t large_buffer_bytes = std::size_t{1} << 20;

/// How a worker process is told what it is (argv[1]), and where its channel is (the environment).
inline constexpr const char* worker_flag = "--procpool-worker";
inline constexpr const char* forkserver_flag = "--procpool-forkserver";
/// Set in a spawned worker's environment, so a pool constructed there before serve_if_worker is noticed.
inline constexpr const char* worker_env = "PROCPOOL_WORKER_CHANNEL";

/// What a template_record reports.
enum class template_event : std::int32_t {
    started = 1,    ///< a worker: its channel (and, where the system has them, a process handle) come with it
    exited = 2,     ///< a worker ended: code and signal
    start_failed = 3 ///< no worker: `code` is the errno of the socketpair or fork that failed
};

/// What the fork template (or forkserver) sends the pool, with descriptors attached for `started`.
struct template_record {
    template_event kind;
    std::int32_t code;
    std::int32_t signal;
    std::int32_t pad;
    std::int64_t pid;
};

/// Writes the head of a task or batch frame into `buf` (after begin_frame): the job's id and the task's name. A
/// task's arguments follow to the end of the frame; a batch's count and length-prefixed items (batch_items).
PROCPOOL_DECL void write_job_head(std::vector<std::byte>& buf, std::uint64_t id, std::string_view task);

/// The head of a task or batch frame, as write_job_head wrote it. \throws protocol_error.
struct job_head {
    std::uint64_t id = 0;
    std::string task;
};
inline job_head read_job_head(reader& r) {
    job_head h;
    h.id = r.read<std::uint64_t>();
    h.task = r.read<std::string>();
    return h;
}

/// In a batch frame, one item's length is written before its bytes, once they are encoded: reserve_item_length
/// keeps its place, finish_item writes it.
PROCPOOL_DECL std::size_t reserve_item_length(std::vector<std::byte>& buf);
/// Overwrites the 8 bytes at `at` (kept by reserve_item_length) with `v`, little-endian as the codec writes it.
PROCPOOL_DECL void patch_u64(std::vector<std::byte>& buf, std::size_t at, std::uint64_t v);
PROCPOOL_DECL void finish_item(std::vector<std::byte>& buf, std::size_t at);

/// Starts a frame in `buf` (reserving the header); finish_frame fills it in. `expected`: the payload bytes the
/// caller expects to write, reserved at once: a task's frame is then one allocation, not one per field. At least
/// 64 bytes: measured (P2, alternating runs), a tiny task's frame reserved at its exact size (29 bytes) made one
/// submit each about 8 % slower than 64, and 96 cost 3 MiB more per 100k queued tasks for no gain.
PROCPOOL_DECL void begin_frame(std::vector<std::byte>& buf, std::size_t expected = 0);

/// The payload bytes of a task's frame, about: its head (id, name) and each argument's size in memory (a scalar's
/// or an aggregate's encoding is that long) plus `contents`, the bytes its strings and containers hold.
template <class... Args>
constexpr std::size_t expected_task_bytes(std::string_view task, std::size_t contents) noexcept {
    return 2 * sizeof(std::uint64_t) + task.size() + (sizeof(std::remove_cvref_t<Args>) + ... + std::size_t{0}) +
           contents;
}

/// \throws protocol_error: a frame of `size` bytes does not fit the 32-bit length field.
[[noreturn]] PROCPOOL_DECL void throw_frame_too_large(frame_type type, std::size_t size);

/// \throws protocol_error when the payload does not fit the 32-bit length field (rather than wrap the length and
/// desynchronize the stream).
/// `lent`: payload bytes sent from elsewhere after `buf`'s (a job's lent arguments).
PROCPOOL_DECL void finish_frame(std::vector<std::byte>& buf, frame_type type, std::size_t lent = 0);

template <class Msg>
std::vector<std::byte> make_frame(frame_type type, const Msg& m) {
    std::vector<std::byte> buf;
    begin_frame(buf);
    encode_to(buf, m);
    finish_frame(buf, type);
    return buf;
}

inline std::vector<std::byte> make_empty_frame(frame_type type) {
    std::vector<std::byte> buf;
    begin_frame(buf);
    finish_frame(buf, type);
    return buf;
}

struct frame_head {
    std::size_t length = 0;
    frame_type type{};
};

/// Validates a frame header. \throws protocol_error for an unknown type or an oversized length.
inline frame_head parse_frame_head(const std::byte* h, std::size_t max_bytes) {
    std::uint32_t len = 0;
    for (int i = 0; i < 4; ++i) len |= static_cast<std::uint32_t>(h[i]) << (8 * i);
    auto t = static_cast<std::uint8_t>(h[4]);
    if (t < static_cast<std::uint8_t>(frame_type::hello) || t > static_cast<std::uint8_t>(frame_type::last_))
        throw protocol_error("procpool: corrupt frame: unknown frame type " + std::to_string(t), 4);
    if (len > max_bytes)
        throw protocol_error("procpool: corrupt frame: length " + std::to_string(len) + " exceeds the limit of " +
                                 std::to_string(max_bytes) + " bytes",
                             0);
    return {len, static_cast<frame_type>(t)};
}

/// Accumulates bytes from a non-blocking stream and cuts them into frames.
class frame_reader {
public:
    /// Space to read into (at least `min` bytes).
    std::span<std::byte> prepare(std::size_t min = 64 * 1024) {
        if (start_ > 0 && start_ == end_) start_ = end_ = 0;
        if (buf_.size() - end_ < min) {
            if (start_ > 0) { // compact before growing
                std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
                end_ -= start_;
                start_ = 0;
            }
            // Toward the frame being read, but at most grow_step ahead of the bytes that arrived: a header that
            // claims 4 GiB costs nothing until the bytes come (std::vector still grows its capacity geometrically).
            if (buf_.size() - end_ < min) buf_.resize(std::max(end_ + min, std::min(want_, end_ + grow_step)));
        }
        return {buf_.data() + end_, buf_.size() - end_};
    }
    void commit(std::size_t n) noexcept { end_ += n; }

    /// The next complete frame, if one has arrived. The span stays valid until the next prepare().
    /// \throws protocol_error on a corrupt header.
    std::optional<std::pair<frame_type, std::span<const std::byte>>> next(std::size_t max_bytes) {
        if (end_ - start_ < frame_header_size) return std::nullopt;
        auto head = parse_frame_head(buf_.data() + start_, max_bytes);
        std::size_t total = frame_header_size + head.length;
        if (end_ - start_ < total) {
            want_ = total; // the next prepare()s make room for the rest of the frame as it arrives
            return std::nullopt;
        }
        std::span<const std::byte> payload(buf_.data() + start_ + frame_header_size, head.length);
        start_ += total;
        want_ = 0;
        return std::pair{head.type, payload};
    }

    [[nodiscard]] bool empty() const noexcept { return start_ == end_; }

    /// How far ahead of the received bytes prepare() allocates for a partly received frame.
    static constexpr std::size_t grow_step = std::size_t{1} << 20;

private:
    std::vector<std::byte> buf_;
    std::size_t start_ = 0, end_ = 0, want_ = 0;
};

} // namespace detail

PROCPOOL_END_NAMESPACE

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/wire_impl.hpp>
#endif

#endif // PROCPOOL_DETAIL_WIRE_HPP
