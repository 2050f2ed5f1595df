// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix.hpp: the POSIX side of the small OS interface (processes, channels, waiting).
// Linux-only calls (prctl, /proc, closefrom) are used where available and have a portable fallback.
#ifndef PROCPOOL_PLATFORM_POSIX_HPP
#define PROCPOOL_PLATFORM_POSIX_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif
#if defined(__APPLE__)
#include <mach-o/dyld.h>
#endif

extern char** environ;

PROCPOOL_BEGIN_NAMESPACE
namespace platform {


[[noreturn]] inline void throw_errno(const char* what) {
    throw std::system_error(errno, std::generic_category(), std::string("procpool: ") + what);
}

inline pid_type current_pid() noexcept { return static_cast<pid_type>(::getpid()); }

namespace detail_pid {
inline std::atomic<pid_type>& cache() noexcept {
    static std::atomic<pid_type> pid{0};
    return pid;
}
extern "C" inline void on_fork_child() { cache().store(0, std::memory_order_relaxed); } // re-read lazily
} // namespace detail_pid

/// current_pid() without a system call on every use (pool::check_owner runs on every submit). The cache is
/// cleared in the child of every fork() that runs the pthread_atfork handlers (fork(), posix fork wrappers).
inline pid_type cached_pid() noexcept {
    auto pid = detail_pid::cache().load(std::memory_order_relaxed);
    if (pid != 0) return pid;
    static const bool registered = ::pthread_atfork(nullptr, nullptr, detail_pid::on_fork_child) == 0;
    pid = current_pid();
    if (registered) detail_pid::cache().store(pid, std::memory_order_relaxed);
    return pid;
}

inline void close_handle(native_handle h) noexcept {
    if (h >= 0) ::close(h);
}

inline void set_cloexec(native_handle fd) noexcept { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

inline void set_nonblocking(native_handle fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK)) < 0)
        throw_errno("fcntl(O_NONBLOCK)");
}

/// A connected pair of Unix-domain stream sockets, both close-on-exec.
inline void make_channel(native_handle& a, native_handle& b) {
    int sv[2];
#if defined(SOCK_CLOEXEC)
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) throw_errno("socketpair");
#else
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) throw_errno("socketpair");
    set_cloexec(sv[0]);
    set_cloexec(sv[1]);
