// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows.hpp: the Windows side of the small OS interface (processes, channels, waiting).
//
// Channels are overlapped named pipes (one instance, an unguessable name, a DACL for the current user only),
// so that the parent can wait on many of them at once. The engine speaks in small integer descriptors, as on
// POSIX: this file keeps a table from those to the pipe handle and its pending reads and writes. Workers are
// CreateProcessW'd copies of the running executable that inherit exactly their channel (and the standard
// handles), suspended until they are in a job object that kills them when the parent goes away.
#ifndef PROCPOOL_PLATFORM_WINDOWS_HPP
#define PROCPOOL_PLATFORM_WINDOWS_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#if !defined(NOMINMAX)
#define NOMINMAX
#define PROCPOOL_DETAIL_UNDEF_NOMINMAX
#endif
#if !defined(WIN32_LEAN_AND_MEAN)
#define WIN32_LEAN_AND_MEAN
#define PROCPOOL_DETAIL_UNDEF_LEAN
#endif
#include <windows.h>
#include <psapi.h>
#include <tlhelp32.h>
#if defined(PROCPOOL_DETAIL_UNDEF_NOMINMAX)
#undef NOMINMAX
#undef PROCPOOL_DETAIL_UNDEF_NOMINMAX
#endif
#if defined(PROCPOOL_DETAIL_UNDEF_LEAN)
#undef WIN32_LEAN_AND_MEAN
#undef PROCPOOL_DETAIL_UNDEF_LEAN
#endif

#if defined(_MSC_VER)
#pragma comment(lib, "advapi32.lib")
#endif

PROCPOOL_BEGIN_NAMESPACE
namespace platform {


[[noreturn]] inline void throw_last_error(const char* what) {
    throw std::system_error(static_cast<int>(::GetLastError()), std::system_category(), std::string("procpool: ") + what);
}

inline pid_type current_pid() noexcept { return static_cast<pid_type>(::GetCurrentProcessId()); }

/// current_pid(): already a read of the thread environment block here, no system call and no fork to track.
inline pid_type cached_pid() noexcept { return current_pid(); }

inline std::wstring widen(const std::string& s) {
    if (s.empty()) return {};
    int n = ::MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
    std::wstring w(static_cast<std::size_t>(n), L'\0');
    ::MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), w.data(), n);
    return w;
}

inline std::string narrow(const std::wstring& w) {
    if (w.empty()) return {};
    int n = ::WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), nullptr, 0, nullptr, nullptr);
    std::string s(static_cast<std::size_t>(n), '\0');
    ::WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), s.data(), n, nullptr, nullptr);
    return s;
}

inline std::string last_error_text(DWORD code) {
    char* buf = nullptr;
    DWORD n = ::FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                               nullptr, code, 0, reinterpret_cast<char*>(&buf), 0, nullptr);
    std::string s = n && buf ? std::string(buf, n) : "error " + std::to_string(code);
    if (buf) ::LocalFree(buf);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '.')) s.pop_back();
    return s;
}

