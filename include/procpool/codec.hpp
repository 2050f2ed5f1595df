// SPDX-License-Identifier: BSL-1.0
// procpool/codec.hpp: encoding of values on the wire.
//
// Wire layout (version 1; little-endian, explicit widths, no padding, no alignment):
//   bool                      1 byte, 0 or 1 (anything else is corrupt)
//   integers, char types      their own width (int32_t: 4 bytes), two's complement
//   float, double             IEEE-754 binary32 / binary64 bit pattern
//   enum                      its underlying integer
//   std::byte                 1 byte
//   string, sequences, sets   u64 element count, then the elements
//   maps                      u64 count, then key, value, key, value...
//   std::array<T, N>          N elements, no count
//   optional, unique_ptr      u8 0 (empty) or 1 followed by the value
//   variant                   u32 alternative index, then the alternative
//   pair, tuple, aggregates   the fields in declaration order (aggregates through Boost.PFR)
//   chrono duration           its rep;  time_point: the duration since its clock's epoch
//   std::filesystem::path     its generic form (separators '/') as a UTF-8 string: u64 count, then the bytes
//   std::bitset<N>            ceil(N / 8) bytes, bit i in byte i / 8 at bit i % 8; unused high bits 0
//   std::complex<T>           real part, then imaginary part (T: float or double)
//   std::monostate, empty aggregates   nothing (so they cannot be the elements of a counted container)
// A count is refused before anything is allocated when the bytes that follow could not hold it.
#ifndef PROCPOOL_CODEC_HPP
#define PROCPOOL_CODEC_HPP

#include <procpool/config.hpp>
#include <procpool/error.hpp>
#include <procpool/platform/memory.hpp>

// Aggregates are reflected with PFR: Boost.PFR (<boost/pfr/core.hpp>, Boost >= 1.75) when present, else the
// standalone PFR (<pfr.hpp>, namespace pfr), so that copying procpool's headers needs no Boost at all. Defining
// PROCPOOL_USE_STANDALONE_PFR chooses the standalone one even when Boost's is there.
#if defined(PROCPOOL_USE_STANDALONE_PFR)
#if !__has_include(<pfr.hpp>)
#error "procpool: PROCPOOL_USE_STANDALONE_PFR is defined but <pfr.hpp> (the standalone PFR) is not on the include path. Add its include directory, or leave the macro undefined to use Boost.PFR."
#endif
#include <pfr.hpp>
#define PROCPOOL_DETAIL_PFR_NAMESPACE ::pfr
#elif __has_include(<boost/pfr/core.hpp>)
#include <boost/pfr/core.hpp>
#define PROCPOOL_DETAIL_PFR_NAMESPACE ::boost::pfr
#elif __has_include(<pfr.hpp>)
#include <pfr.hpp>
#define PROCPOOL_DETAIL_PFR_NAMESPACE ::pfr
#else
#error "procpool: needs PFR to serialize aggregates: Boost.PFR (<boost/pfr/core.hpp>, Boost >= 1.75) or the standalone PFR (<pfr.hpp>). Install one (Debian: libboost-dev) or add its include directory."
#endif

#include <array>
#include <bit>
#include <bitset>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {
namespace pfr = PROCPOOL_DETAIL_PFR_NAMESPACE; // Boost.PFR or the standalone PFR: the same interface
/// Whether aggregates are reflected by the standalone PFR (<pfr.hpp>) rather than Boost.PFR.
inline constexpr bool standalone_pfr =
#if defined(PROCPOOL_USE_STANDALONE_PFR) || !__has_include(<boost/pfr/core.hpp>)
    true;
#else
    false;
#endif
} // namespace detail

/// Version of the value layout described at the top of this header; checked in the worker handshake.
inline constexpr std::uint32_t codec_version = 1;

/// Tag that carries a type to an ADL `procpool_decode` overload.
template <class T>
struct type_tag {};

class writer;
class reader;

namespace detail {

template <class T>
inline constexpr bool dependent_false = false;

template <class T, template <class...> class Tmpl>
struct is_spec : std::false_type {};
template <template <class...> class Tmpl, class... A>
struct is_spec<Tmpl<A...>, Tmpl> : std::true_type {};
template <class T, template <class...> class Tmpl>
inline constexpr bool is_spec_v = is_spec<std::remove_cv_t<T>, Tmpl>::value;

template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};

// The customization point, as ADL free functions. The deleted declarations stop unqualified lookup
// from finding anything but the user's overloads.
void procpool_encode() = delete;
void procpool_decode() = delete;

template <class T>
concept has_member_codec = requires(const T& v, writer& w, reader& r) {
    v.procpool_encode(w);
    { T::procpool_decode(r) } -> std::same_as<T>;
};
template <class T>
concept has_adl_codec = requires(const T& v, writer& w, reader& r) {
    procpool_encode(w, v);
    { procpool_decode(r, type_tag<T>{}) } -> std::same_as<T>;
};

enum class kind {
    unsupported,
    custom,
    boolean,
    arithmetic,
    enumeration,
    byte,
    string,
    sequence,
    set_like,
    map_like,
    std_array,
    optional,
    variant,
    monostate,
    tuple_like,
    duration,
    time_point,
    unique_ptr,
    path,
    bitset,
    complex,
    aggregate,
};

