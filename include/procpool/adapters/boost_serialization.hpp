// SPDX-License-Identifier: BSL-1.0
// procpool/adapters/boost_serialization.hpp: optional. Types that already serialize with Boost.Serialization (a
// `serialize(Archive&, unsigned)` member, `save`/`load` members, or free functions) cross the process boundary
// through it, unchanged. Boost.Serialization is a compiled library: link Boost::serialization (-lboost_serialization).
#ifndef PROCPOOL_ADAPTERS_BOOST_SERIALIZATION_HPP
#define PROCPOOL_ADAPTERS_BOOST_SERIALIZATION_HPP

#include <procpool/adapters/archive_stream.hpp>
#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#if !__has_include(<boost/archive/binary_oarchive.hpp>)
#error "procpool: procpool/adapters/boost_serialization.hpp needs Boost.Serialization (<boost/archive/binary_oarchive.hpp>; Debian: libboost-serialization1.81-dev). Install it, or do not include this adapter."
#endif
#include <boost/archive/archive_exception.hpp>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>

#include <ios>
#include <istream>
#include <ostream>
#include <type_traits>

PROCPOOL_BEGIN_NAMESPACE

/// Opt-in for a type whose Boost.Serialization code procpool cannot see from outside: a private `serialize` (reached
/// through `friend class boost::serialization::access`), private `save`/`load`, or non-intrusive free functions
/// `boost::serialization::serialize(ar, T&, unsigned)`. Set it to true for T:
/// `template <> inline constexpr bool procpool::use_boost_serialization<my_type> = true;`
/// (or with the macro PROCPOOL_BOOST_SERIALIZABLE(my_type) at global scope).
template <class T>
inline constexpr bool use_boost_serialization = false;

/// A class that Boost.Serialization serializes: a public `template <class A> void serialize(A&, unsigned)` member,
/// or public `save(A&, unsigned) const` and `load(A&, unsigned)` members (BOOST_SERIALIZATION_SPLIT_MEMBER), or any
/// type opted in with use_boost_serialization. Including this header makes every such type `serializable`: it is
/// encoded with a binary archive (no header: parent and workers are one build) and sent as a u64 length and those
/// bytes. Include it wherever the type is sent or received (the header that defines the type is the safest place),
/// so that every translation unit encodes it the same way. The type must be default-constructible (the archive
/// loads into an existing object).
template <class T>
concept boost_serialization_serializable =
    std::is_class_v<T> && std::is_default_constructible_v<T> &&
    (use_boost_serialization<T> ||
     requires(T& t, const T& c, boost::archive::binary_oarchive& o, boost::archive::binary_iarchive& i) {
         t.serialize(o, 0u);
         t.serialize(i, 0u);
     } ||
     requires(T& t, const T& c, boost::archive::binary_oarchive& o, boost::archive::binary_iarchive& i) {
         c.save(o, 0u);
         t.load(i, 0u);
     });

/// Encodes a Boost.Serialization value (found by argument-dependent lookup through `writer`).
template <boost_serialization_serializable T>
void procpool_encode(writer& w, const T& v) {
    detail::write_archived(w, [&](std::ostream& os) {
        boost::archive::binary_oarchive ar(os, boost::archive::no_header);
        ar << v;
    });
}

/// Decodes a Boost.Serialization value. \throws protocol_error when the archive rejects the bytes (truncated or
/// corrupt).
template <boost_serialization_serializable T>
T procpool_decode(reader& r, type_tag<T>) {
    return detail::read_archived<T, boost::archive::archive_exception, std::ios_base::failure>(
        r, "Boost.Serialization", [](std::istream& is, T& v) {
            boost::archive::binary_iarchive ar(is, boost::archive::no_header);
            ar >> v;
        });
}

PROCPOOL_END_NAMESPACE

/// Opts `Type` (a complete name at global scope) in to the Boost.Serialization adapter: see
/// procpool::use_boost_serialization.
#define PROCPOOL_BOOST_SERIALIZABLE(Type)                                                                              \
    template <>                                                                                                        \
    inline constexpr bool ::procpool::use_boost_serialization<Type> = true

#endif // PROCPOOL_ADAPTERS_BOOST_SERIALIZATION_HPP
