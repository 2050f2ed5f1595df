// SPDX-License-Identifier: BSL-1.0
// procpool/adapters/archive_stream.hpp: what the adapters for stream-based serialization libraries (cereal,
// Boost.Serialization) share: a value goes on the wire as one string, the bytes its archive wrote to a stream.
#ifndef PROCPOOL_ADAPTERS_ARCHIVE_STREAM_HPP
#define PROCPOOL_ADAPTERS_ARCHIVE_STREAM_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#include <cstddef>
#include <ios>
#include <sstream>
#include <exception>
#include <string>
#include <utility>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// Writes what `save(std::ostream&)` writes (an archive made and ended inside it, so that it completes) as one
/// string.
template <class Save>
void write_archived(writer& w, Save&& save) {
    std::ostringstream os(std::ios::binary);
    std::forward<Save>(save)(static_cast<std::ostream&>(os));
    w.write(os.str());
}

/// Reads one string that write_archived wrote and returns the T that `load(std::istream&, T&)` reads from it. An
/// exception of type `Corrupt...` from `load` (the library's own, or a stream that ran out) becomes a
/// protocol_error naming `library` and the value's byte offset.
template <class T, class... Corrupt, class Load>
T read_archived(reader& r, const char* library, Load&& load) {
    const std::size_t at = r.offset();
    std::istringstream is(r.read<std::string>(), std::ios::binary);
    T v{};
    auto corrupt = [&](const char* why) {
        return protocol_error(std::string("procpool: corrupt value: ") + library +
                                  " could not decode the value at byte offset " + std::to_string(at) + ": " + why,
                              at);
    };
    try {
        std::forward<Load>(load)(static_cast<std::istream&>(is), v);
    } catch (const std::exception& e) {
        if ((dynamic_cast<const Corrupt*>(&e) || ...)) throw corrupt(e.what());
        throw;
    }
    return v;
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_ADAPTERS_ARCHIVE_STREAM_HPP