// ---- the channel table ------------------------------------------------------------------------------------------
namespace detail_win {

inline constexpr DWORD pipe_buffer = 1u << 20;
inline constexpr std::size_t read_buffer = std::size_t{256} << 10;
inline constexpr std::size_t max_write = std::size_t{1} << 20; // taken per write_some
inline constexpr DWORD max_io = 1u << 30;                        // one ReadFile/WriteFile

/// One end of a pipe and its overlapped operations. Used by one thread at a time (the engine's lock, or the
/// driving thread while it waits), so it needs no lock of its own.
struct channel {
    HANDLE pipe = INVALID_HANDLE_VALUE;
    OVERLAPPED rov{};
    OVERLAPPED wov{};
    std::vector<char> rbuf;
    std::size_t rbeg = 0, rend = 0;
    bool rpending = false;
    bool eof = false;
    std::vector<char> wbuf; // what a pending write_some is writing (it owns the bytes until completion)
    bool wpending = false;
    bool broken = false;
};

struct channel_table {
    std::mutex mutex;
    std::vector<std::unique_ptr<channel>> slots;
};
inline channel_table& table() {
    static auto* t = new channel_table; // never destroyed: pools may close channels during static destruction
    return *t;
}

inline channel* find(native_handle fd) {
    auto& t = table();
    std::lock_guard lock(t.mutex);
    if (fd < 0 || static_cast<std::size_t>(fd) >= t.slots.size()) return nullptr;
    return t.slots[static_cast<std::size_t>(fd)].get();
}

inline native_handle add(HANDLE pipe) {
    auto ch = std::make_unique<channel>();
    ch->pipe = pipe;
    ch->rov.hEvent = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    ch->wov.hEvent = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    if (!ch->rov.hEvent || !ch->wov.hEvent) {
        if (ch->rov.hEvent) ::CloseHandle(ch->rov.hEvent);
        if (ch->wov.hEvent) ::CloseHandle(ch->wov.hEvent);
        throw_last_error("CreateEvent");
    }
    ch->rbuf.resize(read_buffer);
    auto& t = table();
    std::lock_guard lock(t.mutex);
    // Descriptors 0-2 stay unused so that a channel never looks like a standard stream in messages.
    std::size_t i = 3;
    while (i < t.slots.size() && t.slots[i]) ++i;
    if (i >= t.slots.size()) t.slots.resize(i + 1);
    t.slots[i] = std::move(ch);
    return static_cast<native_handle>(i);
}

inline void reset(OVERLAPPED& ov) noexcept {
    HANDLE ev = ov.hEvent;
    ov = OVERLAPPED{};
    ov.hEvent = ev;
}

/// Starts a read into the channel's buffer if none is pending and nothing is buffered.
inline void start_read(channel& ch) noexcept {
    if (ch.rpending || ch.eof || ch.rbeg < ch.rend) return;
    reset(ch.rov);
    ch.rbeg = ch.rend = 0;
    if (::ReadFile(ch.pipe, ch.rbuf.data(), static_cast<DWORD>(ch.rbuf.size()), nullptr, &ch.rov) ||
        ::GetLastError() == ERROR_IO_PENDING)
        ch.rpending = true;
    else
        ch.eof = true; // ERROR_BROKEN_PIPE: the other end is closed
}

/// Collects a finished read (waiting for it when `block`). True when bytes are buffered or the stream ended.
inline bool poll_read(channel& ch, bool block) noexcept {
    for (;;) {
        if (ch.rbeg < ch.rend || ch.eof) return true;
        start_read(ch);
        if (!ch.rpending) continue;
        DWORD got = 0;
        if (::GetOverlappedResult(ch.pipe, &ch.rov, &got, block ? TRUE : FALSE)) {
            ch.rpending = false;
            ch.rend = got; // a zero-byte read is not the end of a pipe: read again
            continue;
        }
        if (::GetLastError() == ERROR_IO_INCOMPLETE) return false;
        ch.rpending = false;
        ch.eof = true;
    }
}

/// Collects a finished write (waiting for it when `block`). True when no write is pending any more.
inline bool poll_write(channel& ch, bool block) noexcept {
    if (!ch.wpending) return true;
    DWORD done = 0;
    if (::GetOverlappedResult(ch.pipe, &ch.wov, &done, block ? TRUE : FALSE)) {
        ch.wpending = false;
        if (done < ch.wbuf.size()) ch.broken = true; // pipes write everything or fail
        return true;
    }
    if (::GetLastError() == ERROR_IO_INCOMPLETE) return false;
    ch.wpending = false;
    ch.broken = true;
    return true;
}

/// One overlapped transfer of `n` bytes that the caller waits for (the blocking side).
inline bool transfer(channel& ch, bool write, void* data, DWORD n, DWORD& done) noexcept {
    OVERLAPPED& ov = write ? ch.wov : ch.rov;
    reset(ov);
    BOOL ok = write ? ::WriteFile(ch.pipe, data, n, nullptr, &ov) : ::ReadFile(ch.pipe, data, n, nullptr, &ov);
    if (!ok && ::GetLastError() != ERROR_IO_PENDING) return false;
    return ::GetOverlappedResult(ch.pipe, &ov, &done, TRUE) != 0;
}

/// Current user's SID in a security descriptor that grants it (and only it) full access.
struct owner_only_security {
    SECURITY_ATTRIBUTES sa{};
    SECURITY_DESCRIPTOR sd{};
    std::vector<unsigned char> token_user;
    std::vector<unsigned char> acl;
    bool ok = false;

