// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/zygote.hpp: what per-task isolation and resource limits need of the OS: a word of memory
// shared with the task processes a worker forks, forking and waiting for one such process, setrlimit, and telling a
// full descriptor table.
#ifndef PROCPOOL_PLATFORM_POSIX_ZYGOTE_HPP
#define PROCPOOL_PLATFORM_POSIX_ZYGOTE_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/errors.hpp>
#include <procpool/platform/posix/process.hpp>
#include <procpool/platform/posix/shm.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// A word in memory shared with every process this one forks from now on (an anonymous shared mapping, never
/// unmapped: it lives as long as the worker). \throws std::system_error.
inline std::atomic<std::uint64_t>* shared_word() {
    void* p = ::mmap(nullptr, sizeof(std::atomic<std::uint64_t>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap");
    return new (p) std::atomic<std::uint64_t>(0);
}

/// Makes the result ring mapped at `base` (map_ring, `bytes` of data) inherited by fork after all: the task
/// processes a worker forks under isolation_mode::per_task answer through it.
inline void inherit_ring([[maybe_unused]] void* base, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__)
    if (base) ::madvise(base, ring_control_bytes + 2 * bytes, MADV_DOFORK);
#endif
}

/// Waits for child `pid` to end (blocking, through signals) and returns how it ended.
inline exit_status wait_child(pid_type pid) noexcept {
    int status = 0;
    pid_t r;
    do r = ::waitpid(static_cast<pid_t>(pid), &status, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) return exit_status{};
    if (WIFSIGNALED(status)) return exit_status{-1, WTERMSIG(status)};
    return exit_status{WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0};
}

/// The limits a worker applies to itself (0: not limited). See procpool::resource_limits.
struct process_limits {
    std::uint64_t address_space = 0; ///< bytes (RLIMIT_AS)
    std::uint64_t cpu_seconds = 0;   ///< seconds (RLIMIT_CPU)
    std::uint64_t open_files = 0;    ///< descriptors (RLIMIT_NOFILE)
    bool no_core_dumps = false;      ///< RLIMIT_CORE = 0
};

/// Whether this platform can apply process_limits.
inline constexpr bool has_process_limits = true;

/// How messages name the limits here (limit_exceeded::resource() is "RLIMIT_AS", "RLIMIT_CPU").
inline constexpr const char* memory_limit_name = "address space limit (RLIMIT_AS)";
inline constexpr const char* cpu_limit_name = "CPU time limit (RLIMIT_CPU)";

/// Applies `l` to this process with setrlimit. Returns "" or what failed ("RLIMIT_CPU: Invalid argument").
inline std::string apply_limits(const process_limits& l) noexcept {
    auto set = [](int resource, const char* name, rlim_t soft, rlim_t hard) -> std::string {
        rlimit cur{};
        if (::getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && hard > cur.rlim_max)
            hard = cur.rlim_max; // a limit cannot be raised above the hard one the worker inherited
        if (soft > hard) soft = hard;
        rlimit r{soft, hard};
        if (::setrlimit(resource, &r) == 0) return {};
        return std::string(name) + ": " + std::string(::strerror(errno));
    };
    std::string err;
    if (l.address_space) err += set(RLIMIT_AS, "RLIMIT_AS", l.address_space, l.address_space);
    // SIGXCPU at the soft limit; the hard limit one second later ends a process that ignores it.
    if (l.cpu_seconds && err.empty()) err += set(RLIMIT_CPU, "RLIMIT_CPU", l.cpu_seconds, l.cpu_seconds + 1);
    if (l.open_files && err.empty()) err += set(RLIMIT_NOFILE, "RLIMIT_NOFILE", l.open_files, l.open_files);
    if (l.no_core_dumps && err.empty()) err += set(RLIMIT_CORE, "RLIMIT_CORE", 0, 0);
    return err;
}

/// Whether an exit status is the CPU time limit's (the kernel sends SIGXCPU at the soft limit, SIGKILL at the hard).
inline bool cpu_limit_signal(const exit_status& st) noexcept { return st.signal == SIGXCPU; }

/// Whether this process has no free descriptor left (its RLIMIT_NOFILE is reached): a probe that keeps none.
inline bool descriptor_table_full() noexcept {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ::close(fd);
        return false;
    }
    return errno == EMFILE;
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_ZYGOTE_HPP