// std::filesystem::path and std::complex are recognized by what they offer, not by name, so that this header needs
// neither <filesystem> nor <complex> (together about a fifth of what a file that includes procpool parses): a file
// that has a path or a complex value to send has included its header already.
template <class U>
concept path_like = requires(const U& p) {
    typename U::string_type;
    p.native();
    { p.generic_u8string() } -> std::same_as<std::u8string>;
} && std::is_constructible_v<U, std::u8string>;

template <class T>
struct is_complex : std::false_type {};
template <template <class> class C, class T>
    requires requires(const C<T>& c) {
        { c.real() } -> std::same_as<T>;
        { c.imag() } -> std::same_as<T>;
    } && std::is_same_v<typename C<T>::value_type, T> && std::is_constructible_v<C<T>, T, T>
struct is_complex<C<T>> : std::true_type {};

template <class T>
struct is_bitset : std::false_type {};
template <std::size_t N>
struct is_bitset<std::bitset<N>> : std::true_type {
    static constexpr std::size_t bits = N;
};

template <class T>
consteval kind kind_of() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_reference_v<T> || std::is_pointer_v<U> || std::is_array_v<U> ||
                  std::is_member_pointer_v<U> || std::is_function_v<U> || std::is_void_v<U>)
        return kind::unsupported;
    else if constexpr (has_member_codec<U> || has_adl_codec<U>) return kind::custom;
    else if constexpr (std::is_same_v<U, bool>) return kind::boolean;
    else if constexpr (std::is_same_v<U, long double>) return kind::unsupported; // width differs by platform
    else if constexpr (std::is_arithmetic_v<U>) return kind::arithmetic;
    else if constexpr (std::is_same_v<U, std::byte>) return kind::byte;
    else if constexpr (std::is_enum_v<U>) return kind::enumeration;
    else if constexpr (is_spec_v<U, std::basic_string>) return kind::string;
    else if constexpr (is_spec_v<U, std::vector> || is_spec_v<U, std::deque> || is_spec_v<U, std::list>)
        return kind::sequence;
    else if constexpr (is_spec_v<U, std::set> || is_spec_v<U, std::multiset> || is_spec_v<U, std::unordered_set> ||
                       is_spec_v<U, std::unordered_multiset>)
        return kind::set_like;
    else if constexpr (is_spec_v<U, std::map> || is_spec_v<U, std::multimap> || is_spec_v<U, std::unordered_map> ||
                       is_spec_v<U, std::unordered_multimap>)
        return kind::map_like;
    else if constexpr (is_std_array<U>::value) return kind::std_array;
    else if constexpr (is_spec_v<U, std::optional>) return kind::optional;
    else if constexpr (is_spec_v<U, std::variant>) return kind::variant;
    else if constexpr (std::is_same_v<U, std::monostate>) return kind::monostate;
    else if constexpr (is_spec_v<U, std::tuple> || is_spec_v<U, std::pair>) return kind::tuple_like;
    else if constexpr (is_spec_v<U, std::chrono::duration>) return kind::duration;
    else if constexpr (is_spec_v<U, std::chrono::time_point>) return kind::time_point;
    else if constexpr (is_spec_v<U, std::unique_ptr>) return kind::unique_ptr;
    else if constexpr (path_like<U>) return kind::path;
    else if constexpr (is_bitset<U>::value) return kind::bitset;
    else if constexpr (is_complex<U>::value) return kind::complex;
    else if constexpr (std::is_class_v<U> && std::is_aggregate_v<U>) return kind::aggregate;
    else return kind::unsupported;
}

template <class T>
consteval bool is_serializable();
template <class T>
consteval std::size_t min_wire_size();

// Boost.PFR counts the initializers an aggregate accepts, and a C array member takes one per element (brace
// elision), so PFR's count exceeds the members and reflecting the type is a hard error. Find such a member first,
// so that `serializable` stays false and the diagnostic is ours: slot I starts a C array when braces there (which
// take the whole array) leave too many initializers for the slots after it. The probes mirror PFR's own.
template <class U>
U& never_called() noexcept { // instantiated inside the unevaluated probes below, never run
    U* p = nullptr;
    return *p;
}
struct any_field_lref {
    std::size_t ignore;
    template <class U>
    operator U&() const&& noexcept {
        return never_called<U>();
    }
    template <class U>
    operator U&() const& noexcept {
        return never_called<U>();
    }
};
struct any_field_rref {
    std::size_t ignore;
    template <class U>
    operator U() const&& noexcept {
        return static_cast<U&&>(never_called<U>());
    }
};
template <class T, class Any, std::size_t... B, std::size_t... A>
consteval bool braces_fit(std::index_sequence<B...>, std::index_sequence<A...>) {
    return requires { T{Any{B}..., {}, Any{A}...}; };
}
template <class T, std::size_t I, std::size_t After>
consteval bool braces_fit_at() {
    using any = std::conditional_t<std::is_copy_constructible_v<T>, any_field_lref, any_field_rref>;
    return braces_fit<T, any>(std::make_index_sequence<I>{}, std::make_index_sequence<After>{});
}
template <class T, std::size_t I, std::size_t N>
consteval bool has_c_array_from() {
    if constexpr (I >= N) return false;
    else if constexpr (!braces_fit_at<T, I, N - I - 1>() && braces_fit_at<T, I, 0>()) return true;
    else return has_c_array_from<T, I + 1, N>();
}
template <class T> // T: an aggregate
consteval bool has_c_array_member() {
    return has_c_array_from<T, 0, detail::pfr::tuple_size_v<T>>();
}