    owner_only_security() {
        HANDLE token = nullptr;
        if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &token)) return;
        DWORD size = 0;
        ::GetTokenInformation(token, TokenUser, nullptr, 0, &size);
        token_user.resize(size ? size : 1);
        bool got = size && ::GetTokenInformation(token, TokenUser, token_user.data(), size, &size);
        ::CloseHandle(token);
        if (!got) return;
        PSID sid = reinterpret_cast<TOKEN_USER*>(token_user.data())->User.Sid;
        acl.resize(sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) + ::GetLengthSid(sid));
        auto* a = reinterpret_cast<ACL*>(acl.data());
        if (!::InitializeAcl(a, static_cast<DWORD>(acl.size()), ACL_REVISION) ||
            !::AddAccessAllowedAce(a, ACL_REVISION, GENERIC_ALL, sid) ||
            !::InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION) ||
            !::SetSecurityDescriptorDacl(&sd, TRUE, a, FALSE))
            return;
        sa.nLength = sizeof sa;
        sa.lpSecurityDescriptor = &sd;
        sa.bInheritHandle = FALSE;
        ok = true;
    }
};

inline std::wstring unique_pipe_name() {
    static std::mutex m;
    static std::random_device rd;
    static unsigned long long counter = 0;
    std::lock_guard lock(m);
    wchar_t buf[128];
    std::swprintf(buf, 128, L"\\\\.\\pipe\\procpool-%lu-%llu-%08x%08x%08x%08x", ::GetCurrentProcessId(), ++counter,
                  rd(), rd(), rd(), rd());
    return buf;
}

} // namespace detail_win

inline void close_handle(native_handle h) noexcept {
    std::unique_ptr<detail_win::channel> ch;
    {
        auto& t = detail_win::table();
        std::lock_guard lock(t.mutex);
        if (h < 0 || static_cast<std::size_t>(h) >= t.slots.size()) return;
        ch = std::move(t.slots[static_cast<std::size_t>(h)]);
    }
    if (!ch) return;
    // The kernel may still write into our buffers: cancel, then wait for the cancellation to land.
    if (ch->rpending || ch->wpending) ::CancelIoEx(ch->pipe, nullptr);
    DWORD n = 0;
    if (ch->rpending) ::GetOverlappedResult(ch->pipe, &ch->rov, &n, TRUE);
    if (ch->wpending) ::GetOverlappedResult(ch->pipe, &ch->wov, &n, TRUE);
    ::CloseHandle(ch->pipe);
    ::CloseHandle(ch->rov.hEvent);
    ::CloseHandle(ch->wov.hEvent);
}

/// Keeps a channel out of processes this one starts later.
inline void set_cloexec(native_handle fd) noexcept {
    if (auto* ch = detail_win::find(fd)) ::SetHandleInformation(ch->pipe, HANDLE_FLAG_INHERIT, 0);
}

/// Channels are always overlapped here: read_some/write_some never block, read_all/write_all always do.
inline void set_nonblocking(native_handle, bool) {}

