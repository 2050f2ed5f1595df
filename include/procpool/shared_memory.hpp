// SPDX-License-Identifier: BSL-1.0
// procpool/shared_memory.hpp: shared_buffer and shared_array<T>, memory shared with workers by handle.
#ifndef PROCPOOL_SHARED_MEMORY_HPP
#define PROCPOOL_SHARED_MEMORY_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/detail/shared_handles.hpp>

#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

PROCPOOL_BEGIN_NAMESPACE

/// How shared_array::map_file maps a file.
enum class map_mode {
    read_only, ///< the file is opened and mapped read-only
    read_write ///< writes go to the file (and are seen by every process that maps it)
};

/// Bytes shared between the application and its workers: passed to a task (or returned from one) it crosses as a
/// handle, whatever its size; the worker maps the same memory, so writes on either side are seen by the other.
///
/// Memory ordering: what a task wrote before it returned is visible to the parent once the task's completion has
/// been observed through its future (get, wait, wait_any, as_completed), and what the parent wrote before submit
/// is visible to the task. Concurrent tasks writing the same bytes race, as threads would.
///
/// Lifetime: the memory lives while any process holds it (a value here, a worker's mapping, a task in flight) and
/// no longer, also when processes crash or the application is killed: it has no name anyone could open (Linux:
/// memfd; other POSIX: shm_open unlinked at once). Copies of a shared_buffer share the memory (like shared_ptr).
/// A mapping is not inherited by fork(): pass the buffer to a task instead.
/// \code
/// auto buf = procpool::shared_buffer::create(1 << 20);
/// pool.submit<fill>(buf).get();   // the worker wrote into buf.data()
/// \endcode
class shared_buffer {
public:
    /// An empty buffer (no memory).
    shared_buffer() noexcept = default;

    /// New zero-filled shared memory of `bytes`. \throws std::system_error when the system refuses it.
    [[nodiscard]] static shared_buffer create(std::size_t bytes) {
        return shared_buffer(detail::make_shared_core(platform::create_shared_memory(bytes), bytes, true));
    }

    /// The first byte (null when empty).
    [[nodiscard]] std::byte* data() const noexcept { return core_ ? static_cast<std::byte*>(core_->base) : nullptr; }
    /// Size in bytes.
    [[nodiscard]] std::size_t size() const noexcept { return core_ ? core_->bytes : 0; }
    /// Whether it has no bytes.
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    /// The bytes.
    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data(), size()}; }

    /// Codec: writes the handle (see shared_buffer).
    void procpool_encode(writer& w) const { detail::write_shared(w, core_, false); }
    /// Codec: finds the mapping the handle names. \throws protocol_error when there is none in this process.
    static shared_buffer procpool_decode(reader& r) { return shared_buffer(detail::read_shared(r, false, 1)); }

private:
    explicit shared_buffer(std::shared_ptr<detail::shared_core> c) noexcept : core_(std::move(c)) {}
    std::shared_ptr<detail::shared_core> core_;
};

/// An array of trivially copyable `T` in shared memory (see shared_buffer for how it crosses, its memory ordering
/// and its lifetime). `shared_array<const T>` is a read-only view: a worker maps it read-only (with a read-only
/// descriptor, so it cannot make it writable either), and a task that writes to it crashes its worker, which fails
/// that task with worker_died. A `shared_array<T>` converts to one.
/// \code
/// auto table = procpool::shared_array<double>::create(1 << 27);   // 1 GiB of zeros
/// std::iota(table.begin(), table.end(), 0.0);
/// double s = pool.submit<sum>(procpool::shared_array<const double>(table)).get();
/// \endcode
template <class T>
class shared_array {
    static_assert(std::is_trivially_copyable_v<T> && !std::is_volatile_v<T>,
                  "procpool: shared_array<T> holds raw memory shared between processes: T must be trivially "
                  "copyable (no pointers to process-local memory either). Use a plain std::vector<T> argument for "
                  "other types.");

public:
    using element_type = T;                    ///< T, const or not
    using value_type = std::remove_cv_t<T>;    ///< T without const
    using size_type = std::size_t;             ///< sizes and indices
    using iterator = T*;                       ///< contiguous iterator
    using reference = T&;                      ///< element reference

