// SPDX-License-Identifier: BSL-1.0
// tests/lifetime_test.cpp: a pool used the way applications use one: driven by threads that come and go, in a
// process that fork()s, gets the terminal's signals, runs under process and descriptor limits, with callbacks that
// throw, and workers that die while nothing drives the pool (issue 12). Each case failed before its fix.
//
// Cases that change process-wide state (process group, signal handlers, user id, resource limits) run in a forked
// child of the test process, which reports through its exit status and a pipe.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if PROCPOOL_POSIX
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#endif

namespace life_t {

using procpool::start_method;
using namespace std::chrono_literals;

long my_pid() { return static_cast<long>(procpool::platform::current_pid()); }

int twice(int x) { return 2 * x; }

long sum_ints(procpool::shared_array<const int> a) {
    long s = 0;
    for (int v : a) s += v;
    return s;
}

/// Ends its worker (without a signal: a fork worker would run the test framework's inherited handlers).
[[noreturn]] void die_now() { std::_Exit(9); }

#if PROCPOOL_POSIX
/// Forks a child that waits on `gate` (holding every descriptor the worker had, its channel among them), then dies.
int fork_then_die(std::string gate) {
    std::fflush(nullptr);
    pid_t child = ::fork();
    if (child == 0) {
        ppt::wait_on_gate(gate);
        ::_exit(0);
    }
    ::_exit(child > 0 ? 7 : 8);
}

/// Tries to shrink this worker's result ring under the parent's mapping: the errno of the attempt (0: it worked),
/// or -1 when there is no ring or its memory cannot be reopened here (map_files needs privileges).
int truncate_ring() {
#if defined(__linux__)
    std::FILE* maps = std::fopen("/proc/self/maps", "r");
    if (!maps) return -1;
    char line[512];
    std::string range;
    while (std::fgets(line, sizeof line, maps))
        if (std::strstr(line, "procpool-results")) {
            range.assign(line, std::strcspn(line, " "));
            break;
        }
    std::fclose(maps);
    if (range.empty()) return -1;
    int fd = ::open(("/proc/self/map_files/" + range).c_str(), O_RDWR);
    if (fd < 0) return -1;
    int err = ::ftruncate(fd, 0) == 0 ? 0 : errno;
    ::close(fd);
    return err;
#else
    return -1;
#endif
}

#if defined(__linux__)
/// The address ranges mapped in this process (/proc/self/maps).
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> mapped_ranges() {
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> out;
    std::FILE* maps = std::fopen("/proc/self/maps", "r");
    if (!maps) return out;
    char line[512];
    while (std::fgets(line, sizeof line, maps)) {
        unsigned long long a = 0, b = 0;
        if (std::sscanf(line, "%llx-%llx", &a, &b) == 2)
            out.emplace_back(static_cast<std::uintptr_t>(a), static_cast<std::uintptr_t>(b));
    }
    std::fclose(maps);
    return out;
}

/// In a forked child: maps fresh memory, filled with a pattern, over every range `before` (the parent's) had and
/// this process lacks, the ranges fork did not copy. Returns them, to check after.
std::vector<std::pair<char*, std::size_t>> fill_holes(const std::vector<std::pair<std::uintptr_t, std::uintptr_t>>& before) {
    auto now = mapped_ranges();
    std::vector<std::pair<char*, std::size_t>> filled;
    for (auto [a, b] : before) {
        bool overlaps = false;
        for (auto [c, d] : now) overlaps |= c < b && a < d;
        if (overlaps) continue;
        const auto n = static_cast<std::size_t>(b - a);
        void* p = ::mmap(reinterpret_cast<void*>(a), n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
#ifdef MAP_FIXED_NOREPLACE
                             | MAP_FIXED_NOREPLACE
#endif
                         , -1, 0);
        if (p == MAP_FAILED) continue;
        if (p != reinterpret_cast<void*>(a)) { // an old kernel took the address as a hint only
            ::munmap(p, n);
            continue;
        }
        std::memset(p, 0x5a, n);
        filled.emplace_back(static_cast<char*>(p), n);
    }
    return filled;
}
#endif

/// Runs `body` in a forked child of the test process: the child's exit code is body's result (0: passed); what it
/// writes to the given descriptor is the failure's description.
struct child_result {
    int code = -1;
    std::string text;
};
child_result run_in_child(const std::function<int(int out)>& body) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(p[0]);
        int code = 99;
        try {
            code = body(p[1]);
        } catch (const std::exception& e) {
            std::string m = std::string("uncaught: ") + e.what();
            [[maybe_unused]] auto n = ::write(p[1], m.data(), m.size());
        }
        std::fflush(nullptr);
        ::_exit(code); // no Catch2 state, no static destructors of the test process
    }
    ::close(p[1]);
    child_result r;
    char buf[512];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        r.text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(p[0]);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

