// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/channel.hpp: a channel is an overlapped named pipe (one instance, an unguessable
// name, a DACL for the current user only), so that the parent can wait on many of them at once. The engine speaks
// in small integer descriptors, as on POSIX: this file keeps a table from those to the pipe handle and its pending
// reads and writes.
#ifndef PROCPOOL_PLATFORM_WINDOWS_CHANNEL_HPP
#define PROCPOOL_PLATFORM_WINDOWS_CHANNEL_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/windows/win32.hpp>
#include <procpool/platform/windows/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <cwchar>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <span>
#include <vector>

#if defined(_MSC_VER)
#pragma comment(lib, "advapi32.lib") // the pipe's security descriptor
#endif

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

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

/// The thread that starts every overlapped read or write that may stay pending after the call that started it
/// (read_some, write_some, wait_any). Windows cancels the I/O a thread issued when that thread exits (wine does
/// too: cancel_terminating_thread_asyncs), and it completes such I/O in the context of the thread that issued it.
/// The engine's driving thread is whichever thread happens to submit or wait, often one that ends soon after: a
/// frame's last write, started by a thread that then returned from future::get() and ended, was cancelled, the
/// worker waited for the rest of its frame forever (docs/windows.md, "several threads submitting arguments of
/// megabytes"). This thread lives as long as the process and is always in a wait, so what it starts completes.
/// Blocking transfers (the worker side, write_all / read_some_blocking) wait in the thread that starts them and
/// do not come here.
class io_thread {
public:
    /// ReadFile (write false) or WriteFile of `n` bytes with `ov`, started by the I/O thread. Returns what the
    /// call returned; GetLastError() is set to the error it left. Falls back to the calling thread when the I/O
    /// thread cannot be started.
    static BOOL start(HANDLE pipe, bool write, void* data, DWORD n, OVERLAPPED* ov) noexcept {
        // The main thread ends only with the process (a worker's loop runs there too): it starts its own, and a
        // process that never uses channels from other threads (every worker) never starts the I/O thread.
        if (::GetCurrentThreadId() == main_thread) return issue(pipe, write, data, n, ov);
        static io_thread* self = make(); // never destroyed: channels may be used during static destruction
        if (!self) return issue(pipe, write, data, n, ov);
        std::lock_guard lock(self->calls_);
        self->req_ = request{pipe, write, data, n, ov, FALSE, 0};
        ::SetEvent(self->go_);
        ::WaitForSingleObject(self->done_, INFINITE);
        ::SetLastError(self->req_.error);
        return self->req_.result;
    }

private:
    /// The thread that ran static initialization: the main thread of a program (in a DLL loaded later by another
    /// thread, that thread, whose I/O is then not protected).
    static inline const DWORD main_thread = ::GetCurrentThreadId();

    struct request {
        HANDLE pipe;
        bool write;
        void* data;
        DWORD n;
        OVERLAPPED* ov;
        BOOL result;
        DWORD error;
    };

    static BOOL issue(HANDLE pipe, bool write, void* data, DWORD n, OVERLAPPED* ov) noexcept {
        return write ? ::WriteFile(pipe, data, n, nullptr, ov) : ::ReadFile(pipe, data, n, nullptr, ov);
    }

    static io_thread* make() noexcept {
        auto* t = new (std::nothrow) io_thread;
        if (!t) return nullptr;
        t->go_ = ::CreateEventW(nullptr, FALSE, FALSE, nullptr);
        t->done_ = ::CreateEventW(nullptr, FALSE, FALSE, nullptr);
        HANDLE th = (t->go_ && t->done_) ? ::CreateThread(nullptr, 64 * 1024, &io_thread::run, t,
                                                          STACK_SIZE_PARAM_IS_A_RESERVATION, nullptr)
                                         : nullptr;
        if (!th) {
            if (t->go_) ::CloseHandle(t->go_);
            if (t->done_) ::CloseHandle(t->done_);
            delete t;
            return nullptr;
        }
        ::CloseHandle(th); // it runs until the process ends
        return t;
    }

    static DWORD WINAPI run(void* arg) {
        auto* t = static_cast<io_thread*>(arg);
        for (;;) {
            // A wait: here the I/O this thread started completes (wine delivers its completions to it here).
            ::WaitForSingleObject(t->go_, INFINITE);
            auto& r = t->req_;
            r.result = issue(r.pipe, r.write, r.data, r.n, r.ov);
            r.error = r.result ? 0 : ::GetLastError();
            ::SetEvent(t->done_);
        }
    }

    std::mutex calls_; // one request at a time
    HANDLE go_ = nullptr, done_ = nullptr;
    request req_{};
};

/// Starts a read into the channel's buffer if none is pending and nothing is buffered; `here`: by this thread,
/// which waits for it (else by the I/O thread, as the read may outlive the call).
inline void start_read(channel& ch, bool here) noexcept {
    if (ch.rpending || ch.eof || ch.rbeg < ch.rend) return;
    reset(ch.rov);
    ch.rbeg = ch.rend = 0;
    auto* buf = ch.rbuf.data();
    const auto n = static_cast<DWORD>(ch.rbuf.size());
    if ((here ? ::ReadFile(ch.pipe, buf, n, nullptr, &ch.rov) : io_thread::start(ch.pipe, false, buf, n, &ch.rov)) ||
        ::GetLastError() == ERROR_IO_PENDING)
        ch.rpending = true;
    else
        ch.eof = true; // ERROR_BROKEN_PIPE: the other end is closed
}

/// Collects a finished read (waiting for it when `block`). True when bytes are buffered or the stream ended.
inline bool poll_read(channel& ch, bool block) noexcept {
    for (;;) {
        if (ch.rbeg < ch.rend || ch.eof) return true;
        start_read(ch, block);
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
    if (!detail_win::io_thread::start(ch->pipe, true, ch->wbuf.data(), static_cast<DWORD>(k), &ch->wov) &&
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
inline void wait_any(std::span<poll_item> items, int timeout_ms) {
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

/// Whether the other end has closed the channel: not known here without reading (only the result ring asks, and it
/// is POSIX only).
inline bool peer_closed(native_handle) noexcept { return false; }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_CHANNEL_HPP
