// SPDX-License-Identifier: BSL-1.0
// procpool/detail/handles.hpp: the descriptors procpool owns in this process, which a process it forks closes.
#ifndef PROCPOOL_DETAIL_HANDLES_HPP
#define PROCPOOL_DETAIL_HANDLES_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>

#include <mutex>
#include <set>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// Descriptors procpool owns in this process (pool channels). A forked child closes them: they belong to
/// the parent's other pools.
struct internal_handles {
    std::mutex mutex;
    std::set<platform::native_handle> handles;
};
inline internal_handles& owned_handles() {
    static internal_handles* h = new internal_handles; // never destroyed: a pool in a static closes its handles
    return *h;                                          // during exit, after this function's statics would be gone
}
inline void own_handle(platform::native_handle h) {
    std::lock_guard lock(owned_handles().mutex);
    owned_handles().handles.insert(h);
}
inline void release_handle(platform::native_handle h) {
    std::lock_guard lock(owned_handles().mutex);
    owned_handles().handles.erase(h);
}
} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_HANDLES_HPP