/// In a child: writes `m` for the parent and returns 1.
int fail(int out, const std::string& m) {
    [[maybe_unused]] auto n = ::write(out, m.data(), m.size());
    return 1;
}

/// Waits until process `pid` has ended (a zombie or gone), polling /proc with a bound.
bool wait_until_dead(long pid) {
    for (int i = 0; i < 20000; ++i) { // polling a condition, 10 s at most
        char s = ppt::process_state(pid);
        if (s == 0 || s == 'Z') return true;
        ::usleep(500);
    }
    return false;
}
#endif

/// Appends a row to the "lifetime" table of docs/reliability.md when $PROCPOOL_RELIABILITY_REPORT names a file
/// (tests/soak/reliability_report.sh): what was done, under which start method, what must happen, what did.
void record(const std::string& scenario, const char* method, const std::string& expected, const std::string& observed) {
    const char* path = std::getenv("PROCPOOL_RELIABILITY_REPORT");
    if (!path || !*path) return;
    ppt::append_line(path, "lifetime\t| scenario | start | expected | observed |\t| " + scenario + " | " + method +
                               " | " + expected + " | " + observed + " |");
}

procpool::pool_options opts(start_method m, std::size_t workers = 2) {
    procpool::pool_options o;
    o.workers = workers;
    o.start = m;
    // The fork template is taken from a process that may have threads here (a sanitizer's, a test's): these tests
    // are about what follows, not about the refusal (tested in start_method_test.cpp).
    o.on_threads = procpool::threaded_fork::warn;
    return o;
}

} // namespace life_t

PROCPOOL_TASK(life_t::my_pid);
PROCPOOL_TASK(life_t::twice);
PROCPOOL_TASK(life_t::sum_ints);
PROCPOOL_TASK(life_t::die_now);
#if PROCPOOL_POSIX
PROCPOOL_TASK(life_t::fork_then_die);
PROCPOOL_TASK(life_t::truncate_ring);
#endif

using namespace life_t;

#if PROCPOOL_POSIX
TEST_CASE("a pool constructed in a thread that then exits keeps its workers", "[lifetime][threads][posix]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    std::unique_ptr<procpool::pool> pool;
    auto o = opts(method); // (on_threads = warn: a fork pool constructed in a second thread, knowingly)
    std::thread([&] { pool = std::make_unique<procpool::pool>(o); }).join();
    auto pids = pool->worker_pids();
    REQUIRE(pids.size() == 2);
    // The thread that started the workers (or their template) is gone: they must still be there, and serve.
    for (auto pid : pids) CHECK(ppt::process_state(pid) != 0);
    for (int i = 0; i < 20; ++i) CHECK(pool->submit<twice>(i).get() == 2 * i);
    auto after = pool->worker_pids();
    std::sort(pids.begin(), pids.end());
    std::sort(after.begin(), after.end());
    CHECK(after == pids); // no worker died and was replaced
    record("pool constructed in a std::thread that then exits", ppt::name(method), "20 tasks run by the same 2 workers",
           std::to_string(after == pids ? 2 : 0) + " of the 2 workers still serving");
}