template <class Tuple, std::size_t... I>
consteval bool all_tuple_elements(std::index_sequence<I...>) {
    return (is_serializable<std::tuple_element_t<I, Tuple>>() && ...);
}
template <class T, std::size_t... I>
consteval bool all_fields(std::index_sequence<I...>) {
    return (is_serializable<detail::pfr::tuple_element_t<I, T>>() && ...);
}
template <class... A>
consteval bool all_of_types(type_tag<std::variant<A...>>) {
    return (is_serializable<A>() && ...);
}

template <class E> // E may be the element of a counted container: serializable, and never encoded to nothing
consteval bool countable() {
    if constexpr (!is_serializable<E>()) return false;
    else return min_wire_size<E>() != 0;
}

template <class T>
consteval bool is_serializable() {
    using U = std::remove_cv_t<T>;
    constexpr kind k = kind_of<T>();
    if constexpr (k == kind::unsupported) return false;
    // A count of elements that encode to nothing is bounded by no input, so it could not be refused.
    else if constexpr (k == kind::sequence || k == kind::set_like) return countable<typename U::value_type>();
    else if constexpr (k == kind::std_array || k == kind::optional) return is_serializable<typename U::value_type>();
    else if constexpr (k == kind::map_like)
        return countable<std::pair<typename U::key_type, typename U::mapped_type>>();
    else if constexpr (k == kind::variant) return all_of_types(type_tag<U>{});
    else if constexpr (k == kind::tuple_like)
        return all_tuple_elements<U>(std::make_index_sequence<std::tuple_size_v<U>>{});
    else if constexpr (k == kind::duration) return std::is_arithmetic_v<typename U::rep>;
    else if constexpr (k == kind::time_point) return is_serializable<typename U::duration>();
    else if constexpr (k == kind::complex) // long double: platform-dependent width, as on its own
        return std::is_same_v<typename U::value_type, float> || std::is_same_v<typename U::value_type, double>;
    else if constexpr (k == kind::unique_ptr)
        return !std::is_array_v<typename U::element_type> && !std::is_polymorphic_v<typename U::element_type> &&
               std::is_same_v<typename U::deleter_type, std::default_delete<typename U::element_type>> &&
               is_serializable<typename U::element_type>();
    else if constexpr (k == kind::aggregate) {
        if constexpr (has_c_array_member<U>()) return false;
        else return all_fields<U>(std::make_index_sequence<detail::pfr::tuple_size_v<U>>{});
    } else return true;
}

} // namespace detail

/// A type whose values procpool can encode and decode: arithmetic types, enums, std::byte, strings,
/// std containers, optional, variant, tuple, pair, chrono durations and time points (any clock, e.g.
/// system_clock::time_point), std::filesystem::path, std::bitset, std::complex<float|double>, unique_ptr to a
/// non-polymorphic serializable type, aggregates of serializable fields, and types with the
/// customization point (see `writer`).
template <class T>
concept serializable = detail::is_serializable<T>();

namespace detail {

template <class T>
consteval std::size_t min_wire_size();

template <class Tuple, std::size_t... I>
consteval std::size_t sum_tuple_min(std::index_sequence<I...>) {
    return (std::size_t{0} + ... + min_wire_size<std::tuple_element_t<I, Tuple>>());
}
template <class T, std::size_t... I>
consteval std::size_t sum_fields_min(std::index_sequence<I...>) {
    return (std::size_t{0} + ... + min_wire_size<detail::pfr::tuple_element_t<I, T>>());
}

/// The fewest bytes any value of T encodes to: bounds a container count by the bytes that follow it.
template <class T>
consteval std::size_t min_wire_size() {
    using U = std::remove_cv_t<T>;
    constexpr kind k = kind_of<T>();
    if constexpr (k == kind::boolean || k == kind::byte) return 1;
    else if constexpr (k == kind::arithmetic) return sizeof(U);
    else if constexpr (k == kind::enumeration) return sizeof(std::underlying_type_t<U>);
    else if constexpr (k == kind::string || k == kind::sequence || k == kind::set_like || k == kind::map_like)
        return 8;
    else if constexpr (k == kind::std_array) return std::tuple_size_v<U> * min_wire_size<typename U::value_type>();
    else if constexpr (k == kind::optional || k == kind::unique_ptr) return 1;
    else if constexpr (k == kind::variant) return 4;
    else if constexpr (k == kind::tuple_like) return sum_tuple_min<U>(std::make_index_sequence<std::tuple_size_v<U>>{});
    else if constexpr (k == kind::duration) return sizeof(typename U::rep);
    else if constexpr (k == kind::time_point) return sizeof(typename U::rep);
    else if constexpr (k == kind::path) return 8;
    else if constexpr (k == kind::bitset) return (is_bitset<U>::bits + 7) / 8;
    else if constexpr (k == kind::complex) return 2 * sizeof(typename U::value_type);
    else if constexpr (k == kind::aggregate)
        return sum_fields_min<U>(std::make_index_sequence<detail::pfr::tuple_size_v<U>>{});
    else if constexpr (k == kind::custom) return 1; // assumed: a custom encoding writes at least one byte
    else return 0;                                  // empty types: nothing
}

/// How much of a received element count is reserved before its bytes arrive (see reader::read_contiguous).
inline constexpr std::size_t trusted_reserve_bytes = std::size_t{256} << 20;

/// Reserves room for n elements in a contiguous container; above 2 MiB the kernel is asked for huge pages,
/// which makes first-touching a large argument several times cheaper (one fault per 2 MiB instead of per 4 KiB).
template <class C>
void reserve_large(C& c, std::size_t n) {
    using E = typename C::value_type;
    constexpr std::size_t huge = std::size_t{2} << 20;
    if (n <= c.capacity()) return;
    c.reserve(n);
    if (n >= huge / sizeof(E)) platform::advise_huge_pages(c.data(), c.capacity() * sizeof(E));
}

template <class T>
inline constexpr bool memcpy_sequence =
    std::is_same_v<T, std::byte> || // a blob: one memcpy, never a call per byte
    (std::endian::native == std::endian::little && std::is_arithmetic_v<T> && !std::is_same_v<T, bool> &&
     !std::is_same_v<T, long double>);

/// A string or std::vector whose elements are copied as bytes (decoded with one copy, into reusable storage).
template <class U>
concept contiguous_codec = requires { typename U::value_type; } && memcpy_sequence<typename U::value_type> &&
                           (kind_of<U>() == kind::string || (kind_of<U>() == kind::sequence && is_spec_v<U, std::vector>));

} // namespace detail

