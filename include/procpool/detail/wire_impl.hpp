// SPDX-License-Identifier: BSL-1.0
// procpool/detail/wire_impl.hpp: the non-template part of detail/wire.hpp (building a frame, its failure paths):
// inline in header-only mode, compiled once in src.hpp with PROCPOOL_SEPARATE_COMPILATION, so that a file that
// submits does not compile them (and the vector operations they use) again.
#ifndef PROCPOOL_DETAIL_WIRE_IMPL_HPP
#define PROCPOOL_DETAIL_WIRE_IMPL_HPP

#include <procpool/config.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

PROCPOOL_DECL void write_job_head(std::vector<std::byte>& buf, std::uint64_t id, std::string_view task) {
    writer w(buf);
    w.write(id);
    w.write(static_cast<std::uint64_t>(task.size())); // as a std::string is encoded: count, then bytes
    w.write_bytes(task.data(), task.size());
}

PROCPOOL_DECL std::size_t reserve_item_length(std::vector<std::byte>& buf) {
    writer(buf).write(std::uint64_t{0});
    return buf.size() - 8;
}

PROCPOOL_DECL void patch_u64(std::vector<std::byte>& buf, std::size_t at, std::uint64_t v) {
    for (std::size_t b = 0; b < 8; ++b) buf[at + b] = static_cast<std::byte>((v >> (8 * b)) & 0xff);
}

PROCPOOL_DECL void finish_item(std::vector<std::byte>& buf, std::size_t at) {
    patch_u64(buf, at, static_cast<std::uint64_t>(buf.size() - at - 8));
}

PROCPOOL_DECL void begin_frame(std::vector<std::byte>& buf, std::size_t expected) {
    constexpr std::size_t least = 64;
    buf.clear();
    if (buf.capacity() < frame_header_size + expected) buf.reserve(std::max(least, frame_header_size + expected));
    buf.resize(frame_header_size);
}

PROCPOOL_DECL void finish_frame(std::vector<std::byte>& buf, frame_type type, std::size_t lent) {
    const std::size_t size = buf.size() - frame_header_size + lent;
    if (size > 0xffffffffu) throw_frame_too_large(type, size);
    auto len = static_cast<std::uint32_t>(size);
    std::byte h[frame_header_size];
    for (int i = 0; i < 4; ++i) h[i] = static_cast<std::byte>((len >> (8 * i)) & 0xff);
    h[4] = static_cast<std::byte>(type);
    std::memcpy(buf.data(), h, frame_header_size);
}

PROCPOOL_DECL void throw_frame_too_large(frame_type type, std::size_t size) {
    throw protocol_error("procpool: a " + std::string(frame_type_name(type)) + " frame of " + std::to_string(size) +
                             " bytes is too large: a frame holds at most 4294967295 bytes",
                         0);
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_WIRE_IMPL_HPP