/// Both ends of a fresh duplex pipe. `a` is the server end, `b` the client end (the one a worker inherits).
inline void make_channel(native_handle& a, native_handle& b) {
    detail_win::owner_only_security sec;
    auto name = detail_win::unique_pipe_name();
    HANDLE server = ::CreateNamedPipeW(
        name.c_str(), PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, detail_win::pipe_buffer,
        detail_win::pipe_buffer, 0, sec.ok ? &sec.sa : nullptr);
    if (server == INVALID_HANDLE_VALUE) throw_last_error("CreateNamedPipe");
    // One instance only: if anyone else had connected first, this fails and nothing is shared with them.
    HANDLE client = ::CreateFileW(name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                                  FILE_FLAG_OVERLAPPED, nullptr);
    if (client == INVALID_HANDLE_VALUE) {
        DWORD e = ::GetLastError();
        ::CloseHandle(server);
        ::SetLastError(e);
        throw_last_error("CreateFile of a procpool pipe");
    }
    OVERLAPPED ov{};
    ov.hEvent = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    BOOL connected = ::ConnectNamedPipe(server, &ov);
    DWORD e = ::GetLastError();
    if (!connected && e == ERROR_IO_PENDING) {
        DWORD n = 0;
        connected = ::GetOverlappedResult(server, &ov, &n, TRUE);
        e = ::GetLastError();
    }
    if (ov.hEvent) ::CloseHandle(ov.hEvent);
    if (!connected && e != ERROR_PIPE_CONNECTED) {
        ::CloseHandle(server);
        ::CloseHandle(client);
        ::SetLastError(e);
        throw_last_error("ConnectNamedPipe");
    }
    try {
        a = detail_win::add(server);
    } catch (...) {
        ::CloseHandle(server);
        ::CloseHandle(client);
        throw;
    }
    try {
        b = detail_win::add(client);
    } catch (...) {
        close_handle(a);
        ::CloseHandle(client);
        throw;
    }
}

/// Takes what fits now. Returns bytes taken (0 when a write is still pending), -1 when the peer is gone. The
/// bytes are copied: the overlapped write owns them until it completes.
inline long write_some(native_handle fd, const void* data, std::size_t n) noexcept {
    auto* ch = detail_win::find(fd);
    if (!ch || ch->broken) return -1;
    if (!detail_win::poll_write(*ch, false)) return 0;
    if (ch->broken) return -1;
    auto k = std::min(n, detail_win::max_write);
    try {
        ch->wbuf.assign(static_cast<const char*>(data), static_cast<const char*>(data) + k);
    } catch (...) {
        return 0;
    }
    detail_win::reset(ch->wov);
    if (!::WriteFile(ch->pipe, ch->wbuf.data(), static_cast<DWORD>(k), nullptr, &ch->wov) &&
        ::GetLastError() != ERROR_IO_PENDING) {
        ch->broken = true;
        return -1;
    }
    ch->wpending = true;
    return static_cast<long>(k);
}

/// Reads what is available. Returns bytes read, 0 when it would block, -1 on end of stream or error.
inline long read_some(native_handle fd, void* data, std::size_t n) noexcept {
    auto* ch = detail_win::find(fd);
    if (!ch) return -1;
    if (!detail_win::poll_read(*ch, false)) return 0;
    if (ch->rbeg == ch->rend) return -1;
    auto k = std::min(n, ch->rend - ch->rbeg);
    std::memcpy(data, ch->rbuf.data() + ch->rbeg, k);
    ch->rbeg += k;
    return static_cast<long>(k);
}

/// Blocking write of everything (the worker side). False when the peer is gone.
inline bool write_all(native_handle fd, const void* data, std::size_t n) noexcept {
    auto* ch = detail_win::find(fd);
    if (!ch) return false;
    detail_win::poll_write(*ch, true);
    if (ch->broken) return false;
    auto p = static_cast<char*>(const_cast<void*>(data));
    while (n) {
        DWORD done = 0;
        if (!detail_win::transfer(*ch, true, p, static_cast<DWORD>(std::min<std::size_t>(n, detail_win::max_io)), done) ||
            done == 0) {
            ch->broken = true;
            return false;
        }
        p += done;
        n -= done;
    }
    return true;
}

