// SPDX-License-Identifier: BSL-1.0
// procpool/detail/per_thread.hpp: one object per thread, for the library's thread-local state.
#ifndef PROCPOOL_DETAIL_PER_THREAD_HPP
#define PROCPOOL_DETAIL_PER_THREAD_HPP

#include <procpool/config.hpp>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// This thread's T (value-initialized on first use), one per Tag. A plain `thread_local T` elsewhere; with
/// mingw-w64's GCC, whose thread_local goes through emutls, a thread_local object's destructor runs after emutls
/// has freed the object's storage when the thread exits (a std::vector<std::function<void()>> then calls a
/// function pointer read from freed memory and the process crashes: docs/windows.md). There the object lives on
/// the heap and is never destroyed: one small object per thread that used it.
template <class T, class Tag = T>
T& per_thread() {
#if defined(__MINGW32__) && !defined(__clang__)
    thread_local T* p = nullptr; // trivially destructible: nothing runs at thread exit
    if (!p) p = new T();
    return *p;
#else
    thread_local T v;
    return v;
#endif
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_PER_THREAD_HPP
