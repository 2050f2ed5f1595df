// SPDX-License-Identifier: BSL-1.0
// tests/test_tasks.hpp: helpers shared by the pool tests (no tasks: PROCPOOL_TASK appears once per task, in the
// *_test.cpp that uses it, because the build globs only *_test.cpp).
//
// Synchronisation with a task never uses sleeps: a task that must block waits on a gate, a named FIFO whose
// write end the test holds (on Windows: a named semaphore and a "closed" event). The test releases it by writing
// one byte per waiting task (releasing the semaphore once per task).
//
// Every helper has a POSIX and a Windows implementation (docs/windows.md); the Windows ones count handles
// instead of descriptors and walk a Toolhelp snapshot instead of /proc.
#ifndef PROCPOOL_TESTS_TEST_TASKS_HPP
#define PROCPOOL_TESTS_TEST_TASKS_HPP

#include "catch.hpp"

// 1 under AddressSanitizer, whose allocator and quarantine change what memory figures read.
#if defined(__SANITIZE_ADDRESS__)
#define PPT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PPT_ASAN 1
#endif
#endif
#ifndef PPT_ASAN
#define PPT_ASAN 0
#endif

#include <procpool/procpool.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if PROCPOOL_WINDOWS
#include <atomic>
#include <random>
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <tlhelp32.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#endif