#endif
#if defined(SO_NOSIGPIPE)
    int one = 1;
    ::setsockopt(sv[0], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    ::setsockopt(sv[1], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    a = sv[0];
    b = sv[1];
}

#if defined(MSG_NOSIGNAL)
inline constexpr int send_flags = MSG_NOSIGNAL; // a dead peer is an error code, not a SIGPIPE
#else
inline constexpr int send_flags = 0;
#endif

/// Writes what the socket takes now. Returns bytes written (0 when it would block), -1 when the peer is gone.
inline long write_some(native_handle fd, const void* data, std::size_t n) noexcept {
    for (;;) {
        auto r = ::send(fd, data, n, send_flags | MSG_DONTWAIT);
        if (r >= 0) return static_cast<long>(r);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
        return -1;
    }
}

/// Reads what is available. Returns bytes read, 0 when it would block, -1 on end of stream or error.
inline long read_some(native_handle fd, void* data, std::size_t n) noexcept {
    for (;;) {
        auto r = ::recv(fd, data, n, MSG_DONTWAIT);
        if (r > 0) return static_cast<long>(r);
        if (r == 0) return -1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -1;
    }
}

/// Blocking read of what is available, at most n bytes: waits for at least one. Returns bytes read, -1 on end of
/// stream or error (the worker side: one system call takes a frame's header and payload, or several frames).
inline long read_some_blocking(native_handle fd, void* data, std::size_t n) noexcept {
    for (;;) {
        auto r = ::recv(fd, data, n, 0);
        if (r > 0) return static_cast<long>(r);
        if (r < 0 && errno == EINTR) continue;
        return -1;
    }
}

/// Blocking write of everything (the worker side). False when the peer is gone.
inline bool write_all(native_handle fd, const void* data, std::size_t n) noexcept {
    auto p = static_cast<const char*>(data);
    while (n) {
        auto r = ::send(fd, p, n, send_flags);
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

/// Blocking read of exactly n bytes. False on end of stream or error.
inline bool read_all(native_handle fd, void* data, std::size_t n) noexcept {
    auto p = static_cast<char*>(data);
    while (n) {
        auto r = ::recv(fd, p, n, 0);
        if (r == 0) return false;
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

/// Larger socket buffers let big frames move in fewer wake-ups.
inline void enlarge_buffers(native_handle fd, int bytes) noexcept {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

/// Waits until one item is ready or `timeout_ms` passes (-1: forever).
inline void wait_any(std::vector<poll_item>& items, int timeout_ms) {
    std::vector<pollfd> p(items.size());
    for (std::size_t i = 0; i < items.size(); ++i)
        p[i] = pollfd{items[i].fd, static_cast<short>(POLLIN | (items[i].want_write ? POLLOUT : 0)), 0};
    int r;
    do r = ::poll(p.data(), static_cast<nfds_t>(p.size()), timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0) throw_errno("poll");
    for (std::size_t i = 0; i < items.size(); ++i) {
        items[i].readable = p[i].revents & POLLIN;
        items[i].writable = p[i].revents & POLLOUT;
        items[i].hangup = p[i].revents & (POLLHUP | POLLERR | POLLNVAL);
    }
}

/// Reaps `pid` if it has ended (or waits for it when `block`).
inline std::optional<exit_status> try_reap(pid_type pid, bool block) noexcept {
    int st = 0;
    pid_t r;
    do r = ::waitpid(static_cast<pid_t>(pid), &st, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) return std::nullopt;
    if (r < 0) return exit_status{-1, 0}; // not our child any more: nothing to report
    if (WIFSIGNALED(st)) return exit_status{-1, WTERMSIG(st)};
    return exit_status{WEXITSTATUS(st), 0};
}

inline exit_status decode_wait_status(int st) noexcept {
    if (WIFSIGNALED(st)) return exit_status{-1, WTERMSIG(st)};
    return exit_status{WEXITSTATUS(st), 0};
}

/// Reaps any ended child: its pid and status, or nothing when none has ended.
inline std::optional<std::pair<pid_type, exit_status>> reap_any() noexcept {
    int st = 0;
    pid_t r;
    do r = ::waitpid(-1, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return std::nullopt;
    return std::pair{static_cast<pid_type>(r), decode_wait_status(st)};
}

namespace detail_sigchld {
inline int& write_end() {
    static int fd = -1;
    return fd;
}
extern "C" inline void on_sigchld(int) {
    int saved = errno;
    char b = 1;
    [[maybe_unused]] auto r = ::write(write_end(), &b, 1);
    errno = saved;
}
} // namespace detail_sigchld

/// A descriptor that becomes readable whenever a child ends (a SIGCHLD self-pipe). For the fork template only.
inline native_handle child_exit_events() {
    int p[2];
    if (::pipe(p) < 0) throw_errno("pipe");
    for (int fd : p) {
        set_cloexec(fd);
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    detail_sigchld::write_end() = p[1];
    struct sigaction sa{};
    sa.sa_handler = detail_sigchld::on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    ::sigaction(SIGCHLD, &sa, nullptr);
    return p[0];
}

/// Drains the self-pipe and restores default SIGCHLD handling (in a child forked from the template).
inline void drain(native_handle fd) noexcept {
    char buf[256];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
}
inline void reset_child_exit_events(native_handle read_end) noexcept {
    ::signal(SIGCHLD, SIG_DFL);
    close_handle(read_end);
    close_handle(detail_sigchld::write_end());
    detail_sigchld::write_end() = -1;
}

inline void kill_process(pid_type pid) noexcept {
    if (pid > 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
}

/// Whether the process's standard error is a terminal (a progress bar draws only then).
inline bool stderr_is_terminal() noexcept { return ::isatty(2) == 1; }

inline void sleep_for_ms(int ms) noexcept {
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/// Reaps a child that closed its channel: waits up to `grace_ms` for it to exit by itself, then kills it.
inline exit_status reap_or_kill(pid_type pid, int grace_ms) noexcept {
    for (int waited = 0, step = 1; waited < grace_ms; waited += step, step = step < 50 ? step * 2 : 50) {
        if (auto st = try_reap(pid, false)) return *st;
        sleep_for_ms(step);
    }
    kill_process(pid);
    return *try_reap(pid, true);
}

inline std::string signal_name(int sig) {
    switch (sig) {
    case SIGABRT: return "SIGABRT";
    case SIGSEGV: return "SIGSEGV";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGINT: return "SIGINT";
    case SIGPIPE: return "SIGPIPE";
    case SIGHUP: return "SIGHUP";
    case SIGQUIT: return "SIGQUIT";
    case SIGTRAP: return "SIGTRAP";
    case SIGXCPU: return "SIGXCPU";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "signal " + std::to_string(sig);
    }
}

/// "exited with code 3", "was killed by SIGSEGV".
inline std::string describe_exit(const exit_status& st) {
    if (st.signal) return "was killed by " + signal_name(st.signal);
    return "exited with code " + std::to_string(st.code);
}

/// Number of threads in this process, or -1 where it cannot be counted.
inline int thread_count() noexcept {
#if defined(__linux__)
    DIR* d = ::opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    while (auto* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
#else
    return -1;
#endif
}

/// Path of the running executable.
inline std::string executable_path() {
#if defined(__linux__)
    return "/proc/self/exe"; // names this process's image even if the file was replaced since
#elif defined(__APPLE__)
    std::uint32_t size = 0;
    _NSGetExecutablePath(nullptr, &size);
    std::string p(size, '\0');
    if (_NSGetExecutablePath(p.data(), &size) != 0) throw std::runtime_error("procpool: _NSGetExecutablePath failed");
    p.resize(std::strlen(p.c_str()));
    return p;
#else
    char buf[4096];
    auto n = ::readlink("/proc/curproc/file", buf, sizeof buf - 1);
    if (n <= 0) throw std::runtime_error("procpool: cannot find the running executable on this platform");
    return std::string(buf, static_cast<std::size_t>(n));
#endif
}

/// Identity of the executable image (device, inode, size, mtime): a spawned worker compares it with its parent's.
inline std::string executable_identity() {
    struct stat st{};
    if (::stat(executable_path().c_str(), &st) != 0) return "unknown";
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(static_cast<long long>(st.st_mtime));
}

/// The descriptor number a spawned worker finds its channel on.
inline constexpr native_handle child_channel_fd = 3;

/// What a spawned worker finds its channel as (the environment tells it): always descriptor 3 here.
inline std::string child_channel_token(native_handle) { return std::to_string(child_channel_fd); }

/// In a spawned worker: the channel named by `token` (see child_channel_token), close-on-exec from now on:
/// posix_spawn's dup2 left it inheritable, and processes the tasks start must not hold it open after this
/// worker dies (that would hide its death from the pool).
inline native_handle adopt_channel(const char* token) {
    native_handle fd = token ? static_cast<native_handle>(std::atoi(token)) : child_channel_fd;
    if (fd < 0) return invalid_handle;
    set_cloexec(fd);
    return fd;
}

/// The descriptor number a spawned child finds its lifeline on (see make_lifeline).
inline constexpr native_handle child_lifeline_fd = 4;

/// Starts the running executable with `args` (argv[1...]) and `extra_env` added to the environment; the
/// child gets `channel` as descriptor 3, `lifeline` (if valid) as descriptor 4 and, where the C library can, no
/// other descriptor above 2.
inline pid_type spawn_self(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                           native_handle channel, native_handle lifeline = invalid_handle) {
    std::string exe = executable_path();
    std::vector<char*> argv;
    argv.push_back(exe.data());
    std::vector<std::string> a = args;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store = extra_env;
    std::vector<char*> envp;
    for (char** e = environ; e && *e; ++e) {
        bool overridden = false;
        for (auto& x : env_store) {
            auto eq = x.find('=');
            if (std::strncmp(*e, x.c_str(), eq + 1) == 0) overridden = true;
        }
        if (!overridden) envp.push_back(*e);
    }
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    native_handle src = channel;
    native_handle tmp = -1;
    if (channel == child_channel_fd) { // dup2(3, 3) would keep CLOEXEC: move it out of the way first
        tmp = ::fcntl(channel, F_DUPFD_CLOEXEC, 10);
        src = tmp;
    }
    posix_spawn_file_actions_adddup2(&fa, src, child_channel_fd);
    native_handle life_tmp = -1;
    if (lifeline != invalid_handle) { // moved above both targets first, so neither dup2 overwrites the other's source
        life_tmp = ::fcntl(lifeline, F_DUPFD_CLOEXEC, 10);
        if (life_tmp < 0) {
            posix_spawn_file_actions_destroy(&fa);
            if (tmp >= 0) ::close(tmp);
            throw_errno("fcntl(F_DUPFD_CLOEXEC) of the lifeline");
        }
        posix_spawn_file_actions_adddup2(&fa, life_tmp, child_lifeline_fd);
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, (lifeline != invalid_handle ? child_lifeline_fd : child_channel_fd) + 1);
#endif
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // The child starts with default signal handling and an empty mask, whatever the parent set.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, exe.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (tmp >= 0) ::close(tmp);
    if (life_tmp >= 0) ::close(life_tmp);
    if (rc != 0) {
        errno = rc;
        throw_errno("posix_spawn of the running executable");
    }
    return pid;
}

/// Flushes C stdio so a forked child does not write the parent's buffered output a second time.
inline void flush_stdio() noexcept { std::fflush(nullptr); }

/// fork(); the child gets 0.
inline pid_type fork_process() {
    flush_stdio();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork");
    return pid;
}

/// fork() that reports failure as -1 and errno instead of throwing (for the fork template).
inline pid_type fork_process_noexcept(int& err) noexcept {
    flush_stdio();
    pid_t pid = ::fork();
    err = pid < 0 ? errno : 0;
    return pid;
}

/// Ends this process at once, without running atexit handlers or static destructors (a forked child's
/// copies belong to the parent).
[[noreturn]] inline void quick_exit_process(int code) noexcept {
    flush_stdio();
    ::_exit(code);
}

// ---- lifetimes: a child dies with the process that started it -------------------------------------------------
// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not its process, and any thread may drive a
// pool. So a direct child of the application holds a lifeline instead: the read end of a pipe whose write end only
// the application holds. When the application ends, however it ends, the kernel closes the write end, and the
// read end, set to signal its owner with SIGKILL (F_SETSIG) on that event, kills the child even while it runs a
// task. Processes forked by a single-threaded fork template or forkserver keep PR_SET_PDEATHSIG: there the forking
// thread lives as long as its process.

namespace detail_lifeline {
/// The write ends this process holds. A process forked from this one (fork() by the application, a fork template)
/// closes them at once (pthread_atfork), so a forked copy never keeps another process's workers alive.
struct registry {
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    std::vector<native_handle> ends;
};
inline registry& ends() noexcept {
    static registry* r = new registry; // never destroyed: a pool in a static may need it during exit
    return *r;
}
extern "C" inline void before_fork() { ::pthread_mutex_lock(&ends().mutex); }
extern "C" inline void after_fork_parent() { ::pthread_mutex_unlock(&ends().mutex); }
extern "C" inline void after_fork_child() {
    auto& r = ends();
    for (auto fd : r.ends) ::close(fd);
    r.ends.clear();
    ::pthread_mutex_unlock(&r.mutex);
}
inline void install_fork_handler() noexcept {
    static const bool installed = (::pthread_atfork(before_fork, after_fork_parent, after_fork_child), true);
    (void)installed;
}
} // namespace detail_lifeline

/// A lifeline for one child: the caller keeps `parent_end` (close it with drop_lifeline once the child is reaped),
/// and passes `child_end` to the child (then closes its own copy of it).
struct lifeline_pair {
    native_handle parent_end = invalid_handle;
    native_handle child_end = invalid_handle;
};

inline lifeline_pair make_lifeline() {
    detail_lifeline::install_fork_handler();
    int p[2];
    auto& r = detail_lifeline::ends();
    ::pthread_mutex_lock(&r.mutex); // so that no fork copies the pipe before its write end is registered
    int rc = ::pipe(p);
    int err = errno;
    if (rc == 0) {
        set_cloexec(p[0]);
        set_cloexec(p[1]);
        try {
            r.ends.push_back(p[1]);
        } catch (...) {
            ::close(p[0]);
            ::close(p[1]);
            rc = -1;
            err = ENOMEM;
        }
    }
    ::pthread_mutex_unlock(&r.mutex);
    if (rc != 0) {
        errno = err;
        throw_errno("pipe (a worker's lifeline)");
    }
    return {p[1], p[0]};
}

/// Closes the parent's end of a lifeline: the child, if it still runs, is killed.
inline void drop_lifeline(native_handle& parent_end) noexcept {
    if (parent_end == invalid_handle) return;
    auto& r = detail_lifeline::ends();
    ::pthread_mutex_lock(&r.mutex);
    std::erase(r.ends, parent_end);
    ::pthread_mutex_unlock(&r.mutex);
    ::close(parent_end);
    parent_end = invalid_handle;
}

/// In a child: dies (SIGKILL) when the lifeline's write end closes. With no lifeline (invalid), falls back to the
/// parent-death signal (for children of a single-threaded template). Reports whether `parent` is still there.
inline bool bind_lifetime_to_parent(pid_type parent, native_handle lifeline = invalid_handle) noexcept {
    if (lifeline == invalid_handle) {
#if defined(__linux__)
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        return static_cast<pid_type>(::getppid()) == parent; // the parent may have died before prctl
    }
    set_cloexec(lifeline); // processes the tasks start do not hold it
#if defined(F_SETSIG)
    if (::fcntl(lifeline, F_SETOWN, ::getpid()) == 0 && ::fcntl(lifeline, F_SETSIG, SIGKILL) == 0)
        ::fcntl(lifeline, F_SETFL, ::fcntl(lifeline, F_GETFL) | O_ASYNC);
#endif
    // Closed before it was armed: the signal will not come, the hangup is already there.
    pollfd p{lifeline, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLIN))) return false;
    return static_cast<pid_type>(::getppid()) == parent;
}

/// The lifeline a spawned child was given (descriptor 4, or none).
inline native_handle adopt_lifeline(const char* token) noexcept {
    if (!token) return invalid_handle;
    auto fd = static_cast<native_handle>(std::atoi(token));
    return fd == child_lifeline_fd && ::fcntl(fd, F_GETFD) >= 0 ? fd : invalid_handle;
}

/// What the child finds its lifeline as (argv): descriptor 4, or -1 for none.
inline std::string child_lifeline_token(native_handle lifeline) {
    return lifeline == invalid_handle ? "-1" : std::to_string(child_lifeline_fd);
}

/// procpool's processes ignore the terminal's signals (Ctrl-C's SIGINT, Ctrl-\'s SIGQUIT, a closed terminal's
/// SIGHUP): those are for the application, which decides whether to end; if it ends, its lifelines end them.
inline void ignore_terminal_signals() noexcept {
    for (int sig : {SIGINT, SIGQUIT, SIGHUP}) ::signal(sig, SIG_IGN);
}

/// A descriptor that becomes readable when process `pid` ends (Linux pidfd), or invalid_handle where the system has
/// none. Call it before the process can have been reaped, so that `pid` cannot name another process.
inline native_handle open_process_handle([[maybe_unused]] pid_type pid) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_open)
    auto fd = static_cast<native_handle>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
    if (fd < 0) return invalid_handle;
    set_cloexec(fd);
    return fd;
#else
    return invalid_handle;
#endif
}

inline pid_type parent_pid() noexcept { return static_cast<pid_type>(::getppid()); }

/// Sends `count` descriptors (at most 4) and a small payload over a Unix socket (SCM_RIGHTS).
inline bool send_handles(native_handle sock, const native_handle* fds, std::size_t count, const void* data,
                         std::size_t n) noexcept {
    iovec iov{const_cast<void*>(data), n};
    alignas(cmsghdr) char ctl[CMSG_SPACE(4 * sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (count > 4) return false;
    if (count > 0) {
        msg.msg_control = ctl;
        msg.msg_controllen = CMSG_SPACE(count * sizeof(int));
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(count * sizeof(int));
        std::memcpy(CMSG_DATA(c), fds, count * sizeof(int));
    }
    for (;;) {
        auto r = ::sendmsg(sock, &msg, send_flags);
        if (r == static_cast<ssize_t>(n)) return true;
        if (r < 0 && errno == EINTR) continue;
        return false;
    }
}

/// Sends one descriptor and a small payload over a Unix socket (SCM_RIGHTS).
inline bool send_handle(native_handle sock, native_handle fd, const void* data, std::size_t n) noexcept {
    return send_handles(sock, &fd, 1, data, n);
}

/// Receives exactly `n` payload bytes and the descriptors that came with them (up to `max`, at most 4; the others
/// are -1). Blocking. `dropped`: set to EMFILE when the system dropped descriptors (this process has too many
/// open), else 0.
inline bool recv_handles(native_handle sock, native_handle* fds, std::size_t max, void* data, std::size_t n,
                         int* dropped = nullptr) noexcept {
    for (std::size_t i = 0; i < max; ++i) fds[i] = -1;
    if (dropped) *dropped = 0;
    iovec iov{data, n};
    alignas(cmsghdr) char ctl[CMSG_SPACE(4 * sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t r;
    do r = ::recvmsg(sock, &msg, 0
#if defined(MSG_CMSG_CLOEXEC)
                                     | MSG_CMSG_CLOEXEC
#endif
         );
    while (r < 0 && errno == EINTR);
    if (r <= 0) return false;
    // The kernel drops descriptors it cannot install (EMFILE) and says so with MSG_CTRUNC.
    if ((msg.msg_flags & MSG_CTRUNC) && dropped) *dropped = EMFILE;
    std::size_t got = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const auto k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < k; ++i) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (got < max) {
                fds[got++] = fd;
                set_cloexec(fd);
            } else {
                ::close(fd); // more than asked for: not ours to keep
            }
        }
    }
    if (static_cast<std::size_t>(r) < n) return read_all(sock, static_cast<char*>(data) + r, n - static_cast<std::size_t>(r));
    return true;
}

/// Receives exactly `n` payload bytes and, when one came with them, a descriptor (else -1). Blocking.
inline bool recv_handle(native_handle sock, native_handle& fd, void* data, std::size_t n) noexcept {
    return recv_handles(sock, &fd, 1, data, n);
}

// ---- shared memory for the result ring (Linux: memfd, a double mapping, futex) --------------------------------
#if defined(__linux__)
inline constexpr bool has_result_ring = true;
#else
inline constexpr bool has_result_ring = false;
#endif

/// Bytes of the ring's control page, mapped before its data.
inline constexpr std::size_t ring_control_bytes = 4096;

/// Anonymous shared memory of ring_control_bytes + `bytes`, as a descriptor; invalid_handle where unsupported.
inline native_handle create_ring_memory([[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__)
    // Sealed at its size: a worker that reopens it (/proc/<pid>/map_files) cannot shrink it under the parent's
    // mapping, which would kill the parent with SIGBUS.
    int fd = static_cast<int>(::syscall(SYS_memfd_create, "procpool-results", 1u /* MFD_CLOEXEC */ | 2u /* MFD_ALLOW_SEALING */));
    if (fd < 0) return invalid_handle;
    constexpr int seals = 0x0002 /* F_SEAL_SHRINK */ | 0x0004 /* F_SEAL_GROW */ | 0x0001 /* F_SEAL_SEAL */;
    if (::ftruncate(fd, static_cast<off_t>(ring_control_bytes + bytes)) != 0 ||
        ::fcntl(fd, 1033 /* F_ADD_SEALS */, seals) != 0) {
        ::close(fd);
        return invalid_handle;
    }
    return fd;
#else
    return invalid_handle;
#endif
}

/// Maps the memory of create_ring_memory: the control page, then the data twice in a row, so that a record
/// that wraps around the end reads and writes as one span. Null if `fd` is not such memory of that size.
inline void* map_ring([[maybe_unused]] native_handle fd, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__)
    struct stat st{};
    if (bytes == 0 || bytes % 4096 || ::fstat(fd, &st) != 0 ||
        static_cast<std::size_t>(st.st_size) != ring_control_bytes + bytes)
        return nullptr;
    const std::size_t whole = ring_control_bytes + 2 * bytes;
    void* base = ::mmap(nullptr, whole, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return nullptr;
    auto* b = static_cast<char*>(base);
    if (::mmap(b, ring_control_bytes + bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED ||
        ::mmap(b + ring_control_bytes + bytes, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
               static_cast<off_t>(ring_control_bytes)) == MAP_FAILED) {
        ::munmap(base, whole);
        return nullptr;
    }
    // Not inherited by fork: a fork template (or a process a task forks) has no business with this worker's ring.
    ::madvise(base, whole, MADV_DONTFORK);
    return base;
#else
    return nullptr;
#endif
}

inline void unmap_ring([[maybe_unused]] void* base, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__)
    if (base) ::munmap(base, ring_control_bytes + 2 * bytes);
#endif
}

/// Blocks while `word` (in memory shared between processes) holds `expected`, for at most timeout_ms.
inline void wait_on_shared([[maybe_unused]] std::atomic<std::uint32_t>& word, [[maybe_unused]] std::uint32_t expected,
                           [[maybe_unused]] int timeout_ms) noexcept {
#if defined(__linux__)
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    timespec ts{timeout_ms / 1000, static_cast<long>(timeout_ms % 1000) * 1000000L};
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, &ts, nullptr, 0);
#endif
}

/// Wakes the waiters of wait_on_shared on `word`.
inline void wake_shared([[maybe_unused]] std::atomic<std::uint32_t>& word) noexcept {
#if defined(__linux__)
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
#endif
}

/// Whether the other end of a socket has closed it.
inline bool peer_closed(native_handle fd) noexcept {
#if defined(POLLRDHUP)
    pollfd p{fd, POLLRDHUP, 0};
#else
    pollfd p{fd, 0, 0};
#endif
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR
#if defined(POLLRDHUP)
                                                 | POLLRDHUP
#endif
                                                 ));
}

/// Resident memory of a process in bytes, or 0 where it cannot be read.
inline std::size_t resident_bytes(pid_type pid) noexcept {
#if defined(__linux__)
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/statm", pid);
    FILE* f = std::fopen(path, "r");
    if (!f) return 0;
    unsigned long size = 0, rss = 0;
    int n = std::fscanf(f, "%lu %lu", &size, &rss);
    std::fclose(f);
    return n == 2 ? rss * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
#else
    (void)pid;
    return 0;
#endif
}

/// Loads a shared library (dlopen, symbols resolved now, kept local). Returns null and sets `err` on failure.
inline void* load_library(const std::string& path, std::string& err) noexcept {
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char* e = ::dlerror();
        err = e ? e : "dlopen failed";
    }
    return h;
}

/// Address of an exported symbol of a loaded library, or null.
inline void* find_symbol(void* library, const char* name) noexcept { return ::dlsym(library, name); }

inline const char* get_env(const char* name) noexcept { return std::getenv(name); }
inline void unset_env(const char* name) noexcept { ::unsetenv(name); }

/// Milliseconds on a monotonic clock.
inline std::int64_t now_ms() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_HPP