TEST_CASE("a recycling pool driven by short-lived threads keeps the workers they started",
          "[lifetime][threads][posix]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    auto o = opts(method);
    o.max_tasks_per_worker = 1; // every task's worker is replaced, by whichever thread drives the pool then
    std::atomic<int> lost{0};
    o.on_worker_lost = [&](const procpool::worker_lost&) { ++lost; };
    procpool::pool pool(o);
    std::vector<std::string> errors;
    for (int i = 0; i < 12; ++i) {
        std::string err;
        std::thread([&] {
            try {
                if (pool.submit<twice>(i).get() != 2 * i) err = "wrong result";
            } catch (const std::exception& e) {
                err = e.what();
            }
        }).join();
        if (!err.empty()) errors.push_back(err);
    }
    INFO((errors.empty() ? std::string() : errors.front()));
    CHECK(errors.empty());
    CHECK(lost == 0);
    pool.shutdown();
    CHECK(lost == 0);
    record("recycling pool (1 task per worker) driven by 12 short-lived threads", ppt::name(method),
           "12 results, no worker lost", std::to_string(12 - errors.size()) + " results, " + std::to_string(lost.load()) +
                                             " workers lost");
}

TEST_CASE("a forked copy of the application that destroys its pool leaves the parent's workers alone",
          "[lifetime][fork][posix]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    auto pool = std::make_unique<procpool::pool>(opts(method));
    auto pids = pool->worker_pids();
    REQUIRE(pool->submit<twice>(1).get() == 2);
    auto shared = std::make_optional(procpool::shared_array<int>::create(4096)); // mapped, and not inherited by fork
    REQUIRE(pool->submit<sum_ints>(*shared).get() == 0);
#if defined(__linux__)
    const auto before = mapped_ranges();
#endif
    // The child destroys its copy of the pool, as a pool in a static is destroyed when the child calls exit().
    // The memory the pool mapped for itself (result rings, shared arrays) is not inherited: the child first maps
    // memory of its own where it was, which the pool's destruction must leave alone (it was torn out, and the
    // child crashed in whatever it had put there).
    auto r = run_in_child([&](int out) {
#if defined(__linux__)
        auto filled = fill_holes(before);
        if (filled.empty()) return 3; // nothing the parent mapped is missing here
#endif
        pool.reset();
        shared.reset();
#if defined(__linux__)
        for (auto [p, n] : filled)
            for (std::size_t i = 0; i < n; i += 4096)
                if (p[i] != 0x5a) {
                    std::string m = "memory the child mapped was changed";
                    [[maybe_unused]] auto w = ::write(out, m.data(), m.size());
                    return 4;
                }
#else
        (void)out;
#endif
        return 0;
    });
    INFO(r.text);
    CHECK(r.code == 0);
    for (auto pid : pids) CHECK(ppt::process_state(pid) != 'Z');
    for (auto pid : pids) CHECK(ppt::process_state(pid) != 0);
    for (int i = 0; i < 10; ++i) CHECK(pool->submit<twice>(i).get() == 2 * i);
    auto after = pool->worker_pids();
    std::sort(pids.begin(), pids.end());
    std::sort(after.begin(), after.end());
    CHECK(after == pids);
    record("fork() of the application; the child destroys its copy of the pool", ppt::name(method),
           "child exits 0; parent's workers untouched",
           "child exit code " + std::to_string(r.code) + "; " + (after == pids ? "same workers" : "workers replaced"));
}

