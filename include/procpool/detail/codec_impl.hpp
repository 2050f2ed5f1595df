// SPDX-License-Identifier: BSL-1.0
// procpool/detail/codec_impl.hpp: the non-template part of codec.hpp (a reader's failure paths, and reading past
// its window): inline in header-only mode, compiled once in src.hpp with PROCPOOL_SEPARATE_COMPILATION.
#ifndef PROCPOOL_DETAIL_CODEC_IMPL_HPP
#define PROCPOOL_DETAIL_CODEC_IMPL_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

PROCPOOL_BEGIN_NAMESPACE

PROCPOOL_DECL void reader::fail_invalid_at(std::size_t at, const std::string& what) const {
    throw protocol_error("procpool: corrupt value: " + what + " at byte offset " + std::to_string(at), at);
}

PROCPOOL_DECL void reader::fail_flag(std::size_t at, const char* what, unsigned value) const {
    fail_invalid_at(at, std::string(what) + " " + std::to_string(value) + " (must be 0 or 1)");
}

PROCPOOL_DECL void reader::fail_variant_index(std::size_t at, std::uint32_t index, std::size_t count) const {
    fail_invalid_at(at, "variant index " + std::to_string(index) + " (the variant has " + std::to_string(count) +
                            " alternatives)");
}

PROCPOOL_DECL void reader::fail(const char* what, std::size_t need) const {
    throw protocol_error("procpool: truncated value: expected " + std::string(what) + " (" + std::to_string(need) +
                             " bytes) at byte offset " + std::to_string(offset()) + ", but only " +
                             std::to_string(remaining()) + " bytes remain",
                         offset());
}

PROCPOOL_DECL void reader::read_beyond_window(std::byte* dst, std::size_t n, const char* what) {
    if (n > remaining()) fail(what, n);
    auto avail = in_.size() - pos_;
    if (avail) std::memcpy(dst, in_.data() + pos_, avail);
    dst += avail;
    n -= avail;
    pos_ += avail;
    if (n >= direct_bytes) { // a large run goes straight to its destination, not through the window
        base_ += in_.size() + n;
        pos_ = 0;
        in_ = {};
        src_->read_direct(dst, n);
        return;
    }
    while (n) {
        next_window();
        auto take = std::min(n, in_.size());
        std::memcpy(dst, in_.data(), take);
        dst += take;
        n -= take;
        pos_ = take;
    }
}

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_CODEC_IMPL_HPP