    /// An empty array.
    shared_array() noexcept = default;

    /// `n` zero-initialized elements in new shared memory. \throws std::system_error when the system refuses it.
    [[nodiscard]] static shared_array create(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::length_error("procpool: shared_array too large");
        const bool writable = !std::is_const_v<T>;
        const auto bytes = n * sizeof(T);
        return shared_array(detail::make_shared_core(platform::create_shared_memory(bytes), bytes, writable),
                            detail::shared_view_tag{});
    }

    /// The contents of a file, mapped (no copy): a worker sent it maps the same file. With map_mode::read_write,
    /// writes go to the file; a read-only mapping needs `shared_array<const T>`. \throws std::system_error when the
    /// file cannot be opened, std::invalid_argument when its size is not a whole number of T or the mode does not
    /// fit T.
    /// `path` is a std::filesystem::path, a std::string or a C string (any type with `.string()`, or convertible to
    /// std::string_view); taking it as a template spares every file that includes procpool the `<filesystem>` header.
    template <class Path>
        requires std::is_convertible_v<const Path&, std::string_view> || requires(const Path& p) {
            { p.string() } -> std::convertible_to<std::string>;
        }
    [[nodiscard]] static shared_array map_file(const Path& path, map_mode mode = std::is_const_v<T> ? map_mode::read_only
                                                                                          : map_mode::read_write) {
        if constexpr (std::is_convertible_v<const Path&, std::string_view>)
            return map_file_named(std::string(std::string_view(path)), mode);
        else return map_file_named(path.string(), mode);
    }

    /// A read-only view of the same memory.
    operator shared_array<const T>() const noexcept // NOLINT: a view converts as T* does to const T*
        requires(!std::is_const_v<T>)
    {
        return shared_array<const T>(core_, detail::shared_view_tag{});
    }

    /// The first element (null when empty).
    [[nodiscard]] T* data() const noexcept { return core_ ? static_cast<T*>(core_->base) : nullptr; }
    /// Number of elements.
    [[nodiscard]] std::size_t size() const noexcept { return core_ ? core_->bytes / sizeof(T) : 0; }
    /// Whether it has no elements.
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    /// Element `i` (unchecked).
    [[nodiscard]] T& operator[](std::size_t i) const noexcept { return data()[i]; }
    /// Start of the elements.
    [[nodiscard]] T* begin() const noexcept { return data(); }
    /// End of the elements.
    [[nodiscard]] T* end() const noexcept { return data() + size(); }
    /// The elements as a span.
    [[nodiscard]] std::span<T> span() const noexcept { return {data(), size()}; }
    /// The elements as a span.
    operator std::span<T>() const noexcept { return span(); } // NOLINT: a view of the same elements

    /// Codec: writes the handle (see shared_buffer).
    void procpool_encode(writer& w) const { detail::write_shared(w, core_, std::is_const_v<T>); }
    /// Codec: finds the mapping the handle names. \throws protocol_error when there is none in this process, or
    /// its size or access does not fit.
    static shared_array procpool_decode(reader& r) {
        return shared_array(detail::read_shared(r, std::is_const_v<T>, sizeof(T)), detail::shared_view_tag{});
    }

    /// (internal) Views `c`.
    shared_array(std::shared_ptr<detail::shared_core> c, detail::shared_view_tag) noexcept : core_(std::move(c)) {}

private:
    static shared_array map_file_named(const std::string& path, map_mode mode) {
        const bool writable = mode == map_mode::read_write;
        if (!writable && !std::is_const_v<T>)
            throw std::invalid_argument("procpool: map_file(read_only) needs a read-only view: use "
                                        "shared_array<const T>::map_file");
        std::size_t bytes = 0;
        auto h = platform::open_file_for_mapping(path, writable, bytes);
        if (bytes % sizeof(T)) {
            platform::close_shared_memory(h);
            throw std::invalid_argument("procpool: " + path + " has " + std::to_string(bytes) +
                                        " bytes, not a whole number of " + std::to_string(sizeof(T)) + "-byte elements");
        }
        return shared_array(detail::make_shared_core(h, bytes, writable), detail::shared_view_tag{});
    }

    std::shared_ptr<detail::shared_core> core_;
};

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_SHARED_MEMORY_HPP