namespace ppt {

/// A string matcher for a substring: Catch2 v3 renamed v2's Contains (v3's Contains matches range elements).
inline auto has_substring(const std::string& s) {
#if defined(CATCH_VERSION_MAJOR) && CATCH_VERSION_MAJOR >= 3
    return Catch::Matchers::ContainsSubstring(s);
#else
    return Catch::Matchers::Contains(s);
#endif
}

// The start methods this platform has (Windows: spawn and in_process), and those that start processes.
#if PROCPOOL_POSIX
inline constexpr std::array<procpool::start_method, 4> all_methods{
    procpool::start_method::spawn, procpool::start_method::fork, procpool::start_method::forkserver,
    procpool::start_method::in_process};
inline constexpr std::array<procpool::start_method, 3> process_methods{
    procpool::start_method::spawn, procpool::start_method::fork, procpool::start_method::forkserver};
#else
inline constexpr std::array<procpool::start_method, 2> all_methods{procpool::start_method::spawn,
                                                                   procpool::start_method::in_process};
inline constexpr std::array<procpool::start_method, 1> process_methods{procpool::start_method::spawn};
#endif

/// This process's id.
inline long pid() { return static_cast<long>(procpool::platform::current_pid()); }

#if PROCPOOL_WINDOWS
/// True when this Windows program runs under wine (which exports wine_get_version from its ntdll).
inline bool under_wine() { return ::GetProcAddress(::GetModuleHandleW(L"ntdll.dll"), "wine_get_version") != nullptr; }
#endif

/// Blocks the calling thread until the process is killed (a task that hangs on purpose).
[[noreturn]] inline void block_forever() {
    for (;;) {
#if PROCPOOL_WINDOWS
        ::Sleep(INFINITE);
#else
        ::pause();
#endif
    }
}

inline const char* name(procpool::start_method m) {
    switch (m) {
    case procpool::start_method::spawn: return "spawn";
    case procpool::start_method::fork: return "fork";
    case procpool::start_method::forkserver: return "forkserver";
    case procpool::start_method::in_process: return "in_process";
    }
    return "?";
}

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents at the end of the scope.
class temp_dir {
public:
    temp_dir() {
#if PROCPOOL_WINDOWS
        static std::atomic<unsigned> serial{0};
        const auto base = std::filesystem::temp_directory_path();
        std::random_device rd;
        for (int attempt = 0; path_.empty(); ++attempt) {
            if (attempt == 100) throw std::runtime_error("cannot create a directory in " + base.string());
            auto dir = base / ("procpool-test-" + std::to_string(pid()) + "-" + std::to_string(serial++) + "-" +
                               std::to_string(rd() % 1000000));
            if (std::filesystem::create_directory(dir)) path_ = dir.generic_string();
        }
#else
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/procpool-test-XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
#endif
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

#if PROCPOOL_WINDOWS
/// What tasks block on (see wait_on_gate) until the test releases them: a named semaphore, released once per task,
/// and a named manual-reset event set when the gate is destroyed, so that a task still waiting then returns and a
/// failed test cannot hang the pool's destructor (declare the gate after the pool). path() is the objects' name.
class gate {
public:
    gate() {
        static std::atomic<unsigned> serial{0};
        path_ = "Local\\procpool-test-gate-" + std::to_string(pid()) + "-" + std::to_string(serial++) + "-" +
                std::to_string(std::random_device{}());
        sem_ = ::CreateSemaphoreA(nullptr, 0, 0x7fffffff, path_.c_str());
        closed_ = ::CreateEventA(nullptr, TRUE, FALSE, (path_ + ".closed").c_str());
        if (!sem_ || !closed_) throw std::runtime_error("cannot create the gate's semaphore and event");
    }
    ~gate() {
        ::SetEvent(closed_);
        ::CloseHandle(closed_);
        ::CloseHandle(sem_);
    }
    gate(const gate&) = delete;
    gate& operator=(const gate&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }
    /// Lets `n` waiting tasks go.
    void release(int n = 1) {
        if (!::ReleaseSemaphore(sem_, n, nullptr)) throw std::runtime_error("ReleaseSemaphore failed");
    }
    /// The other way round: blocks until a task has called signal_gate(path()) (use a gate for one direction only).
    void wait_signal() {
        if (::WaitForSingleObject(sem_, INFINITE) != WAIT_OBJECT_0) throw std::runtime_error("wait on the gate failed");
    }
    /// wait_signal without blocking: true (and consumed) if a task has signalled.
    [[nodiscard]] bool try_wait_signal() { return ::WaitForSingleObject(sem_, 0) == WAIT_OBJECT_0; }

private:
    std::string path_;
    HANDLE sem_ = nullptr;
    HANDLE closed_ = nullptr;
};

/// The body of a gate task: blocks until the test releases the gate. Returns 'x' when released, 0 when the gate
/// was destroyed without a release, -1 when the gate could not be opened.
inline int wait_on_gate(const std::string& name) {
    HANDLE sem = ::OpenSemaphoreA(SYNCHRONIZE, FALSE, name.c_str());
    HANDLE closed = ::OpenEventA(SYNCHRONIZE, FALSE, (name + ".closed").c_str());
    int r = -1;
    if (sem && closed) {
        HANDLE both[2] = {sem, closed}; // a release wins over the close, as a byte in the FIFO before its EOF
        r = ::WaitForMultipleObjects(2, both, FALSE, INFINITE) == WAIT_OBJECT_0 ? 'x' : 0;
    }
    if (sem) ::CloseHandle(sem);
    if (closed) ::CloseHandle(closed);
    return r;
}

/// Called by a task: lets the test's gate::wait_signal() return. False if the gate could not be opened.
inline bool signal_gate(const std::string& name) {
    HANDLE sem = ::OpenSemaphoreA(SEMAPHORE_MODIFY_STATE, FALSE, name.c_str());
    if (!sem) return false;
    const bool ok = ::ReleaseSemaphore(sem, 1, nullptr) != 0;
    ::CloseHandle(sem);
    return ok;
}
#else
/// A named FIFO that tasks block on (see wait_on_gate) until the test releases them.
/// The test keeps a read-write descriptor open, so opening the FIFO never blocks, and a task's read blocks
/// until a byte arrives. Destroying the gate closes that descriptor: a task still waiting then reads end of
/// file and returns, so a failed test cannot hang the pool's destructor (declare the gate after the pool).
class gate {
public:
    gate() : path_(dir_.file("gate")) {
        if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
        fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
        if (fd_ < 0) throw std::runtime_error("open of the fifo failed");
    }
    ~gate() {
        if (fd_ >= 0) ::close(fd_);
    }
    gate(const gate&) = delete;
    gate& operator=(const gate&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }
    /// Lets `n` waiting tasks go (each reads one byte).
    void release(int n = 1) {
        for (int i = 0; i < n; ++i) {
            char b = 'x';
            if (::write(fd_, &b, 1) != 1) throw std::runtime_error("write to the fifo failed");
        }
    }
    /// The other way round: blocks until a task has called signal_gate(path()) (use a gate for one direction only).
    void wait_signal() {
        char b = 0;
        ssize_t r;
        do r = ::read(fd_, &b, 1);
        while (r < 0 && errno == EINTR);
        if (r != 1) throw std::runtime_error("read from the fifo failed");
    }
    /// wait_signal without blocking: true (and consumed) if a task has signalled.
    [[nodiscard]] bool try_wait_signal() {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) return false;
        wait_signal();
        return true;
    }

private:
    temp_dir dir_;
    std::string path_;
    int fd_ = -1;
};

/// The body of a gate task: blocks until the test releases the gate. Returns the byte read ('x'), 0 when the
/// gate was destroyed without a release, -1 when the FIFO could not be opened.
inline int wait_on_gate(const std::string& path) {
    // O_NONBLOCK: the open never waits for a writer; then block on the read itself.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    char b = 0;
    ssize_t r;
    do r = ::read(fd, &b, 1);
    while (r < 0 && errno == EINTR);
    ::close(fd);
    return r == 1 ? b : 0;
}

/// Called by a task: lets the test's gate::wait_signal() return. False if the gate could not be opened.
inline bool signal_gate(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC); // the test holds a reader: never blocks
    if (fd < 0) return false;
    char b = 's';
    const bool ok = ::write(fd, &b, 1) == 1;
    ::close(fd);
    return ok;
}
#endif

/// Appends one line to a file with a single O_APPEND write (atomic between processes for short lines; on Windows
/// one write under a lock of the file).
inline void append_line(const std::string& path, const std::string& line) {
#if PROCPOOL_WINDOWS
    // Under a lock of the whole file: wine's FILE_APPEND_DATA writes are not atomic between processes (it seeks
    // to the end, then writes). A process that dies holding the lock releases it with its handles.
    HANDLE h = ::CreateFileA(path.c_str(), GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             nullptr, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) throw std::runtime_error("cannot open " + path);
    std::string s = line + "\n";
    OVERLAPPED whole{};
    DWORD n = 0;
    BOOL ok = ::LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK, 0, MAXDWORD, MAXDWORD, &whole);
    if (ok) {
        ok = ::SetFilePointerEx(h, LARGE_INTEGER{}, nullptr, FILE_END) &&
             ::WriteFile(h, s.data(), static_cast<DWORD>(s.size()), &n, nullptr);
        ::UnlockFileEx(h, 0, MAXDWORD, MAXDWORD, &whole);
    }
    ::CloseHandle(h);
    if (!ok || n != s.size()) throw std::runtime_error("short write to " + path);
#else
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot open " + path);
    std::string s = line + "\n";
    auto n = ::write(fd, s.data(), s.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(s.size())) throw std::runtime_error("short write to " + path);
#endif
}