/// Appends encoded values to a byte buffer. Custom types implement either members
/// `void procpool_encode(procpool::writer&) const` and `static T procpool_decode(procpool::reader&)`,
/// or the ADL pair `procpool_encode(procpool::writer&, const T&)` and
/// `T procpool_decode(procpool::reader&, procpool::type_tag<T>)`, writing and reading their parts in
/// the same order. A custom encoding must write at least one byte (a type without state needs no customization
/// point):
/// \code
/// struct celsius { double v; /* private members and invariants... */
///     void procpool_encode(procpool::writer& w) const { w.write(v); }
///     static celsius procpool_decode(procpool::reader& r) { return celsius{r.read<double>()}; }
/// };
/// \endcode
class writer {
public:
    /// Appends encoded values to `out`.
    explicit writer(std::vector<std::byte>& out) noexcept : out_(&out) {}

    /// Appends the encoding of `v`.
    template <class T>
    void write(const T& v);

    /// Appends `n` raw bytes.
    void write_bytes(const void* data, std::size_t n) {
        if (n == 0) return;
        auto old = out_->size();
        if (n <= 64) { // a field: resize + memcpy is cheaper than a range insert
            out_->resize(old + n);
            std::memcpy(out_->data() + old, data, n);
        } else { // a block: one pass (resize would zero-fill it first)
            auto p = static_cast<const std::byte*>(data);
            out_->insert(out_->end(), p, p + n);
        }
    }

    /// The bytes written so far (and whatever `out` held before).
    [[nodiscard]] std::vector<std::byte>& buffer() noexcept { return *out_; }

private:
    template <class T>
    void write_int(T v) {
        if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
            write_bytes(&v, sizeof v);
        } else {
            unsigned char b[sizeof(T)];
            auto u = static_cast<std::make_unsigned_t<T>>(v);
            for (std::size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<unsigned char>(u >> (8 * i));
            write_bytes(b, sizeof b);
        }
    }
    void write_count(std::size_t n) { write_int(static_cast<std::uint64_t>(n)); }
    template <class Range>
    void write_elements(const Range& r) {
        for (const auto& e : r) write<typename Range::value_type>(e); // vector<bool> yields proxies
    }
    template <class T>
    void write_fields(const T& v);

    std::vector<std::byte>* out_;
};

/// The part of an input that has not arrived yet: a large frame still in the worker's channel. A reader pulls
/// it in windows, and reads long runs of bytes straight into their destination (no staging copy).
class byte_source {
public:
    /// Bytes still to come.
    [[nodiscard]] virtual std::size_t pending() const noexcept = 0;
    /// The next window, of at least one and at most pending() bytes; the previous window is gone.
    virtual std::span<const std::byte> next_window() = 0;
    /// Reads exactly n (<= pending()) bytes into dst, around the window.
    virtual void read_direct(std::byte* dst, std::size_t n) = 0;

protected:
    ~byte_source() = default;
};

/// Reads encoded values from a byte span. Every read is bounds-checked: truncated, oversized or
/// corrupt input throws protocol_error naming what was expected and the byte offset.
class reader {
public:
    /// Reads values from `in`, which must outlive the reader.
    explicit reader(std::span<const std::byte> in) noexcept : in_(in) {}
    /// Reads `first`, then what `rest` brings (the whole input is first + rest.pending() bytes).
    reader(std::span<const std::byte> first, byte_source& rest) noexcept : in_(first), src_(&rest) {}

    /// Decodes one value of type T.
    template <class T>
    [[nodiscard]] T read();

    /// Decodes one value of type T into `out`. A string or vector of numbers or bytes reuses out's storage: a
    /// buffer kept between calls receives a large value into pages that are already touched.
    template <class T>
    void read_into(T& out) {
        if constexpr (detail::contiguous_codec<T>) read_contiguous(out, read_count<typename T::value_type>());
        else out = read<T>();
    }

