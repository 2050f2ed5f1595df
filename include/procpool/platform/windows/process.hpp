// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/process.hpp: worker processes seen from their parent: the table of their handles,
// reaping, killing, how one ended (in words, NTSTATUS codes named), its memory; and ending this process at once.
#ifndef PROCPOOL_PLATFORM_WINDOWS_PROCESS_HPP
#define PROCPOOL_PLATFORM_WINDOWS_PROCESS_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/windows/errors.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <psapi.h>
#include <tlhelp32.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// The exit code TerminateProcess gives the workers procpool kills; reported as `signal` 9.
inline constexpr UINT terminated_code = 0x0DEAD09u;

namespace detail_win {
struct process_table {
    std::mutex mutex;
    std::map<pid_type, HANDLE> handles;
};
inline process_table& processes() {
    static auto* t = new process_table; // never destroyed, like the channel table
    return *t;
}
inline HANDLE process_handle(pid_type pid) {
    auto& t = processes();
    std::lock_guard lock(t.mutex);
    auto it = t.handles.find(pid);
    return it == t.handles.end() ? nullptr : it->second;
}
} // namespace detail_win

/// Duplicates `h` (a file mapping: shared_buffer memory) into child `pid`'s process, with the same access, and
/// returns its value there. The copy is the child's: it closes it, or it goes when the process ends (so nothing
/// leaks if the child dies before it hears of it). 0 when the child has already ended: nothing will read the
/// frame, and its death is reported as any other (its jobs retried or failed with worker_died).
/// \throws std::system_error.
inline std::uint64_t give_shared_memory(pid_type pid, HANDLE h) {
    HANDLE target = detail_win::process_handle(pid);
    HANDLE there = nullptr;
    if (!target) ::SetLastError(ERROR_INVALID_HANDLE); // not a child of this process (any more)
    if (target && ::DuplicateHandle(::GetCurrentProcess(), h, target, &there, 0, FALSE, DUPLICATE_SAME_ACCESS))
        return reinterpret_cast<std::uintptr_t>(there);
    const DWORD e = ::GetLastError();
    if (target && ::WaitForSingleObject(target, 0) == WAIT_OBJECT_0) return 0;
    ::SetLastError(e);
    throw_last_error(("DuplicateHandle of a shared buffer's mapping into worker process " + std::to_string(pid)).c_str());
}

/// Reaps `pid` if it has ended (or waits for it when `block`).
inline std::optional<exit_status> try_reap(pid_type pid, bool block) noexcept {
    HANDLE h = detail_win::process_handle(pid);
    if (!h) return exit_status{-1, 0}; // not ours (any more): nothing to report
    if (::WaitForSingleObject(h, block ? INFINITE : 0) != WAIT_OBJECT_0) return std::nullopt;
    DWORD code = 0;
    ::GetExitCodeProcess(h, &code);
    {
        auto& t = detail_win::processes();
        std::lock_guard lock(t.mutex);
        t.handles.erase(pid);
    }
    ::CloseHandle(h);
    if (code == terminated_code) return exit_status{-1, 9};
    return exit_status{static_cast<int>(code), 0};
}

inline void kill_process(pid_type pid) noexcept {
    if (HANDLE h = detail_win::process_handle(pid)) ::TerminateProcess(h, terminated_code);
}

/// Reaps a child that closed its channel: waits up to `grace_ms` for it to exit by itself, then kills it.
inline exit_status reap_or_kill(pid_type pid, int grace_ms) noexcept {
    HANDLE h = detail_win::process_handle(pid);
    if (!h) return exit_status{-1, 0};
    if (::WaitForSingleObject(h, static_cast<DWORD>(grace_ms)) != WAIT_OBJECT_0) kill_process(pid);
    return *try_reap(pid, true);
}

/// Name of an NTSTATUS exception code a crashed process exits with, or empty.
inline const char* ntstatus_name(unsigned code) noexcept {
    switch (code) {
    case 0xC0000005u: return "access violation";
    case 0xC00000FDu: return "stack overflow";
    case 0xC0000094u: return "integer divide by zero";
    case 0xC0000095u: return "integer overflow";
    case 0xC000008Eu: return "float divide by zero";
    case 0xC0000090u: return "float invalid operation";
    case 0xC000001Du: return "illegal instruction";
    case 0xC0000096u: return "privileged instruction";
    case 0xC0000006u: return "in-page error";
    case 0xC0000017u: return "out of memory";
    case 0xC000013Au: return "terminated by Ctrl+C";
    case 0xC0000409u: return "stack buffer overrun (fail fast)";
    case 0xC0000374u: return "heap corruption";
    case 0xC0000135u: return "a DLL was not found";
    case 0xC0000139u: return "an entry point was not found";
    case 0xC0000142u: return "DLL initialization failed";
    case 0x80000003u: return "breakpoint";
    case 0xE06D7363u: return "unhandled C++ exception";
    default: return "";
    }
}

inline std::string signal_name(int sig) { return sig == 9 ? "TerminateProcess" : "signal " + std::to_string(sig); }

/// "exited with code 3", "crashed: exception 0xC0000005 (access violation)", "was terminated (TerminateProcess)".
inline std::string describe_exit(const exit_status& st) {
    if (st.signal) return "was terminated (TerminateProcess)";
    auto code = static_cast<unsigned>(st.code);
    if (code >= 0xC0000000u || code == 0x80000003u || code == 0xE06D7363u) {
        char hex[16];
        std::snprintf(hex, sizeof hex, "0x%08X", code);
        std::string name = ntstatus_name(code);
        return std::string("crashed with exit code ") + hex + (name.empty() ? "" : " (" + name + ")");
    }
    return "exited with code " + std::to_string(st.code);
}

/// Number of threads in this process, or -1 where it cannot be counted.
inline int thread_count() noexcept {
    HANDLE snap = ::CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    if (snap == INVALID_HANDLE_VALUE) return -1;
    THREADENTRY32 te{};
    te.dwSize = sizeof te;
    int n = 0;
    DWORD self = ::GetCurrentProcessId();
    for (BOOL ok = ::Thread32First(snap, &te); ok; ok = ::Thread32Next(snap, &te))
        if (te.th32OwnerProcessID == self) ++n;
    ::CloseHandle(snap);
    return n;
}

/// No separate death handle: a worker's end of its pipe is not inheritable, so no process a task starts can hold the
/// channel open after the worker dies, and its end is the worker's death.
inline native_handle open_process_handle(pid_type) noexcept { return invalid_handle; }

/// Resident memory (working set) of a process in bytes, or 0 where it cannot be read.
inline std::size_t resident_bytes(pid_type pid) noexcept {
    HANDLE h = ::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_VM_READ, FALSE, static_cast<DWORD>(pid));
    if (!h) return 0;
    PROCESS_MEMORY_COUNTERS pmc{};
    pmc.cb = sizeof pmc;
    BOOL ok = ::K32GetProcessMemoryInfo(h, &pmc, sizeof pmc);
    ::CloseHandle(h);
    return ok ? static_cast<std::size_t>(pmc.WorkingSetSize) : 0;
}

/// Flushes C stdio.
inline void flush_stdio() noexcept { std::fflush(nullptr); }

/// Ends this process at once, without running atexit handlers or static destructors.
[[noreturn]] inline void quick_exit_process(int code) noexcept {
    flush_stdio();
    std::_Exit(code);
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_PROCESS_HPP