/// Blocking read of what is available, at most n bytes: waits for at least one. Returns bytes read, -1 on end of
/// stream or error (the worker side).
inline long read_some_blocking(native_handle fd, void* data, std::size_t n) noexcept {
    auto* ch = detail_win::find(fd);
    if (!ch || n == 0) return -1;
    if (ch->rbeg == ch->rend && !ch->eof && !ch->rpending && n >= ch->rbuf.size()) {
        DWORD done = 0; // a large read goes straight into the caller's memory
        if (!detail_win::transfer(*ch, false, data, static_cast<DWORD>(std::min<std::size_t>(n, detail_win::max_io)), done) ||
            done == 0) {
            ch->eof = true;
            return -1;
        }
        return static_cast<long>(done);
    }
    detail_win::poll_read(*ch, true);
    if (ch->rbeg == ch->rend) return -1;
    auto k = std::min(n, ch->rend - ch->rbeg);
    std::memcpy(data, ch->rbuf.data() + ch->rbeg, k);
    ch->rbeg += k;
    return static_cast<long>(k);
}

/// Blocking read of exactly n bytes. False on end of stream or error.
inline bool read_all(native_handle fd, void* data, std::size_t n) noexcept {
    auto p = static_cast<char*>(data);
    while (n) {
        auto k = read_some_blocking(fd, p, n);
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

/// Buffer sizes are fixed when the pipe is created (1 MiB each way).
inline void enlarge_buffers(native_handle, int) noexcept {}

/// Waits until one item is ready or `timeout_ms` passes (-1: forever).
inline void wait_any(std::vector<poll_item>& items, int timeout_ms) {
    std::vector<HANDLE> events;
    auto check = [&](bool collect) {
        bool ready = false;
        events.clear();
        for (auto& it : items) {
            it.readable = it.writable = it.hangup = false;
            auto* ch = detail_win::find(it.fd);
            if (!ch) {
                it.hangup = ready = true;
                continue;
            }
            if (detail_win::poll_read(*ch, false)) {
                it.readable = ready = true;
                it.hangup = ch->rbeg == ch->rend;
            } else if (collect) {
                events.push_back(ch->rov.hEvent);
            }
            if (it.want_write) {
                if (detail_win::poll_write(*ch, false)) it.writable = ready = true;
                else if (collect) events.push_back(ch->wov.hEvent);
            }
        }
        return ready;
    };
    if (check(true)) return;
    DWORD wait = timeout_ms < 0 ? INFINITE : static_cast<DWORD>(timeout_ms);
    if (events.empty()) {
        ::Sleep(wait == INFINITE ? 0 : wait);
        check(false);
        return;
    }
    if (events.size() <= MAXIMUM_WAIT_OBJECTS) {
        DWORD r = ::WaitForMultipleObjects(static_cast<DWORD>(events.size()), events.data(), FALSE, wait);
        if (r == WAIT_FAILED) throw_last_error("WaitForMultipleObjects");
    } else {
        // More than 64 events (over ~30 workers): wait on the first 64 in short slices, then look at all.
        auto start = ::GetTickCount64();
        for (;;) {
            DWORD r = ::WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS, events.data(), FALSE, 1);
            if (r == WAIT_FAILED) throw_last_error("WaitForMultipleObjects");
            if (r != WAIT_TIMEOUT || check(false)) break;
            if (wait != INFINITE && ::GetTickCount64() - start >= wait) break;
        }
    }
    check(false);
}

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
} // namespace detail_win

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

inline void sleep_for_ms(int ms) noexcept { ::Sleep(static_cast<DWORD>(ms)); }