TEST_CASE("a task that forks and dies: its worker's death is seen while the grandchild holds the channel",
          "[lifetime][crash][posix]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool pool(opts(method, 1));
    ppt::gate gate;
    auto f = pool.submit<fork_then_die>(gate.path());
    // The grandchild waits on the gate, holding the channel, until this test releases it after the check.
    const bool seen = f.wait_for(20s) == std::future_status::ready; // a bound against a hang, not a timing
    gate.release(1);
    REQUIRE(seen);
    std::string observed;
    try {
        f.get();
        FAIL("the task's worker died; get() must throw");
    } catch (const procpool::worker_died& e) {
        CHECK_THAT(e.what(), ppt::has_substring("exited with code 7"));
        observed = "worker_died (exited with code 7) before the grandchild ended";
    }
    CHECK(pool.submit<twice>(4).get() == 8);
    record("a task forks a child that holds the channel, then its worker exits", ppt::name(method),
           "worker_died for that task at once", observed);
}

TEST_CASE("the forkserver, the fork template and the workers survive terminal signals the application handles",
          "[lifetime][signals][posix]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    auto r = run_in_child([&](int out) {
        ::setpgid(0, 0); // a process group of its own, as a terminal's foreground job
        static volatile std::sig_atomic_t interrupted = 0;
        struct sigaction sa{};
        sa.sa_handler = [](int) { interrupted = 1; };
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGINT, &sa, nullptr); // the application handles Ctrl-C
        ::signal(SIGHUP, SIG_IGN);         // and runs under nohup
        auto o = opts(method, 2);
        o.max_tasks_per_worker = 1; // later tasks need new workers: from the forkserver / template for those
        procpool::pool pool(o);
        if (pool.submit<twice>(1).get() != 2) return fail(out, "first task");
        ::kill(0, SIGINT); // Ctrl-C: to every process of the group
        ::kill(0, SIGHUP); // the terminal closed
        if (!interrupted) return fail(out, "the application's SIGINT handler did not run");
        for (int i = 0; i < 8; ++i) {
            try {
                if (pool.submit<twice>(i).get() != 2 * i) return fail(out, "wrong result");
            } catch (const std::exception& e) {
                return fail(out, std::string("after the signals: ") + e.what());
            }
        }
        pool.shutdown();
        return 0;
    });
    INFO(r.text);
    CHECK(r.code == 0);
    record("SIGINT and SIGHUP to the process group of an application that handles / ignores them",
           ppt::name(method), "9 tasks in new workers afterwards", r.code == 0 ? "all ran" : r.text);
}

TEST_CASE("workers killed while the pool was idle: the tasks submitted next run in their replacements",
          "[lifetime][crash][posix]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    std::vector<std::string> lost;
    auto o = opts(method);
    o.on_worker_lost = [&](const procpool::worker_lost& l) { lost.push_back(l.reason); };
    procpool::pool pool(o);
    REQUIRE(pool.submit<twice>(0).get() == 0);
    auto pids = pool.worker_pids();
    REQUIRE(pids.size() == 2);
    for (auto pid : pids) ::kill(static_cast<pid_t>(pid), SIGKILL);
    for (auto pid : pids) REQUIRE(wait_until_dead(pid)); // dead before anything drives the pool again
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 200; ++i) fs.push_back(pool.submit<twice>(i));
    int ok = 0;
    std::string first_error;
    for (int i = 0; i < 200; ++i) {
        try {
            ok += fs[static_cast<std::size_t>(i)].get() == 2 * i;
        } catch (const std::exception& e) {
            if (first_error.empty()) first_error = e.what();
        }
    }
    INFO(first_error);
    CHECK(ok == 200);
    for (const auto& l : lost) CHECK_THAT(l, !ppt::has_substring("while running task"));
    record("both workers SIGKILLed while the pool was idle, then 200 submits", ppt::name(method), "200 results",
           std::to_string(ok) + " results");
}

#if defined(__linux__)
TEST_CASE("a worker cannot resize its result ring under the pool (sealed memory)", "[lifetime][ring][posix]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool pool(opts(method, 1));
    int err = pool.submit<truncate_ring>().get();
    if (err == -1) {
        WARN("the ring's memory cannot be reopened by this user (/proc/self/map_files needs privileges): nothing to test");
        return;
    }
    CHECK(err == EPERM); // the seal refuses it; before, the parent died of SIGBUS reading the ring
    for (int i = 0; i < 50; ++i) CHECK(pool.submit<twice>(i).get() == 2 * i);
    record("a task ftruncate()s its worker's result ring to 0", ppt::name(method), "refused (EPERM); pool unharmed",
           err == EPERM ? "refused (EPERM); 50 more results" : "ftruncate returned errno " + std::to_string(err));
}