inline std::vector<std::string> read_lines(const std::string& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

/// The descendants of this process among `procs` (pairs of a pid and its parent's pid).
inline std::vector<long> descendants_among(const std::vector<std::pair<long, long>>& procs) {
    std::set<long> mine{pid()};
    for (bool grew = true; grew;) {
        grew = false;
        for (auto [p, parent] : procs)
            if (mine.count(parent) && mine.insert(p).second) grew = true;
    }
    mine.erase(pid());
    return {mine.begin(), mine.end()};
}

#if PROCPOOL_WINDOWS
namespace detail {
/// A function of ntdll.dll (no import library needed).
template <class F>
F ntdll(const char* name) {
    FARPROC f = ::GetProcAddress(::GetModuleHandleW(L"ntdll.dll"), name);
    F out = nullptr;
    static_assert(sizeof out == sizeof f);
    std::memcpy(&out, &f, sizeof out);
    return out;
}

/// Type name of one of this process's handles ("File", "Event", "Process"...), or "" when it cannot be told.
inline std::wstring handle_type(HANDLE h) {
    struct unicode_string {
        USHORT length;
        USHORT maximum_length;
        PWSTR buffer;
    };
    using query_object_fn = LONG(WINAPI*)(HANDLE, int, void*, ULONG, ULONG*);
    static const auto query = ntdll<query_object_fn>("NtQueryObject");
    alignas(8) unsigned char buf[1024];
    ULONG need = 0;
    constexpr int object_type_information = 2;
    if (!query || query(h, object_type_information, buf, sizeof buf, &need) != 0) return {};
    const auto* name = reinterpret_cast<const unicode_string*>(buf);
    return std::wstring(name->buffer, name->length / sizeof(wchar_t));
}
} // namespace detail

/// Open handles of this process that a pool could leak: every handle except the job object procpool creates on
/// the first spawn and keeps for the life of the process, and semaphores, which winpthreads creates lazily to back
/// std::mutex and std::condition_variable (the test gates' semaphores are left out too). Counted in the system's
/// handle table (NtQuerySystemInformation, SystemExtendedHandleInformation): wine's GetProcessHandleCount always
/// says 0. -1 when they cannot be counted.
inline int count_fds() {
    struct entry {
        void* object;
        ULONG_PTR pid;
        ULONG_PTR handle;
        ULONG access;
        USHORT creator_back_trace;
        USHORT type;
        ULONG attributes;
        ULONG reserved;
    };
    struct table {
        ULONG_PTR count;
        ULONG_PTR reserved;
        entry handles[1];
    };
    using query_system_fn = LONG(WINAPI*)(int, void*, ULONG, ULONG*);
    static const auto query = detail::ntdll<query_system_fn>("NtQuerySystemInformation");
    if (!query) return -1;
    constexpr int system_extended_handle_information = 64;
    constexpr LONG info_length_mismatch = static_cast<LONG>(0xC0000004);
    std::vector<char> buf(std::size_t{1} << 20);
    for (;;) {
        ULONG need = 0;
        LONG status = query(system_extended_handle_information, buf.data(), static_cast<ULONG>(buf.size()), &need);
        if (status == info_length_mismatch) {
            buf.resize(std::max<std::size_t>(buf.size() * 2, need + 4096));
            continue;
        }
        if (status != 0) return -1;
        break;
    }
    const auto* t = reinterpret_cast<const table*>(buf.data());
    const auto me = static_cast<ULONG_PTR>(::GetCurrentProcessId());
    int n = 0;
    for (ULONG_PTR i = 0; i < t->count; ++i) {
        if (t->handles[i].pid != me) continue;
        auto type = detail::handle_type(reinterpret_cast<HANDLE>(t->handles[i].handle));
        if (type != L"Job" && type != L"Semaphore") ++n;
    }
    return n;
}

/// Processes descending from this one (children, grandchildren), found by following the parent pid in a
/// Toolhelp snapshot. Windows has no zombies: a process that has exited is not listed.
inline std::vector<long> descendant_pids() {
    std::vector<std::pair<long, long>> procs; // pid, ppid
    HANDLE snap = ::CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE) return {};
    PROCESSENTRY32W e{};
    e.dwSize = sizeof e;
    for (BOOL ok = ::Process32FirstW(snap, &e); ok; ok = ::Process32NextW(snap, &e))
        procs.emplace_back(static_cast<long>(e.th32ProcessID), static_cast<long>(e.th32ParentProcessID));
    ::CloseHandle(snap);
    return descendants_among(procs);
}