/// Whether the process's standard error is a console (a progress bar draws only then).
inline bool stderr_is_terminal() noexcept {
    DWORD mode = 0;
    return ::GetConsoleMode(::GetStdHandle(STD_ERROR_HANDLE), &mode) != 0;
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

inline std::wstring executable_path_w() {
    std::wstring p(MAX_PATH, L'\0');
    for (;;) { // long paths: grow until it fits
        DWORD n = ::GetModuleFileNameW(nullptr, p.data(), static_cast<DWORD>(p.size()));
        if (n == 0) throw_last_error("GetModuleFileName");
        if (n < p.size()) {
            p.resize(n);
            return p;
        }
        p.resize(p.size() * 2);
    }
}

/// Path of the running executable (UTF-8).
inline std::string executable_path() { return narrow(executable_path_w()); }

/// Identity of the executable image (volume, file index, size, last write): a spawned worker compares it with
/// its parent's.
inline std::string executable_identity() {
    HANDLE f = ::CreateFileW(executable_path_w().c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr);
    if (f == INVALID_HANDLE_VALUE) return "unknown";
    BY_HANDLE_FILE_INFORMATION info{};
    BOOL ok = ::GetFileInformationByHandle(f, &info);
    ::CloseHandle(f);
    if (!ok) return "unknown";
    auto u64 = [](DWORD hi, DWORD lo) { return std::to_string((static_cast<unsigned long long>(hi) << 32) | lo); };
    return std::to_string(info.dwVolumeSerialNumber) + ":" + u64(info.nFileIndexHigh, info.nFileIndexLow) + ":" +
           u64(info.nFileSizeHigh, info.nFileSizeLow) + ":" +
           u64(info.ftLastWriteTime.dwHighDateTime, info.ftLastWriteTime.dwLowDateTime);
}

/// What a spawned worker finds its channel as: the inherited handle keeps its value in the child.
inline std::string child_channel_token(native_handle theirs) {
    auto* ch = detail_win::find(theirs);
    return ch ? std::to_string(reinterpret_cast<std::uintptr_t>(ch->pipe)) : std::string("0");
}

/// In a spawned worker: takes over the channel named by `token` (see child_channel_token), uninheritable from
/// now on (processes the tasks start must not hold it open after this worker dies).
inline native_handle adopt_channel(const char* token) {
    if (!token) return invalid_handle;
    auto value = static_cast<std::uintptr_t>(std::strtoull(token, nullptr, 10));
    HANDLE h = reinterpret_cast<HANDLE>(value);
    if (!value || ::GetFileType(h) != FILE_TYPE_PIPE) return invalid_handle;
    ::SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
    return detail_win::add(h);
}

namespace detail_win {
/// argv[i] quoted so that CommandLineToArgvW and the C runtime give it back unchanged.
inline void append_quoted(std::wstring& cmd, const std::wstring& arg) {
    if (!cmd.empty()) cmd += L' ';
    if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
        cmd += arg;
        return;
    }
    cmd += L'"';
    for (auto it = arg.begin();; ++it) {
        std::size_t backslashes = 0;
        while (it != arg.end() && *it == L'\\') {
            ++it;
            ++backslashes;
        }
        if (it == arg.end()) {
            cmd.append(backslashes * 2, L'\\');
            break;
        }
        if (*it == L'"') cmd.append(backslashes * 2 + 1, L'\\');
        else cmd.append(backslashes, L'\\');
        cmd += *it;
    }
    cmd += L'"';
}

/// The parent's environment block with `extra` (NAME=value, UTF-8) added or replacing same-named entries.
inline std::vector<wchar_t> environment_with(const std::vector<std::string>& extra) {
    std::vector<std::wstring> add;
    for (auto& e : extra) add.push_back(widen(e));
    auto name_of = [](const std::wstring& kv) { return kv.substr(0, kv.find(L'=', 1)); };
    auto same_name = [](const std::wstring& a, const std::wstring& b) {
        return ::CompareStringOrdinal(a.c_str(), static_cast<int>(a.size()), b.c_str(), static_cast<int>(b.size()),
                                      TRUE) == CSTR_EQUAL;
    };
    std::vector<wchar_t> block;
    if (wchar_t* env = ::GetEnvironmentStringsW()) {
        for (wchar_t* e = env; *e; e += std::wcslen(e) + 1) {
            std::wstring kv(e);
            bool overridden = false;
            for (auto& a : add) overridden = overridden || same_name(name_of(kv), name_of(a));
            if (!overridden) block.insert(block.end(), kv.c_str(), kv.c_str() + kv.size() + 1);
        }
        ::FreeEnvironmentStringsW(env);
    }
    for (auto& a : add) block.insert(block.end(), a.c_str(), a.c_str() + a.size() + 1);
    block.push_back(L'\0');
    if (block.size() == 1) block.push_back(L'\0');
    return block;
}

/// An inheritable duplicate of a standard handle, or null when there is none.
inline HANDLE inheritable_std_handle(DWORD which) {
    HANDLE h = ::GetStdHandle(which);
    if (!h || h == INVALID_HANDLE_VALUE) return nullptr;
    HANDLE dup = nullptr;
    if (!::DuplicateHandle(::GetCurrentProcess(), h, ::GetCurrentProcess(), &dup, 0, TRUE, DUPLICATE_SAME_ACCESS))
        return nullptr;
    return dup;
}
} // namespace detail_win

