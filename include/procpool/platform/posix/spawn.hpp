// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/spawn.hpp: starting a worker as a fresh copy of the running executable (posix_spawn),
// which finds its channel on descriptor 3 and its lifeline on descriptor 4; and the executable's identity.
#ifndef PROCPOOL_PLATFORM_POSIX_SPAWN_HPP
#define PROCPOOL_PLATFORM_POSIX_SPAWN_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/channel.hpp>
#include <procpool/platform/posix/errors.hpp>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <mach-o/dyld.h>
#endif

extern char** environ; // spawn_self passes it on, with the additions

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

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
    native_handle tmp = invalid_handle;
    if (channel == child_channel_fd) { // dup2(3, 3) would keep CLOEXEC: move it out of the way first
        tmp = ::fcntl(channel, F_DUPFD_CLOEXEC, 10);
        src = tmp;
    }
    posix_spawn_file_actions_adddup2(&fa, src, child_channel_fd);
    native_handle life_tmp = invalid_handle;
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

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_SPAWN_HPP