    /// Copies `n` raw bytes out, or fails if fewer remain.
    void read_bytes(void* dst, std::size_t n, const char* what = "raw bytes") {
        if (n <= in_.size() - pos_) [[likely]] {
            if (n) std::memcpy(dst, in_.data() + pos_, n);
            pos_ += n;
            return;
        }
        read_beyond_window(static_cast<std::byte*>(dst), n, what);
    }

    /// Skips `n` bytes, or fails if fewer remain.
    void skip(std::size_t n, const char* what = "raw bytes") {
        if (n > remaining()) fail(what, n);
        while (n > in_.size() - pos_) {
            n -= in_.size() - pos_;
            next_window();
        }
        pos_ += n;
    }

    /// Bytes consumed so far (the offset a protocol_error reports).
    [[nodiscard]] std::size_t offset() const noexcept { return base_ + pos_; }
    /// Bytes not read yet.
    [[nodiscard]] std::size_t remaining() const noexcept {
        return in_.size() - pos_ + (src_ ? src_->pending() : 0);
    }

    /// Stops decoding with a protocol_error (for custom decoders that find an invalid value).
    [[noreturn]] void fail_invalid(const std::string& what) const { fail_invalid_at(offset(), what); }

private:
    /// Runs of at least this many bytes past the window are read straight into their destination.
    static constexpr std::size_t direct_bytes = 16 * 1024;

    // The failure paths are not templates and are compiled once in separate mode (detail/codec_impl.hpp).
    [[noreturn]] PROCPOOL_DECL void fail_invalid_at(std::size_t at, const std::string& what) const;
    /// A flag byte (a bool, an optional's presence) that is neither 0 nor 1.
    [[noreturn]] PROCPOOL_DECL void fail_flag(std::size_t at, const char* what, unsigned value) const;
    [[noreturn]] PROCPOOL_DECL void fail_variant_index(std::size_t at, std::uint32_t index, std::size_t count) const;
    void next_window() {
        base_ += in_.size();
        pos_ = 0;
        in_ = {};
        in_ = src_->next_window();
    }
    PROCPOOL_DECL void read_beyond_window(std::byte* dst, std::size_t n, const char* what);
    /// The n elements of a string or vector of numbers or bytes, into out (whose storage is reused).
    template <class C>
    void read_contiguous(C& out, std::size_t n) {
        using E = typename C::value_type;
        if (sizeof(E) == 1 && n <= in_.size() - pos_) {
            // One pass: resize would zero-fill first (for 64 MiB that is most of the cost).
            detail::reserve_large(out, n);
            auto first = reinterpret_cast<const E*>(in_.data() + pos_);
            out.assign(first, first + n);
            pos_ += n;
            return;
        }
        // Elements wider than a byte, or bytes still in the channel: read straight into the elements.
        if (n > remaining() / sizeof(E)) fail("sequence elements", n * sizeof(E));
        if (n <= out.capacity()) { // storage out already owns: nothing is allocated for what the count claims
            out.resize(n);
            read_bytes(out.data(), n * sizeof(E), "sequence elements");
            return;
        }
        // The count is trusted up to trusted_reserve_bytes: reserved at once (no copy as it fills). Beyond that the
        // storage doubles as the bytes arrive, so a corrupt count cannot reserve gigabytes for bytes that never come.
        detail::reserve_large(out, std::min(n, detail::trusted_reserve_bytes / sizeof(E)));
        out.clear();
        // Resized as the bytes arrive: a corrupt count zero-fills at most twice what came.
        constexpr std::size_t first_step = (std::size_t{1} << 20) / sizeof(E);
        for (std::size_t got = 0; got < n;) {
            auto step = std::min(n - got, std::max(got, first_step));
            if (got + step > out.capacity()) detail::reserve_large(out, std::min(n, std::max(got + step, 2 * out.capacity())));
            out.resize(got + step);
            read_bytes(out.data() + got, step * sizeof(E), "sequence elements");
            got += step;
        }
    }
    [[noreturn]] PROCPOOL_DECL void fail(const char* what, std::size_t need) const;
    template <class T>
    T read_int(const char* what) {
        T v{};
        if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
            read_bytes(&v, sizeof v, what);
        } else {
            unsigned char b[sizeof(T)];
            read_bytes(b, sizeof b, what);
            std::make_unsigned_t<T> u = 0;
            for (std::size_t i = 0; i < sizeof(T); ++i) u |= static_cast<std::make_unsigned_t<T>>(b[i]) << (8 * i);
            v = static_cast<T>(u);
        }
        return v;
    }
    /// Reads a count and refuses it before allocation when the remaining bytes cannot hold that many elements.
    template <class Elem>
    std::size_t read_count() {
        auto at = offset();
        auto n = read_int<std::uint64_t>("an element count");
        constexpr std::size_t min = detail::min_wire_size<Elem>() ? detail::min_wire_size<Elem>() : 1;
        if (n > remaining() / min) {
            throw protocol_error("procpool: corrupt value: element count " + std::to_string(n) + " at byte offset " +
                                     std::to_string(at) + " exceeds what the remaining " +
                                     std::to_string(remaining()) + " bytes can hold",
                                 at);
        }
        return static_cast<std::size_t>(n);
    }
    template <class T, std::size_t... I>
    T read_tuple(std::index_sequence<I...>) {
        // Braced initialization evaluates left to right, which fixes the field order.
        return T{read<std::remove_cv_t<std::tuple_element_t<I, T>>>()...};
    }
    template <class T, std::size_t... I>
    T read_fields(std::index_sequence<I...>) {
        return T{read<std::remove_cv_t<detail::pfr::tuple_element_t<I, T>>>()...};
    }
    template <class V, std::size_t... I>
    V read_variant(std::size_t index, std::index_sequence<I...>) {
        std::optional<V> out;
        ((index == I ? (void)out.emplace(std::in_place_index<I>, read<std::variant_alternative_t<I, V>>()) : (void)0),
         ...);
        return std::move(*out);
    }

    std::span<const std::byte> in_; // the window
    std::size_t pos_ = 0;           // in the window
    std::size_t base_ = 0;          // offset of the window in the whole input
    byte_source* src_ = nullptr;    // the rest of the input, if it is still arriving
};

