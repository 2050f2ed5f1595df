// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/lifetime.hpp: a worker dies with the process that started it (a job object that
// kills its processes when its last handle closes), crashes silently, and leaves Ctrl-C to the application.
#ifndef PROCPOOL_PLATFORM_WINDOWS_LIFETIME_HPP
#define PROCPOOL_PLATFORM_WINDOWS_LIFETIME_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <string>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

namespace detail_win {
/// The job object every worker is assigned to: closing its last handle (this process ending) kills them.
inline HANDLE worker_job() {
    static HANDLE job = [] {
        HANDLE j = ::CreateJobObjectW(nullptr, nullptr);
        if (j) {
            JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            ::SetInformationJobObject(j, JobObjectExtendedLimitInformation, &info, sizeof info);
        }
        return j;
    }();
    return job;
}

/// A worker that crashes exits with the exception code (0xC0000005, ...) at once: no error dialog, no
/// just-in-time debugger (wine's winedbg included).
inline LONG WINAPI exit_on_crash(EXCEPTION_POINTERS* info) {
    ::TerminateProcess(::GetCurrentProcess(), info && info->ExceptionRecord ? info->ExceptionRecord->ExceptionCode : 1u);
    return EXCEPTION_EXECUTE_HANDLER;
}
} // namespace detail_win

/// In a worker: the job object ties its life to the parent's (it was assigned before it ran); crashes exit with
/// their exception code, silently. Reports whether the parent `parent` is still running.
inline bool bind_lifetime_to_parent(pid_type parent, native_handle /*lifeline: the job object serves*/ = invalid_handle) noexcept {
    ::SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX);
    ULONG guarantee = 64 * 1024; // room for the handler of a stack overflow
    ::SetThreadStackGuarantee(&guarantee);
    ::SetUnhandledExceptionFilter(detail_win::exit_on_crash);
    HANDLE h = ::OpenProcess(SYNCHRONIZE, FALSE, static_cast<DWORD>(parent));
    if (!h) return false;
    bool alive = ::WaitForSingleObject(h, 0) == WAIT_TIMEOUT;
    ::CloseHandle(h);
    return alive;
}

/// Lifelines (see posix/lifetime.hpp) are not needed here: the workers' job object (KILL_ON_JOB_CLOSE) ends every
/// worker with this process, whichever thread started it.
struct lifeline_pair {
    native_handle parent_end = invalid_handle;
    native_handle child_end = invalid_handle;
};
inline lifeline_pair make_lifeline() noexcept { return {}; }
inline void drop_lifeline(native_handle& parent_end) noexcept { parent_end = invalid_handle; }
/// Console Ctrl-C reaches every process attached to the console: workers ignore it and end with the application
/// (job object).
inline void ignore_terminal_signals() noexcept { ::SetConsoleCtrlHandler(nullptr, TRUE); }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_LIFETIME_HPP
