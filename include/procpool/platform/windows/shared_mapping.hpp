// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/shared_mapping.hpp: memory shared by handle (shared_buffer) on Windows: a pagefile-backed
// file mapping, or a file's, unnamed. A worker gets the mapping by DuplicateHandle into its process (the parent does
// it: give_shared_memory in process.hpp) and the handle's value in the `share` frame.
#ifndef PROCPOOL_PLATFORM_WINDOWS_SHARED_MAPPING_HPP
#define PROCPOOL_PLATFORM_WINDOWS_SHARED_MAPPING_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/windows/errors.hpp>
#include <procpool/platform/windows/utf8.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// What names shared memory in this process: a file-mapping handle.
using shm_object = HANDLE;
inline const shm_object invalid_shm_object = nullptr;
/// Whether shared memory can be handed to a worker (a handle duplicated into its process).
inline constexpr bool can_share_with_workers = true;

/// A handle as a number on the wire (a value means something only in the process it was duplicated into).
inline std::uint64_t shm_object_value(shm_object h) noexcept { return reinterpret_cast<std::uintptr_t>(h); }
/// The handle a number on the wire names in this process.
inline shm_object shm_object_from_value(std::uint64_t v) noexcept {
    return reinterpret_cast<shm_object>(static_cast<std::uintptr_t>(v));
}

/// New pagefile-backed memory of `bytes`, unnamed (no other process can open it by name). \throws std::system_error.
inline shm_object create_shared_memory(std::size_t bytes) {
    const auto size = static_cast<std::uint64_t>(bytes == 0 ? 1 : bytes); // a mapping of 0 bytes is refused
    HANDLE h = ::CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, static_cast<DWORD>(size >> 32),
                                    static_cast<DWORD>(size & 0xffffffffu), nullptr);
    if (!h) throw_last_error("CreateFileMapping");
    return h;
}

/// A file's contents as a mapping object; its size in `bytes`. \throws std::system_error.
inline shm_object open_file_for_mapping(const std::string& path, bool writable, std::size_t& bytes) {
    HANDLE f = ::CreateFileW(widen(path).c_str(), writable ? GENERIC_READ | GENERIC_WRITE : GENERIC_READ,
                             FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
    const std::string what = "open " + path;
    if (f == INVALID_HANDLE_VALUE) throw_last_error(what.c_str());
    LARGE_INTEGER size{};
    if (!::GetFileSizeEx(f, &size)) {
        ::CloseHandle(f);
        throw_last_error(what.c_str());
    }
    bytes = static_cast<std::size_t>(size.QuadPart);
    if (bytes == 0) { // an empty file cannot be mapped: an empty mapping of pagefile memory stands in
        ::CloseHandle(f);
        return create_shared_memory(0);
    }
    HANDLE h = ::CreateFileMappingW(f, nullptr, writable ? PAGE_READWRITE : PAGE_READONLY, 0, 0, nullptr);
    ::CloseHandle(f); // the mapping keeps the file open
    if (!h) throw_last_error(what.c_str());
    return h;
}

inline shm_object read_only_handle(shm_object h) {
    HANDLE d = nullptr;
    if (!::DuplicateHandle(::GetCurrentProcess(), h, ::GetCurrentProcess(), &d, FILE_MAP_READ, FALSE, 0))
        throw_last_error("DuplicateHandle");
    return d;
}

/// The size of the memory behind mapping `h` (whole pages: a view's region, see VirtualQuery), or -1 when `h` is
/// no mapping this process can read.
inline long long shared_memory_size(shm_object h) noexcept {
    void* p = h ? ::MapViewOfFile(h, FILE_MAP_READ, 0, 0, 0) : nullptr; // the whole mapping: address space only
    if (!p) return -1;
    MEMORY_BASIC_INFORMATION mbi{};
    const auto got = ::VirtualQuery(p, &mbi, sizeof mbi);
    ::UnmapViewOfFile(p);
    return got ? static_cast<long long>(mbi.RegionSize) : -1;
}

inline void* map_shared_memory(shm_object h, std::size_t bytes, bool writable, bool = false) {
    if (bytes == 0) return nullptr;
    void* p = ::MapViewOfFile(h, writable ? FILE_MAP_WRITE : FILE_MAP_READ, 0, 0, bytes);
    if (!p) throw_last_error("MapViewOfFile");
    return p;
}

inline void unmap_shared_memory(void* p, std::size_t) noexcept {
    if (p) ::UnmapViewOfFile(p);
}

inline void close_shared_memory(shm_object h) noexcept {
    if (h) ::CloseHandle(h);
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_SHARED_MAPPING_HPP