namespace detail {

/// Names the first type inside T that cannot be encoded, through a static_assert in a template on that
/// type (the compiler's "required from" note prints it). One message at a time.
template <class T>
consteval bool check_serializable();

template <class Tuple, std::size_t... I>
consteval bool check_tuple(std::index_sequence<I...>) {
    return (check_serializable<std::tuple_element_t<I, Tuple>>() && ...);
}
template <class T, std::size_t... I>
consteval bool check_fields(std::index_sequence<I...>) {
    return (check_serializable<detail::pfr::tuple_element_t<I, T>>() && ...);
}
template <class... A>
consteval bool check_alternatives(type_tag<std::variant<A...>>) {
    return (check_serializable<A>() && ...);
}

// A counted container whose elements are serializable but encode to nothing (see is_serializable).
template <class U>
consteval bool has_empty_elements() {
    constexpr kind k = kind_of<U>();
    if constexpr (k == kind::sequence || k == kind::set_like)
        return is_serializable<typename U::value_type>() && !countable<typename U::value_type>();
    else if constexpr (k == kind::map_like)
        return is_serializable<std::pair<typename U::key_type, typename U::mapped_type>>() &&
               !countable<std::pair<typename U::key_type, typename U::mapped_type>>();
    else return false;
}

template <class T>
consteval bool check_serializable() {
    using U = std::remove_cv_t<T>;
    constexpr kind k = kind_of<T>();
    if constexpr (is_serializable<T>()) {
        return true;
    } else if constexpr (std::is_pointer_v<U> || std::is_member_pointer_v<U>) {
        static_assert(dependent_false<T>, "procpool: a pointer cannot cross a process boundary (the address means "
                                          "nothing in another process). Pass the value itself or a container "
                                          "of values. ");
        return false;
    } else if constexpr (std::is_reference_v<T>) {
        static_assert(dependent_false<T>, "procpool: a reference member cannot cross a process boundary. Store the "
                                          "value itself. ");
        return false;
    } else if constexpr (std::is_array_v<U>) {
        static_assert(dependent_false<T>, "procpool: a C array is not serializable. Use std::array or std::vector. ");
        return false;
    } else if constexpr (is_spec_v<U, std::function>) {
        static_assert(dependent_false<T>, "procpool: std::function is not serializable: code never crosses a process "
                                          "boundary, only the names of registered tasks do. Pass data, and choose the "
                                          "behaviour in the worker from that data. ");
        return false;
    } else if constexpr (is_spec_v<U, std::basic_string_view> || is_spec_v<U, std::reference_wrapper>) {
        static_assert(dependent_false<T>, "procpool: a view or reference_wrapper does not own its data and cannot "
                                          "cross a process boundary. Pass an owning type such as std::string or "
                                          "std::vector. ");
        return false;
    } else if constexpr (std::is_same_v<U, long double>) {
        static_assert(dependent_false<T>, "procpool: long double has a platform-dependent width and is not "
                                          "serializable. Use double. ");
        return false;
    } else if constexpr (has_empty_elements<U>()) {
        static_assert(dependent_false<T>, "procpool: a container of empty elements (such as std::monostate or an "
                                          "empty struct) is not serializable: nothing on the wire bounds its count, "
                                          "so a corrupt count could not be refused. Send the count itself. ");
        return false;
    } else if constexpr (k == kind::sequence || k == kind::set_like || k == kind::std_array || k == kind::optional) {
        return check_serializable<typename U::value_type>();
    } else if constexpr (k == kind::map_like) {
        return check_serializable<typename U::key_type>() && check_serializable<typename U::mapped_type>();
    } else if constexpr (k == kind::variant) {
        return check_alternatives(type_tag<U>{});
    } else if constexpr (k == kind::tuple_like) {
        return check_tuple<U>(std::make_index_sequence<std::tuple_size_v<U>>{});
    } else if constexpr (k == kind::aggregate) {
        if constexpr (has_c_array_member<U>()) {
            static_assert(dependent_false<T>, "procpool: a C array is not serializable, and this aggregate has a C "
                                              "array member (the compiler's note names the aggregate). Use "
                                              "std::array or std::vector. ");
            return false;
        } else {
            return check_fields<U>(std::make_index_sequence<detail::pfr::tuple_size_v<U>>{});
        }
    } else if constexpr (k == kind::unique_ptr) {
        static_assert(dependent_false<T>, "procpool: unique_ptr is serializable only to a non-array, "
                                          "non-polymorphic serializable type with the default deleter. ");
        return false;
    } else {
        static_assert(dependent_false<T>,
                      "procpool: this type is not serializable (the compiler's note names it). Make it an aggregate "
                      "of serializable fields, or give it the codec customization point: members "
                      "procpool_encode(procpool::writer&) const and static procpool_decode(procpool::reader&). ");
        return false;
    }
}

} // namespace detail