/// 'R' while process `pid` runs, 0 when it has exited or there is no such process. Windows has no zombies, and
/// wine keeps an exited process openable after its last handle is closed, so "exited" is all that can be told.
/// `start_time` (when given) receives its creation time in 100 ns units, which tells a reused pid apart.
inline char process_state(long pid, unsigned long long* start_time = nullptr) {
    HANDLE h = ::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, static_cast<DWORD>(pid));
    if (!h) return 0;
    char state = ::WaitForSingleObject(h, 0) == WAIT_TIMEOUT ? 'R' : 0;
    FILETIME created{}, exited{}, kernel{}, user{};
    if (start_time && ::GetProcessTimes(h, &created, &exited, &kernel, &user))
        *start_time = (static_cast<unsigned long long>(created.dwHighDateTime) << 32) | created.dwLowDateTime;
    ::CloseHandle(h);
    return state;
}

#else
/// Open descriptors of this process (the directory stream's own descriptor is not counted).
inline int count_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    while (auto* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1;
}

/// Processes descending from this one (children, grandchildren such as fork workers, zombies included),
/// found by following the parent pid in /proc/<pid>/stat.
inline std::vector<long> descendant_pids() {
    std::vector<std::pair<long, long>> procs; // pid, ppid
    DIR* d = ::opendir("/proc");
    if (!d) return {};
    while (auto* e = ::readdir(d)) {
        char* end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (!end || *end != '\0' || pid <= 0) continue;
        std::ifstream in("/proc/" + std::string(e->d_name) + "/stat");
        std::string stat;
        if (!std::getline(in, stat)) continue;
        auto close = stat.rfind(')'); // the command name may hold spaces and parentheses
        if (close == std::string::npos || close + 4 >= stat.size()) continue;
        // after ") " come the state and the parent pid
        long ppid = std::strtol(stat.c_str() + close + 4, nullptr, 10);
        procs.emplace_back(pid, ppid);
    }
    ::closedir(d);
    return descendants_among(procs);
}