/// Starts the running executable with `args` (argv[1...]) and `extra_env` added to the environment. The child
/// inherits `channel` and the standard handles and nothing else, starts suspended until it is in the workers'
/// job object (so it dies with this process), and is then resumed.
inline pid_type spawn_self(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                           native_handle channel, native_handle /*lifeline: none on Windows*/ = invalid_handle) {
    auto* ch = detail_win::find(channel);
    if (!ch) throw std::runtime_error("procpool: spawn_self: not a channel");
    std::wstring exe = executable_path_w();
    std::wstring cmd;
    detail_win::append_quoted(cmd, exe);
    for (auto& a : args) detail_win::append_quoted(cmd, widen(a));
    auto env = detail_win::environment_with(extra_env);

    HANDLE std_handles[3] = {detail_win::inheritable_std_handle(STD_INPUT_HANDLE),
                             detail_win::inheritable_std_handle(STD_OUTPUT_HANDLE),
                             detail_win::inheritable_std_handle(STD_ERROR_HANDLE)};
    std::vector<HANDLE> inherit{ch->pipe};
    for (HANDLE h : std_handles)
        if (h) inherit.push_back(h);
    struct cleanup {
        HANDLE* hs;
        HANDLE pipe;
        LPPROC_THREAD_ATTRIBUTE_LIST list = nullptr;
        ~cleanup() {
            for (int i = 0; i < 3; ++i)
                if (hs[i]) ::CloseHandle(hs[i]);
            ::SetHandleInformation(pipe, HANDLE_FLAG_INHERIT, 0);
            if (list) ::DeleteProcThreadAttributeList(list);
        }
    } guard{std_handles, ch->pipe};
    // The handle list only takes inheritable handles; the flag is cleared again right after CreateProcess.
    ::SetHandleInformation(ch->pipe, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);

    SIZE_T size = 0;
    ::InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
    std::vector<unsigned char> storage(size);
    auto list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage.data());
    if (!::InitializeProcThreadAttributeList(list, 1, 0, &size)) throw_last_error("InitializeProcThreadAttributeList");
    guard.list = list;
    if (!::UpdateProcThreadAttribute(list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherit.data(),
                                     inherit.size() * sizeof(HANDLE), nullptr, nullptr))
        throw_last_error("UpdateProcThreadAttribute(PROC_THREAD_ATTRIBUTE_HANDLE_LIST)");

    STARTUPINFOEXW si{};
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = std_handles[0];
    si.StartupInfo.hStdOutput = std_handles[1];
    si.StartupInfo.hStdError = std_handles[2];
    si.lpAttributeList = list;
    PROCESS_INFORMATION pi{};
    // wine (seen with 8.0) fails a start now and then with ERROR_INTERNAL_ERROR and succeeds when asked again.
    for (int attempt = 1;; ++attempt) {
        if (::CreateProcessW(exe.c_str(), cmd.data(), nullptr, nullptr, TRUE,
                             CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT, env.data(),
                             nullptr, &si.StartupInfo, &pi))
            break;
        if (::GetLastError() != ERROR_INTERNAL_ERROR || attempt == 3)
            throw_last_error("CreateProcess of the running executable");
        ::Sleep(static_cast<DWORD>(attempt)); // not synchronisation: a short pause before trying again
    }
    HANDLE job = detail_win::worker_job();
    if (!job || !::AssignProcessToJobObject(job, pi.hProcess)) {
        // Without the job a worker could outlive this process: refuse rather than leak processes.
        DWORD e = ::GetLastError();
        ::TerminateProcess(pi.hProcess, terminated_code);
        ::CloseHandle(pi.hThread);
        ::CloseHandle(pi.hProcess);
        ::SetLastError(e);
        throw_last_error("AssignProcessToJobObject (workers must die with their parent)");
    }
    ::ResumeThread(pi.hThread);
    ::CloseHandle(pi.hThread);
    {
        auto& t = detail_win::processes();
        std::lock_guard lock(t.mutex);
        t.handles[static_cast<pid_type>(pi.dwProcessId)] = pi.hProcess;
    }
    return static_cast<pid_type>(pi.dwProcessId);
}

