// SPDX-License-Identifier: BSL-1.0
// procpool/detail/wire_impl.hpp: the non-template part of detail/wire.hpp (its failure paths): inline in header-only
// mode, compiled once in src.hpp with PROCPOOL_SEPARATE_COMPILATION.
#ifndef PROCPOOL_DETAIL_WIRE_IMPL_HPP
#define PROCPOOL_DETAIL_WIRE_IMPL_HPP

#include <procpool/config.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/error.hpp>

#include <cstddef>
#include <string>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

PROCPOOL_DECL void throw_frame_too_large(frame_type type, std::size_t size) {
    throw protocol_error("procpool: a " + std::string(frame_type_name(type)) + " frame of " + std::to_string(size) +
                             " bytes is too large: a frame holds at most 4294967295 bytes",
                         0);
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_WIRE_IMPL_HPP