/// State letter of process `pid` from /proc/<pid>/stat ('R', 'S', 'Z'...), or 0 when there is no such process.
/// `start_time` (when given) receives its start time in clock ticks after boot, which tells a reused pid apart.
inline char process_state(long pid, unsigned long long* start_time = nullptr) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return 0;
    auto close = stat.rfind(')'); // the command name may hold spaces and parentheses
    if (close == std::string::npos || close + 2 >= stat.size()) return 0;
    std::istringstream fields(stat.substr(close + 2)); // field 3 (state) onwards
    std::string field;
    char state = 0;
    for (int i = 3; fields >> field; ++i) {
        if (i == 3) state = field[0];
        if (i == 22) {
            if (start_time) *start_time = std::strtoull(field.c_str(), nullptr, 10);
            break;
        }
    }
    return state;
}

#endif

/// Sets an environment variable for one scope, restoring the previous state after. On Windows, _putenv_s changes
/// both the C runtime's copy (getenv) and the process environment that CreateProcess passes to children.
class env_guard {
public:
    env_guard(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = std::string(old);
        set(value);
    }
    ~env_guard() { set(old_ ? old_->c_str() : nullptr); }
    env_guard(const env_guard&) = delete;
    env_guard& operator=(const env_guard&) = delete;

private:
    void set(const char* value) { // null: unset
#if PROCPOOL_WINDOWS
        ::_putenv_s(name_.c_str(), value ? value : ""); // "" removes the variable
#else
        if (value) ::setenv(name_.c_str(), value, 1);
        else ::unsetenv(name_.c_str());
#endif
    }

    std::string name_;
    std::optional<std::string> old_;
};

} // namespace ppt

#endif // PROCPOOL_TESTS_TEST_TASKS_HPP
