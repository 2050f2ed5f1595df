// SPDX-License-Identifier: BSL-1.0
// procpool/adapters/cereal.hpp: optional. Types that already serialize with cereal (a `serialize` member, or
// `save`/`load` members) cross the process boundary through it, unchanged.
#ifndef PROCPOOL_ADAPTERS_CEREAL_HPP
#define PROCPOOL_ADAPTERS_CEREAL_HPP

#include <procpool/adapters/archive_stream.hpp>
#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#if !__has_include(<cereal/archives/portable_binary.hpp>)
#error "procpool: procpool/adapters/cereal.hpp needs cereal (<cereal/archives/portable_binary.hpp>; Debian: libcereal-dev). Install it or add its include directory, or do not include this adapter."
#endif
#include <cereal/archives/portable_binary.hpp>

#include <concepts>
#include <istream>
#include <ostream>
#include <type_traits>

PROCPOOL_BEGIN_NAMESPACE

/// A class that cereal serializes through its own members: `template <class A> void serialize(A&)`, or the
/// `save`/`load` pair (public, or private with `friend class cereal::access`), versioned or not. Including this
/// header makes every such type `serializable`: it is encoded with cereal's PortableBinaryArchive (little-endian on
/// every platform) and sent as a u64 length and those bytes. Include it wherever the type is sent or received (the
/// header that defines the type is the safest place), so that every translation unit encodes it the same way.
/// The type must be default-constructible (cereal loads into an existing object).
template <class T>
concept cereal_member_serializable =
    std::is_class_v<T> && std::is_default_constructible_v<T> &&
    (cereal::traits::has_member_serialize<T, cereal::PortableBinaryOutputArchive>::value ||
     cereal::traits::has_member_versioned_serialize<T, cereal::PortableBinaryOutputArchive>::value ||
     (cereal::traits::has_member_save<T, cereal::PortableBinaryOutputArchive>::value &&
      cereal::traits::has_member_load<T, cereal::PortableBinaryInputArchive>::value) ||
     (cereal::traits::has_member_versioned_save<T, cereal::PortableBinaryOutputArchive>::value &&
      cereal::traits::has_member_versioned_load<T, cereal::PortableBinaryInputArchive>::value));

/// Encodes a cereal-serializable value (found by argument-dependent lookup through `writer`).
template <cereal_member_serializable T>
void procpool_encode(writer& w, const T& v) {
    detail::write_archived(w, [&](std::ostream& os) {
        cereal::PortableBinaryOutputArchive ar(os);
        ar(v);
    });
}

/// Decodes a cereal-serializable value. \throws protocol_error when cereal rejects the bytes (truncated or corrupt).
template <cereal_member_serializable T>
T procpool_decode(reader& r, type_tag<T>) {
    return detail::read_archived<T, cereal::Exception>(r, "cereal", [](std::istream& is, T& v) {
        cereal::PortableBinaryInputArchive ar(is);
        ar(v);
    });
}

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_ADAPTERS_CEREAL_HPP