template <class T>
void writer::write(const T& v) {
    static_assert(detail::check_serializable<T>());
    using U = std::remove_cv_t<T>;
    // After a failed check, no branch below is taken: the message above stays the only error.
    constexpr auto k = detail::is_serializable<T>() ? detail::kind_of<T>() : detail::kind::unsupported;
    using detail::kind;
    if constexpr (k == kind::custom) {
        if constexpr (detail::has_member_codec<U>) v.procpool_encode(*this);
        else {
            using detail::procpool_encode;
            procpool_encode(*this, v);
        }
    } else if constexpr (k == kind::boolean) {
        write_int(static_cast<std::uint8_t>(v ? 1 : 0));
    } else if constexpr (k == kind::arithmetic) {
        if constexpr (std::is_floating_point_v<U>) {
            static_assert(std::numeric_limits<U>::is_iec559 && (sizeof(U) == 4 || sizeof(U) == 8));
            using bits = std::conditional_t<sizeof(U) == 4, std::uint32_t, std::uint64_t>;
            write_int(std::bit_cast<bits>(v));
        } else {
            write_int(v);
        }
    } else if constexpr (k == kind::enumeration) {
        write_int(static_cast<std::underlying_type_t<U>>(v));
    } else if constexpr (k == kind::byte) {
        write_int(static_cast<std::uint8_t>(v));
    } else if constexpr (k == kind::string) {
        write_count(v.size());
        if constexpr (detail::memcpy_sequence<typename U::value_type>)
            write_bytes(v.data(), v.size() * sizeof(typename U::value_type));
        else write_elements(v);
    } else if constexpr (k == kind::sequence) {
        write_count(v.size());
        if constexpr (detail::is_spec_v<U, std::vector> && detail::memcpy_sequence<typename U::value_type>)
            write_bytes(v.data(), v.size() * sizeof(typename U::value_type));
        else write_elements(v);
    } else if constexpr (k == kind::set_like) {
        write_count(v.size());
        write_elements(v);
    } else if constexpr (k == kind::map_like) {
        write_count(v.size());
        for (const auto& [key, value] : v) {
            write(key);
            write(value);
        }
    } else if constexpr (k == kind::std_array) {
        write_elements(v);
    } else if constexpr (k == kind::optional) {
        write_int(static_cast<std::uint8_t>(v.has_value()));
        if (v) write(*v);
    } else if constexpr (k == kind::unique_ptr) {
        write_int(static_cast<std::uint8_t>(v != nullptr));
        if (v) write(*v);
    } else if constexpr (k == kind::variant) {
        if (v.valueless_by_exception())
            throw std::invalid_argument("procpool: cannot encode a variant that is valueless_by_exception");
        write_int(static_cast<std::uint32_t>(v.index()));
        std::visit([this](const auto& alt) { this->write(alt); }, v);
    } else if constexpr (k == kind::monostate) {
        // nothing on the wire
    } else if constexpr (k == kind::tuple_like) {
        std::apply([this](const auto&... e) { (this->write(e), ...); }, v);
    } else if constexpr (k == kind::duration) {
        write(v.count());
    } else if constexpr (k == kind::time_point) {
        write(v.time_since_epoch());
    } else if constexpr (k == kind::path) {
        const auto s = v.generic_u8string(); // the same bytes on every platform
        write_count(s.size());
        write_bytes(s.data(), s.size());
    } else if constexpr (k == kind::bitset) {
        constexpr std::size_t n = detail::is_bitset<U>::bits;
        for (std::size_t b = 0; b < (n + 7) / 8; ++b) {
            std::uint8_t byte = 0;
            for (std::size_t i = 0; i < 8 && b * 8 + i < n; ++i)
                if (v[b * 8 + i]) byte = static_cast<std::uint8_t>(byte | (1u << i));
            write_int(byte);
        }
    } else if constexpr (k == kind::complex) {
        write(v.real());
        write(v.imag());
    } else if constexpr (k == kind::aggregate) {
        write_fields(v);
    }
}

template <class T>
void writer::write_fields(const T& v) {
    detail::pfr::for_each_field(v, [this](const auto& f) { this->write(f); });
}

