// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/zygote.hpp: Windows has no fork, so no per-task isolation (the pool refuses it with a
// start_error). Resource limits: every worker puts itself in a job object of its own (nested in the pool's
// worker job, Windows 8 and later) that holds its memory and CPU time limits.
#ifndef PROCPOOL_PLATFORM_WINDOWS_ZYGOTE_HPP
#define PROCPOOL_PLATFORM_WINDOWS_ZYGOTE_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/windows/errors.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// The limits a worker applies to itself (0: not limited). See procpool::resource_limits.
struct process_limits {
    std::uint64_t address_space = 0; ///< bytes of committed memory (JOB_OBJECT_LIMIT_PROCESS_MEMORY)
    std::uint64_t cpu_seconds = 0;   ///< seconds of user-mode CPU time (JOB_OBJECT_LIMIT_PROCESS_TIME)
    std::uint64_t open_files = 0;    ///< refused: Windows has no per-process handle limit
    bool no_core_dumps = false;      ///< no error reporting (JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION)
};

/// Whether this platform can apply process_limits (open_files excepted here).
inline constexpr bool has_process_limits = true;

/// How messages name the limits here; limit_exceeded::resource() says "RLIMIT_AS" and "RLIMIT_CPU" on every
/// platform, so that portable code compares one name.
inline constexpr const char* memory_limit_name = "committed memory limit (RLIMIT_AS; a job object limit on Windows)";
inline constexpr const char* cpu_limit_name = "user-mode CPU time limit (RLIMIT_CPU; a job object limit on Windows)";

/// The exit code of a process the system ends for exceeding its job's CPU time limit: ERROR_NOT_ENOUGH_QUOTA.
inline constexpr int cpu_limit_exit_code = 1816;

namespace detail_win {
/// The job object this worker applied its limits with (nullptr: none). Open for the process's life.
inline HANDLE& limits_job() noexcept {
    static HANDLE job = nullptr;
    return job;
}
} // namespace detail_win

/// Puts this process in a new job object with the limits `l`. Returns "" or what failed. open_files is refused
/// (the pool refuses it first). Nested jobs need Windows 8: where this process's job forbids nesting, the
/// assignment fails and so does the pool's construction.
inline std::string apply_limits(const process_limits& l) noexcept {
    if (l.open_files) return "open_files: Windows has no per-process handle limit";
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
    auto& basic = info.BasicLimitInformation;
    if (l.address_space) {
        basic.LimitFlags |= JOB_OBJECT_LIMIT_PROCESS_MEMORY;
        info.ProcessMemoryLimit = static_cast<SIZE_T>(l.address_space);
    }
    if (l.cpu_seconds) {
        constexpr std::uint64_t ticks = 10'000'000; // 100 ns units per second
        constexpr std::uint64_t most = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / ticks;
        basic.LimitFlags |= JOB_OBJECT_LIMIT_PROCESS_TIME;
        const std::uint64_t seconds = l.cpu_seconds < most ? l.cpu_seconds : most;
        basic.PerProcessUserTimeLimit.QuadPart = static_cast<LONGLONG>(seconds * ticks);
    }
    if (l.no_core_dumps) {
        // Every process of the job, those a task starts included, ends at an unhandled exception without Windows
        // Error Reporting (no dialog, no dump); SEM_NOGPFAULTERRORBOX is the same for this one.
        basic.LimitFlags |= JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
        ::SetErrorMode(::GetErrorMode() | SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
    }
    HANDLE job = ::CreateJobObjectW(nullptr, nullptr);
    if (!job) return "CreateJobObject: " + last_error_text(::GetLastError());
    std::string err;
    if (!::SetInformationJobObject(job, JobObjectExtendedLimitInformation, &info, sizeof info))
        err = "SetInformationJobObject: " + last_error_text(::GetLastError());
    else if (!::AssignProcessToJobObject(job, ::GetCurrentProcess()))
        err = "AssignProcessToJobObject (is the worker in a job that allows no nested job?): " +
              last_error_text(::GetLastError());
    if (!err.empty()) {
        ::CloseHandle(job);
        return err;
    }
    detail_win::limits_job() = job;
    return {};
}

/// No result ring here: nothing to do.
inline void inherit_ring(void*, std::size_t) noexcept {}

/// Whether a worker's exit status is the CPU time limit's: the system ended it with ERROR_NOT_ENOUGH_QUOTA.
inline bool cpu_limit_signal(const exit_status& st) noexcept {
    return st.signal == 0 && st.code == cpu_limit_exit_code;
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_ZYGOTE_HPP
