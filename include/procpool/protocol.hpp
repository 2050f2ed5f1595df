// SPDX-License-Identifier: BSL-1.0
// procpool/protocol.hpp: framing of the messages between the pool and its workers.
//
// A frame is a 5-byte header, u32 little-endian payload length then u8 frame type, followed by the payload,
// whose fields are encoded with the value codec (codec.hpp). Every session starts with the worker's hello,
// which the parent checks (protocol and codec versions, executable identity, task registry hash) before it
// sends anything else:
//   worker -> parent   hello | guard_missing
//   parent -> worker   setup (worker index, initializer, finalizer)
//   worker -> parent   ready | init_failed
//   parent -> worker   [context] task | batch | retire   worker -> parent   [leak] result | batch_result | bye
#ifndef PROCPOOL_PROTOCOL_HPP
#define PROCPOOL_PROTOCOL_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

/// A registered task and its encoded arguments, e.g. an initializer: `procpool::call<init>(42)` (pool.hpp).
struct task_call {
    /// The task's registered name.
    std::string name;
    /// Its encoded arguments.
    std::vector<std::byte> args;
};

namespace detail {

inline constexpr std::uint32_t protocol_version = 2;
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
    last_ = ring
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
};

/// The leak audit's finding: `task` changed these contexts.
struct leak_msg {
    std::string task;
    std::vector<std::string> contexts;
};

/// Header of a task frame; the encoded arguments follow to the end of the frame.
struct task_header {
    std::uint64_t id = 0;
    std::string name;
};

/// Header of a batch frame (one chunk of a map): `count` argument blobs follow.
struct batch_header {
    std::uint64_t id = 0;
    std::string name;
};

/// Outcome of one call: ok + encoded value, or an exception record.
struct outcome {
    bool ok = true;
    std::vector<std::byte> value;
    exception_record error;
};

/// Starts a frame in `buf` (reserving the header); finish_frame fills it in.
inline void begin_frame(std::vector<std::byte>& buf) {
    buf.clear();
    buf.resize(frame_header_size);
}

/// \throws protocol_error when the payload does not fit the 32-bit length field (rather than wrap the length and
/// desynchronize the stream).
/// `lent`: payload bytes sent from elsewhere after `buf`'s (a job's lent arguments).
inline void finish_frame(std::vector<std::byte>& buf, frame_type type, std::size_t lent = 0) {
    const std::size_t size = buf.size() - frame_header_size + lent;
    if (size > 0xffffffffu)
        throw protocol_error("procpool: a " + std::string(frame_type_name(type)) + " frame of " + std::to_string(size) +
                                 " bytes is too large: a frame holds at most 4294967295 bytes",
                             0);
    auto len = static_cast<std::uint32_t>(size);
    std::byte h[frame_header_size];
    for (int i = 0; i < 4; ++i) h[i] = static_cast<std::byte>((len >> (8 * i)) & 0xff);
    h[4] = static_cast<std::byte>(type);
    std::memcpy(buf.data(), h, frame_header_size);
}

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

#endif // PROCPOOL_PROTOCOL_HPP