namespace life_t {
/// Processes (threads count too, as RLIMIT_NPROC counts them) of user `uid`.
int tasks_of_user(uid_t uid) {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        struct stat st{};
        if (::stat(e.path().c_str(), &st) != 0 || st.st_uid != uid) continue;
        std::error_code ec;
        for (auto it = std::filesystem::directory_iterator(e.path() / "task", ec);
             !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
            ++n;
    }
    return n;
}

/// Whether this test process can limit a user's processes: it must be root, to switch to an unprivileged user.
bool can_limit_processes() {
    if (::getuid() == 0) return true;
    WARN("needs root to switch to an unprivileged user whose processes can be limited");
    return false;
}

/// In a child: becomes an unprivileged user (root ignores RLIMIT_NPROC) and limits it to `extra` more processes.
bool limit_processes(int extra) {
    const uid_t nobody = 65534;
    if (::getuid() == 0) {
        if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) return false;
        ::prctl(PR_SET_DUMPABLE, 1); // /proc/self stays readable after the change of user
    }
    rlimit rl{};
    rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(tasks_of_user(::getuid()) + extra);
    return ::setrlimit(RLIMIT_NPROC, &rl) == 0;
}
} // namespace life_t

TEST_CASE("recycling under a process limit: the retired worker is reaped before its replacement starts",
          "[lifetime][limits][posix]") {
    if (!can_limit_processes()) return;
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    auto r = run_in_child([&](int out) {
        // Exactly the pool's processes: its workers, and the template or forkserver they are forked from.
        if (!limit_processes(2 + (method == start_method::spawn ? 0 : 1))) return fail(out, "cannot set the limit");
        auto o = opts(method, 2);
        o.max_tasks_per_worker = 1;
        procpool::pool pool(o);
        for (int i = 0; i < 20; ++i) {
            try {
                if (pool.submit<twice>(i).get() != 2 * i) return fail(out, "wrong result");
            } catch (const std::exception& e) {
                return fail(out, "task " + std::to_string(i) + ": " + e.what());
            }
        }
        pool.shutdown();
        return 0;
    });
    INFO(r.text);
    CHECK(r.code == 0);
    record("RLIMIT_NPROC = the pool's processes exactly; every worker recycled after 1 task", ppt::name(method),
           "20 results", r.code == 0 ? "20 results" : r.text);
}

TEST_CASE("a process limit at construction: start_error naming the system's refusal", "[lifetime][limits][posix]") {
    if (!can_limit_processes()) return;
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    auto r = run_in_child([&](int out) {
        if (!limit_processes(0)) return fail(out, "cannot set the limit");
        try {
            procpool::pool pool(opts(method, 2));
            return fail(out, "the pool was constructed with no process to spare");
        } catch (const procpool::start_error& e) {
            if (!std::strstr(e.what(), "Resource temporarily unavailable")) return fail(out, e.what());
            return 0;
        } catch (const std::exception& e) {
            return fail(out, std::string("not a start_error: ") + e.what());
        }
    });
    INFO(r.text);
    CHECK(r.code == 0);
    record("RLIMIT_NPROC leaves no process for the pool", ppt::name(method), "start_error naming EAGAIN",
           r.code == 0 ? "start_error naming EAGAIN" : r.text);
}

