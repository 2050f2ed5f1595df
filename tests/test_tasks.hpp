// SPDX-License-Identifier: BSL-1.0
// tests/test_tasks.hpp: helpers shared by the pool tests (no tasks: PROCPOOL_TASK appears once per task, in the
// *_test.cpp that uses it, because the build globs only *_test.cpp).
//
// Synchronisation with a task never uses sleeps: a task that must block waits on a gate, a named FIFO whose
// write end the test holds. The test releases it by writing one byte per waiting task.
#ifndef PROCPOOL_TESTS_TEST_TASKS_HPP
#define PROCPOOL_TESTS_TEST_TASKS_HPP

#include "catch.hpp"

#include <procpool/procpool.hpp>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

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
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/procpool-test-XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
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

/// Appends one line to a file with a single O_APPEND write (atomic between processes for short lines).
inline void append_line(const std::string& path, const std::string& line) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot open " + path);
    std::string s = line + "\n";
    auto n = ::write(fd, s.data(), s.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(s.size())) throw std::runtime_error("short write to " + path);
}

inline std::vector<std::string> read_lines(const std::string& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

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
    std::set<long> mine{static_cast<long>(::getpid())};
    for (bool grew = true; grew;) {
        grew = false;
        for (auto [pid, ppid] : procs)
            if (mine.count(ppid) && mine.insert(pid).second) grew = true;
    }
    mine.erase(static_cast<long>(::getpid()));
    return {mine.begin(), mine.end()};
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

/// Sets an environment variable for one scope, restoring the previous state after.
class env_guard {
public:
    env_guard(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = std::string(old);
        ::setenv(name, value, 1);
    }
    ~env_guard() {
        if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
        else ::unsetenv(name_.c_str());
    }
    env_guard(const env_guard&) = delete;
    env_guard& operator=(const env_guard&) = delete;

private:
    std::string name_;
    std::optional<std::string> old_;
};

} // namespace ppt

#endif // PROCPOOL_TESTS_TEST_TASKS_HPP