template <class T>
T reader::read() {
    static_assert(detail::check_serializable<T>());
    using U = std::remove_cv_t<T>;
    // After a failed check, no branch below is taken: the message above stays the only error.
    constexpr auto k = detail::is_serializable<T>() ? detail::kind_of<T>() : detail::kind::unsupported;
    using detail::kind;
    if constexpr (k == kind::custom) {
        if constexpr (detail::has_member_codec<U>) return U::procpool_decode(*this);
        else {
            using detail::procpool_decode;
            return procpool_decode(*this, type_tag<U>{});
        }
    } else if constexpr (k == kind::boolean) {
        auto at = offset();
        auto b = read_int<std::uint8_t>("a bool");
        if (b > 1) fail_flag(at, "bool byte", b);
        return b == 1;
    } else if constexpr (k == kind::arithmetic) {
        if constexpr (std::is_floating_point_v<U>) {
            using bits = std::conditional_t<sizeof(U) == 4, std::uint32_t, std::uint64_t>;
            return std::bit_cast<U>(read_int<bits>("a floating-point number"));
        } else {
            return read_int<U>("an integer");
        }
    } else if constexpr (k == kind::enumeration) {
        using E = std::underlying_type_t<U>;
        if constexpr (std::is_same_v<E, bool>) return static_cast<U>(read<bool>()); // only 0 and 1 are valid
        else return static_cast<U>(read_int<E>("an enum"));
    } else if constexpr (k == kind::byte) {
        return static_cast<std::byte>(read_int<std::uint8_t>("a byte"));
    } else if constexpr (k == kind::string || k == kind::sequence) {
        using E = typename U::value_type;
        auto n = read_count<E>();
        U out;
        if constexpr (detail::contiguous_codec<U>) {
            read_contiguous(out, n);
        } else {
            if constexpr (requires { out.reserve(n); }) out.reserve(std::min(n, detail::trusted_reserve_bytes / sizeof(E)));
            for (std::size_t i = 0; i < n; ++i) out.push_back(read<E>());
        }
        return out;
    } else if constexpr (k == kind::set_like) {
        using E = typename U::value_type;
        auto n = read_count<E>();
        U out;
        for (std::size_t i = 0; i < n; ++i) out.insert(out.end(), read<E>());
        return out;
    } else if constexpr (k == kind::map_like) {
        using K = typename U::key_type;
        using M = typename U::mapped_type;
        auto n = read_count<std::pair<K, M>>();
        U out;
        for (std::size_t i = 0; i < n; ++i) {
            K key = read<K>();
            out.emplace_hint(out.end(), std::move(key), read<M>());
        }
        return out;
    } else if constexpr (k == kind::std_array) {
        return read_tuple<U>(std::make_index_sequence<std::tuple_size_v<U>>{});
    } else if constexpr (k == kind::optional || k == kind::unique_ptr) {
        auto at = offset();
        auto flag = read_int<std::uint8_t>("an optional's flag");
        if (flag > 1) fail_flag(at, "presence flag", flag);
        if constexpr (k == kind::optional) {
            if (!flag) return U{};
            return U{read<typename U::value_type>()};
        } else {
            if (!flag) return nullptr;
            return std::make_unique<typename U::element_type>(read<typename U::element_type>());
        }
    } else if constexpr (k == kind::variant) {
        auto at = offset();
        auto index = read_int<std::uint32_t>("a variant index");
        if (index >= std::variant_size_v<U>) fail_variant_index(at, index, std::variant_size_v<U>);
        return read_variant<U>(index, std::make_index_sequence<std::variant_size_v<U>>{});
    } else if constexpr (k == kind::monostate) {
        return U{};
    } else if constexpr (k == kind::tuple_like) {
        return read_tuple<U>(std::make_index_sequence<std::tuple_size_v<U>>{});
    } else if constexpr (k == kind::duration) {
        return U{read<typename U::rep>()};
    } else if constexpr (k == kind::time_point) {
        return U{read<typename U::duration>()};
    } else if constexpr (k == kind::path) {
        auto s = read<std::string>();
        return U(std::u8string(reinterpret_cast<const char8_t*>(s.data()), s.size()));
    } else if constexpr (k == kind::bitset) {
        constexpr std::size_t n = detail::is_bitset<U>::bits;
        U out;
        for (std::size_t b = 0; b < (n + 7) / 8; ++b) {
            auto at = offset();
            auto byte = read_int<std::uint8_t>("a bitset byte");
            for (std::size_t i = 0; i < 8; ++i) {
                if (!(byte & (1u << i))) continue;
                if (b * 8 + i >= n)
                    fail_invalid_at(at, "bitset byte " + std::to_string(byte) + " (bit " + std::to_string(b * 8 + i) +
                                            " set in a bitset of " + std::to_string(n) + " bits)");
                out.set(b * 8 + i);
            }
        }
        return out;
    } else if constexpr (k == kind::complex) {
        auto re = read<typename U::value_type>();
        return U(re, read<typename U::value_type>());
    } else if constexpr (k == kind::aggregate) {
        return read_fields<U>(std::make_index_sequence<detail::pfr::tuple_size_v<U>>{});
    }
}

/// Appends the encoding of `v` to `out`.
template <class T>
void encode_to(std::vector<std::byte>& out, const T& v) {
    writer(out).write(v);
}

/// Encodes one value.
template <class T>
[[nodiscard]] std::vector<std::byte> encode(const T& v) {
    std::vector<std::byte> out;
    encode_to(out, v);
    return out;
}

/// Decodes one value that must fill `in` exactly.
/// \throws protocol_error on truncated, oversized, corrupt or trailing input.
template <class T>
[[nodiscard]] T decode(std::span<const std::byte> in) {
    reader r(in);
    T v = r.read<T>();
    if (r.remaining() != 0) {
        throw protocol_error("procpool: corrupt value: " + std::to_string(r.remaining()) +
                                 " unexpected bytes after the value at byte offset " + std::to_string(r.offset()),
                             r.offset());
    }
    return v;
}

/// Like decode, but returns an empty optional instead of throwing on bad input.
template <class T>
[[nodiscard]] std::optional<T> try_decode(std::span<const std::byte> in) noexcept {
    try {
        return decode<T>(in);
    } catch (...) {
        return std::nullopt;
    }
}

PROCPOOL_END_NAMESPACE

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/codec_impl.hpp>
#endif

#endif // PROCPOOL_CODEC_HPP