TEST_CASE("a descriptor limit at construction: start_error with the real errno, never 'errno 0'",
          "[lifetime][limits][posix]") {
    if (PPT_ASAN) {
        // Starved of descriptors, the sanitizers' own runtime fails (UBSan reports bogus vptr errors and exits 1),
        // whatever the library does: the gcc and clang stages run this case.
        WARN("not run under the sanitizers: their runtime needs descriptors of its own");
        return;
    }
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    int failures = 0, successes = 0;
    for (int extra = 0; extra <= 24; ++extra) {
        auto r = run_in_child([&](int out) {
            int highest = 0;
            for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
                highest = std::max(highest, std::stoi(e.path().filename().string()));
            // Descriptors take the lowest free numbers: fill the gaps below the highest, so that exactly `extra`
            // more can be opened.
            for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
                if (fd >= highest) {
                    ::close(fd);
                    break;
                }
            rlimit rl{};
            ::getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = static_cast<rlim_t>(highest + 1 + extra);
            if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return fail(out, "cannot set the limit");
            try {
                procpool::pool pool(opts(method, 2));
                if (pool.submit<twice>(3).get() != 6) return fail(out, "wrong result");
                return 0;
            } catch (const procpool::start_error& e) {
                return fail(out, e.what()) + 1; // 2: refused as it should be; the text is checked below
            } catch (const std::exception& e) {
                return fail(out, std::string("not a start_error: ") + e.what());
            }
        });
        INFO("descriptors to spare: " << extra << ", exit code " << r.code << ": " << r.text);
        CHECK((r.code == 0 || r.code == 2));
        if (r.code == 2) {
            ++failures;
            CHECK_THAT(r.text, ppt::has_substring("Too many open files"));
            CHECK_THAT(r.text, !ppt::has_substring("errno 0"));
        } else if (r.code == 0) {
            ++successes;
        }
    }
    CHECK(failures > 0);
    CHECK(successes > 0);
    record("RLIMIT_NOFILE 0 to 24 descriptors above those open", ppt::name(method),
           "start_error naming EMFILE, or a working pool",
           std::to_string(failures) + " start_error (EMFILE), " + std::to_string(successes) + " working pools");
}
#endif // __linux__
#endif // PROCPOOL_POSIX

TEST_CASE("an exception from on_worker_lost reaches no future: each keeps its outcome, the pool keeps it",
          "[lifetime][on_worker_lost]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    auto o = opts(method, 1);
    int calls = 0;
    o.on_worker_lost = [&](const procpool::worker_lost&) {
        ++calls;
        throw std::runtime_error("callback boom");
    };
    procpool::pool pool(o);
    auto crash = pool.submit<die_now>();
    auto healthy = pool.submit<twice>(21); // runs in the replacement; its get() drives past the report
    CHECK(healthy.get() == 42);
    CHECK_THROWS_AS(crash.get(), procpool::worker_died);
    CHECK_NOTHROW(pool.shutdown());
    CHECK(calls == 1);
    auto errors = pool.take_callback_errors();
    REQUIRE(errors.size() == 1);
    CHECK_THROWS_WITH(std::rethrow_exception(errors.front()), "callback boom");
    CHECK(pool.take_callback_errors().empty());
    record("on_worker_lost throws", ppt::name(method), "each future its own outcome; error kept by the pool",
           "healthy task's value, crashed task's worker_died, 1 kept error");
}

TEST_CASE("in_process: threads submit while another shuts down, and each submit has a result or pool_closed",
          "[lifetime][threads]") {
    procpool::pool pool(opts(start_method::in_process));
    std::atomic<int> results{0}, closed{0}, other{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                try {
                    if (pool.submit<twice>(t * 1000 + i).get() == 2 * (t * 1000 + i)) ++results;
                    else ++other;
                } catch (const procpool::pool_closed&) {
                    ++closed;
                } catch (...) {
                    ++other;
                }
            }
        });
    threads.emplace_back([&] { pool.shutdown(); });
    for (auto& t : threads) t.join();
    CHECK(other == 0);
    CHECK(results + closed == 800);
    record("in_process: 4 threads submit while a fifth shuts down", "in_process", "a result or pool_closed each",
           std::to_string(results.load()) + " results, " + std::to_string(closed.load()) + " pool_closed, " +
               std::to_string(other.load()) + " other");
}