/// Flushes C stdio.
inline void flush_stdio() noexcept { std::fflush(nullptr); }

/// Ends this process at once, without running atexit handlers or static destructors.
[[noreturn]] inline void quick_exit_process(int code) noexcept {
    flush_stdio();
    std::_Exit(code);
}

namespace detail_win {
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

/// Lifelines (see posix.hpp) are not needed here: the workers' job object (KILL_ON_JOB_CLOSE) ends every worker
/// with this process, whichever thread started it.
struct lifeline_pair {
    native_handle parent_end = invalid_handle;
    native_handle child_end = invalid_handle;
};
inline lifeline_pair make_lifeline() noexcept { return {}; }
inline void drop_lifeline(native_handle& parent_end) noexcept { parent_end = invalid_handle; }
inline native_handle adopt_lifeline(const char*) noexcept { return invalid_handle; }
inline std::string child_lifeline_token(native_handle) { return "-1"; }
/// Console Ctrl-C reaches every process attached to the console: workers ignore it and end with the application
/// (job object).
inline void ignore_terminal_signals() noexcept { ::SetConsoleCtrlHandler(nullptr, TRUE); }
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

/// Loads a DLL. Returns null and sets `err` on failure.
inline void* load_library(const std::string& path, std::string& err) noexcept {
    try {
        HMODULE h = ::LoadLibraryExW(widen(path).c_str(), nullptr, LOAD_WITH_ALTERED_SEARCH_PATH);
        if (!h) err = last_error_text(::GetLastError());
        return reinterpret_cast<void*>(h);
    } catch (...) {
        err = "out of memory";
        return nullptr;
    }
}

/// Address of an exported symbol of a loaded DLL, or null.
inline void* find_symbol(void* library, const char* name) noexcept {
    FARPROC p = ::GetProcAddress(reinterpret_cast<HMODULE>(library), name);
    void* out = nullptr;
    static_assert(sizeof out == sizeof p);
    std::memcpy(&out, &p, sizeof out);
    return out;
}

inline const char* get_env(const char* name) noexcept { return std::getenv(name); }
inline void unset_env(const char* name) noexcept {
    ::SetEnvironmentVariableA(name, nullptr); // the block children inherit
    std::string kv = std::string(name) + "=";
    ::_putenv(kv.c_str()); // the C runtime's copy, which getenv reads
}

// The result ring is POSIX (Linux) only: results travel over the pipe here.
inline constexpr bool has_result_ring = false;
inline constexpr std::size_t ring_control_bytes = 4096;
inline native_handle create_ring_memory(std::size_t) noexcept { return invalid_handle; }
inline void* map_ring(native_handle, std::size_t) noexcept { return nullptr; }
inline void unmap_ring(void*, std::size_t) noexcept {}
inline void wait_on_shared(std::atomic<std::uint32_t>&, std::uint32_t, int) noexcept {}
inline void wake_shared(std::atomic<std::uint32_t>&) noexcept {}
inline bool peer_closed(native_handle) noexcept { return false; }

/// Milliseconds on a monotonic clock.
inline std::int64_t now_ms() noexcept {
    static const LONGLONG freq = [] {
        LARGE_INTEGER f;
        ::QueryPerformanceFrequency(&f);
        return f.QuadPart;
    }();
    LARGE_INTEGER c;
    ::QueryPerformanceCounter(&c);
    return static_cast<std::int64_t>(c.QuadPart / freq * 1000 + c.QuadPart % freq * 1000 / freq);
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_HPP
