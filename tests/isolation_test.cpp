// SPDX-License-Identifier: BSL-1.0
// tests/isolation_test.cpp: isolation_mode::per_task (every task in a fresh fork of a warm worker) and
// pool_options::limits (setrlimit in every worker, a job object on Windows; a task over a limit fails with
// limit_exceeded).
#include "catch.hpp"
#include "plugins/geo_plugin.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#if PROCPOOL_POSIX
#include <csignal>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace iso_t {

// A registry that tasks append to, as a module registers itself on import (the leak per_task isolation removes).
std::vector<std::string> registry;
long initialized_in = 0; // the process the initializer ran in
int config = 1;          // a context

std::size_t register_and_count(std::string name) {
    registry.push_back(std::move(name));
    return registry.size();
}
std::pair<long, long> pids() { return {ppt::pid(), initialized_in}; }
void initialize(std::string trace) {
    initialized_in = ppt::pid();
    ppt::append_line(trace, "init " + std::to_string(ppt::pid()));
}
void finalize(std::string trace) { ppt::append_line(trace, "fini " + std::to_string(ppt::pid())); }
void record_run(std::string trace) { ppt::append_line(trace, "task " + std::to_string(ppt::pid())); }
int crash(int how) {
    if (how == 1) std::abort();
    if (how == 2) std::exit(3);
    return how;
}
int square(int x) { return x * x; }
int read_config() { return config; }
int get_config() { return config; }
void set_config(int v) { config = v; }
[[noreturn]] void hang() { ppt::block_forever(); }

// Counts the instances it builds in the process it runs in.
int built = 0;
procpool::per_process<std::pair<long, int>> resource{[] { return std::pair<long, int>{ppt::pid(), ++built}; }};
std::pair<long, int> use_resource() { return resource.get(); }
void build_resource() { (void)resource.get(); }

#if PROCPOOL_POSIX
long limit_of(int which) {
    rlimit r{};
    ::getrlimit(which, &r);
    return r.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(r.rlim_cur);
}
long core_limit() { return limit_of(RLIMIT_CORE); }
long spin_forever() {
    volatile long n = 0;
    for (;;) n = n + 1;
}
char* volatile allocated_at = nullptr;
std::size_t allocate(std::size_t bytes) {
    std::vector<char> v(bytes, 1);
    allocated_at = v.data(); // escapes: an optimizer may not elide the allocation (clang -O2 removes an unused one)
    return v.size();
}
int open_many(int n) {
    std::vector<int> fds;
    for (int i = 0; i < n; ++i) {
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            for (int f : fds) ::close(f);
            throw std::system_error(errno, std::generic_category(), "open /dev/null");
        }
        fds.push_back(fd);
    }
    for (int f : fds) ::close(f);
    return n;
}
// Leaves a process behind that holds every descriptor of the task process (the pipe it would say "answered" on
// among them) and outlives it (its pid in `pid_file`; it ends by itself after a minute), then aborts.
[[noreturn]] void crash_leaving_child(std::string pid_file) {
    const pid_t g = ::fork();
    if (g == 0) {
        ::alarm(60);
        for (;;) ::pause();
    }
    ppt::append_line(pid_file, std::to_string(g));
    std::abort();
}
#endif

#if PROCPOOL_WINDOWS
// The job object a worker applied its limits with, and the limits Windows reports for its (innermost) job.
struct job_view {
    bool in_limits_job = false;
    std::uint32_t flags = 0;
    std::uint64_t memory = 0;   // ProcessMemoryLimit, bytes
    std::int64_t user_time = 0; // PerProcessUserTimeLimit, 100 ns units
};
job_view own_job() {
    job_view v;
    HANDLE job = procpool::platform::detail_win::limits_job();
    BOOL in = FALSE;
    v.in_limits_job = job && ::IsProcessInJob(::GetCurrentProcess(), job, &in) && in;
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
    if (::QueryInformationJobObject(nullptr, JobObjectExtendedLimitInformation, &info, sizeof info, nullptr)) {
        v.flags = info.BasicLimitInformation.LimitFlags;
        v.memory = info.ProcessMemoryLimit;
        v.user_time = info.BasicLimitInformation.PerProcessUserTimeLimit.QuadPart;
    }
    return v;
}
// Ends the worker as the system ends one over its job's CPU time limit (with ERROR_NOT_ENOUGH_QUOTA).
[[noreturn]] void exit_with(int code) { ::ExitProcess(static_cast<UINT>(code)); }
char* volatile reserved_at = nullptr;
// Allocates `bytes` without touching them (one byte excepted).
std::size_t reserve(std::size_t bytes) {
    std::unique_ptr<char[]> p(new char[bytes]);
    p[bytes - 1] = 1;
    reserved_at = p.get();
    return bytes;
}
#endif

} // namespace iso_t

PROCPOOL_TASK(iso_t::register_and_count);
PROCPOOL_TASK(iso_t::pids);
PROCPOOL_TASK(iso_t::initialize);
PROCPOOL_TASK(iso_t::finalize);
PROCPOOL_TASK(iso_t::record_run);
PROCPOOL_TASK(iso_t::crash);
PROCPOOL_TASK(iso_t::square);
PROCPOOL_TASK(iso_t::read_config);
PROCPOOL_TASK(iso_t::hang);
PROCPOOL_TASK(iso_t::use_resource);
PROCPOOL_TASK(iso_t::build_resource);
PROCPOOL_CONTEXT("iso_t.config", iso_t::get_config, iso_t::set_config);
#if PROCPOOL_POSIX
PROCPOOL_TASK(iso_t::core_limit);
PROCPOOL_TASK(iso_t::spin_forever);
PROCPOOL_TASK(iso_t::allocate);
PROCPOOL_TASK(iso_t::open_many);
PROCPOOL_TASK(iso_t::crash_leaving_child);
#endif
#if PROCPOOL_WINDOWS
PROCPOOL_TASK(iso_t::own_job);
PROCPOOL_TASK(iso_t::exit_with);
PROCPOOL_TASK(iso_t::reserve);
#endif

using namespace iso_t;
using procpool::isolation_mode;
using procpool::start_method;

#if PROCPOOL_POSIX

TEST_CASE("per_task isolation: no task sees what another did, under every start method", "[isolation][posix]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        procpool::pool shared{{.workers = 1, .start = method}};
        procpool::pool fresh{{.workers = 1, .start = method, .isolation = isolation_mode::per_task}};
        std::vector<std::size_t> seen_shared, seen_fresh;
        for (int i = 0; i < 5; ++i) {
            seen_shared.push_back(shared.submit<register_and_count>(std::string("plugin")).get());
            seen_fresh.push_back(fresh.submit<register_and_count>(std::string("plugin")).get());
        }
        CHECK(seen_shared == std::vector<std::size_t>{1, 2, 3, 4, 5}); // a reused worker keeps the registry
        CHECK(seen_fresh == std::vector<std::size_t>{1, 1, 1, 1, 1});  // every task starts from the warm template
        // map chunks too, each in a process of its own
        std::vector<std::string> names(40, "x");
        for (auto n : fresh.map<register_and_count>(names)) CHECK(n == 1u); // one item per process by default
    }
}

TEST_CASE("per_task isolation: the initializer runs once per worker, every task in a fresh fork of it",
          "[isolation][posix]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        ppt::temp_dir dir;
        const auto trace = dir.file("trace");
        std::set<long> task_pids, init_pids;
        {
            procpool::pool p{{.workers = 2,
                              .start = method,
                              .initializer = procpool::call<initialize>(trace),
                              .isolation = isolation_mode::per_task}};
            const auto workers = p.worker_pids();
            std::vector<procpool::future<std::pair<long, long>>> fs;
            for (int i = 0; i < 60; ++i) fs.push_back(p.submit<pids>());
            for (auto& f : fs) {
                auto [task, init] = f.get();
                task_pids.insert(task);
                init_pids.insert(init);
                CHECK(std::find(workers.begin(), workers.end(), init) != workers.end());
                CHECK(std::find(workers.begin(), workers.end(), task) == workers.end());
            }
            CHECK(p.worker_pids() == workers); // no worker was replaced: task processes are not workers
        }
        CHECK(task_pids.size() == 60u);
        CHECK(init_pids.size() <= 2u);
        auto lines = ppt::read_lines(trace);
        CHECK(std::count_if(lines.begin(), lines.end(), [](auto& l) { return l.rfind("init ", 0) == 0; }) == 2);
    }
}

TEST_CASE("per_task isolation: the finalizer runs in each worker when it retires, not after each task",
          "[isolation][posix]") {
    ppt::temp_dir dir;
    const auto trace = dir.file("trace");
    std::vector<long> workers;
    {
        procpool::pool p{{.workers = 2,
                          .start = start_method::fork,
                          .finalizer = procpool::call<finalize>(trace),
                          .isolation = isolation_mode::per_task}};
        workers = p.worker_pids();
        std::vector<procpool::future<void>> fs;
        for (int i = 0; i < 20; ++i) fs.push_back(p.submit<record_run>(trace));
        for (auto& f : fs) f.get();
    }
    auto lines = ppt::read_lines(trace);
    std::vector<std::string> fini;
    std::copy_if(lines.begin(), lines.end(), std::back_inserter(fini), [](auto& l) { return l.rfind("fini ", 0) == 0; });
    std::sort(fini.begin(), fini.end());
    std::vector<std::string> expected;
    for (auto w : workers) expected.push_back("fini " + std::to_string(w));
    std::sort(expected.begin(), expected.end());
    CHECK(fini == expected);
    CHECK(lines.size() == 22u);
}

TEST_CASE("per_task isolation: a crashing task fails alone and its worker stays", "[isolation][posix]") {
    std::vector<procpool::worker_lost> lost;
    procpool::pool p{{.workers = 1,
                      .start = start_method::spawn,
                      .on_worker_lost = [&](const procpool::worker_lost& l) { lost.push_back(l); },
                      .isolation = isolation_mode::per_task}};
    const auto workers = p.worker_pids();
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 30; ++i) fs.push_back(p.submit<crash>(i == 10 ? 1 : i == 20 ? 2 : i + 100));
    for (int i = 0; i < 30; ++i) {
        if (i == 10 || i == 20) {
            try {
                fs[static_cast<std::size_t>(i)].get();
                FAIL("the crash was not reported");
            } catch (const procpool::worker_died& e) {
                CHECK(e.task() == "iso_t::crash");
                CHECK(std::find(workers.begin(), workers.end(), e.pid()) == workers.end());
                if (i == 10) CHECK(e.signal() == SIGABRT);
                else CHECK(e.exit_code() == 3);
                CHECK_THAT(e.what(), ppt::has_substring("task process pid"));
            }
        } else {
            CHECK(fs[static_cast<std::size_t>(i)].get() == i + 100);
        }
    }
    CHECK(p.worker_pids() == workers);
    (void)p.submit<square>(2).get(); // drives the pool: losses are reported after the round that saw them
    REQUIRE(lost.size() == 2u);
    CHECK(lost[0].task == "iso_t::crash");
}

TEST_CASE("per_task isolation: a task that crashes while a process it forked lives on fails at once, not when "
          "that process ends",
          "[isolation][posix]") {
    // The worker learns that a task process answered through a pipe; the one the task forked keeps a copy of its
    // write end, so only the task process's own end (seen from the process) can say that it died unanswered.
    ppt::temp_dir dir;
    const auto pid_file = dir.file("left");
    procpool::pool p{{.workers = 1, .start = start_method::spawn, .isolation = isolation_mode::per_task}};
    auto f = p.submit<crash_leaving_child>(pid_file);
    const bool in_time = f.wait_for(std::chrono::seconds(30)) == std::future_status::ready; // it ends after 60 s
    for (const auto& line : ppt::read_lines(pid_file)) ::kill(static_cast<pid_t>(std::stol(line)), SIGKILL);
    REQUIRE(in_time);
    try {
        f.get();
        FAIL("the crash was not reported");
    } catch (const procpool::worker_died& e) {
        CHECK(e.signal() == SIGABRT);
        CHECK_THAT(e.what(), ppt::has_substring("task process pid"));
    }
    CHECK(p.submit<square>(7).get() == 49); // the worker goes on
}

TEST_CASE("per_task isolation: a crashing task runs again under max_retries", "[isolation][posix]") {
    procpool::pool p{{.workers = 1, .start = start_method::spawn, .max_retries = 2, .isolation = isolation_mode::per_task}};
    try {
        (void)p.submit<crash>(1).get();
        FAIL("no error");
    } catch (const procpool::worker_died& e) {
        CHECK_THAT(e.what(), ppt::has_substring("it was run 3 times"));
    }
    CHECK(p.submit<square>(7).get() == 49);
}

TEST_CASE("per_task isolation: a timeout kills that task's process, the others complete", "[isolation][posix]") {
    procpool::pool p{{.workers = 1, .start = start_method::forkserver, .isolation = isolation_mode::per_task}};
    const auto workers = p.worker_pids();
    auto slow = p.submit_with<hang>({.timeout = std::chrono::milliseconds(200)});
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 10; ++i) fs.push_back(p.submit<square>(i));
    try {
        slow.get();
        FAIL("no timeout");
    } catch (const procpool::task_timeout& e) {
#if defined(__linux__) // with the result ring the pool knows the task's process: only that one is killed
        CHECK_THAT(e.what(), ppt::has_substring("its process pid"));
#endif
    }
    for (int i = 0; i < 10; ++i) CHECK(fs[static_cast<std::size_t>(i)].get() == i * i);
#if defined(__linux__)
    CHECK(p.worker_pids() == workers); // the warm worker stays
#endif
}

TEST_CASE("per_task isolation: contexts are captured at submit and reach the warm worker", "[isolation][posix]") {
    procpool::pool p{{.workers = 1, .start = start_method::spawn, .isolation = isolation_mode::per_task}};
    const int saved = config;
    config = 5;
    auto a = p.submit<read_config>();
    config = 6;
    auto b = p.submit<read_config>();
    config = saved;
    CHECK(a.get() == 5);
    CHECK(b.get() == 6);
}

TEST_CASE("per_task isolation: a plugin loaded after the pool started reaches its workers", "[isolation][posix]") {
    procpool::pool p{{.workers = 1, .start = start_method::spawn, .isolation = isolation_mode::per_task}};
    procpool::load_plugin(PROCPOOL_TEST_PLUGIN);
    CHECK(p.submit<geo_area>(geo::rect{2, 3}).get() == 6.0);
    CHECK(p.submit<geo_area>(geo::rect{2, 4}).get() == 8.0);
}

TEST_CASE("per_task isolation: per_process instances are rebuilt in every task process", "[isolation][posix]") {
    procpool::pool p{{.workers = 1,
                      .start = start_method::fork,
                      .initializer = procpool::call<build_resource>(),
                      .isolation = isolation_mode::per_task}};
    std::set<long> owners;
    for (int i = 0; i < 5; ++i) {
        auto [owner, count] = p.submit<use_resource>().get();
        owners.insert(owner);
        // The worker built one (count 1) in its initializer; each task's process builds its own: the second
        // instance of its copy, never the worker's.
        CHECK(count == 2);
    }
    CHECK(owners.size() == 5u);
}

TEST_CASE("per_task isolation: a worker that dies is replaced and no task is lost", "[isolation][posix]") {
    procpool::pool p{{.workers = 2, .start = start_method::fork, .isolation = isolation_mode::per_task}};
    CHECK(p.submit<square>(3).get() == 9);
    const auto before = p.worker_pids();
    ::kill(static_cast<pid_t>(before[0]), SIGKILL);
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 50; ++i) fs.push_back(p.submit<square>(i));
    int ok = 0, died = 0;
    for (int i = 0; i < 50; ++i) {
        try {
            CHECK(fs[static_cast<std::size_t>(i)].get() == i * i);
            ++ok;
        } catch (const procpool::worker_died&) {
            ++died; // sent to the killed worker before its death was seen
        }
    }
    CHECK(ok + died == 50);
    CHECK(died <= 1);
    CHECK(p.worker_pids().size() == 2u);
    CHECK(p.worker_pids() != before);
}

TEST_CASE("resource limits: core dumps off", "[isolation][limits][posix]") {
    for (auto iso : {isolation_mode::per_worker, isolation_mode::per_task}) {
        procpool::pool p{{.workers = 1, .start = start_method::spawn, .isolation = iso, .limits = {.core_dumps = false}}};
        CHECK(p.submit<core_limit>().get() == 0);
    }
}

TEST_CASE("resource limits: a task over the CPU time limit fails with limit_exceeded naming RLIMIT_CPU",
          "[isolation][limits][posix]") {
    for (auto iso : {isolation_mode::per_worker, isolation_mode::per_task}) {
        procpool::pool p{{.workers = 1,
                          .start = start_method::fork,
                          .isolation = iso,
                          .limits = {.cpu_time = std::chrono::seconds(1)}}};
        try {
            (void)p.submit<spin_forever>().get();
            FAIL("no error");
        } catch (const procpool::limit_exceeded& e) {
            CHECK(e.resource() == "RLIMIT_CPU");
            CHECK_THAT(e.what(), ppt::has_substring("CPU time limit (RLIMIT_CPU) of 1 s"));
        }
        CHECK(p.submit<square>(4).get() == 16); // the pool goes on
    }
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) // their shadow memory needs the address space
TEST_CASE("resource limits: a task over the address space limit fails with limit_exceeded naming RLIMIT_AS",
          "[isolation][limits][posix]") {
    for (auto iso : {isolation_mode::per_worker, isolation_mode::per_task}) {
        procpool::pool p{{.workers = 1,
                          .start = start_method::spawn,
                          .isolation = iso,
                          .limits = {.address_space = std::size_t{1} << 30}}};
        CHECK(p.submit<allocate>(std::size_t{1} << 20).get() == std::size_t{1} << 20);
        try {
            (void)p.submit<allocate>(std::size_t{2} << 30).get();
            FAIL("no error");
        } catch (const procpool::limit_exceeded& e) {
            CHECK(e.resource() == "RLIMIT_AS");
            CHECK_THAT(e.what(), ppt::has_substring("address space limit (RLIMIT_AS)"));
        }
        CHECK(p.submit<allocate>(std::size_t{1} << 20).get() == std::size_t{1} << 20);
    }
}
#endif

TEST_CASE("resource limits: a task out of descriptors fails with limit_exceeded naming RLIMIT_NOFILE",
          "[isolation][limits][posix]") {
    for (auto iso : {isolation_mode::per_worker, isolation_mode::per_task}) {
        procpool::pool p{{.workers = 1, .start = start_method::spawn, .isolation = iso, .limits = {.open_files = 64}}};
        CHECK(p.submit<open_many>(10).get() == 10);
        try {
            (void)p.submit<open_many>(100).get();
            FAIL("no error");
        } catch (const procpool::limit_exceeded& e) {
            CHECK(e.resource() == "RLIMIT_NOFILE");
            CHECK_THAT(e.what(), ppt::has_substring("open files limit (RLIMIT_NOFILE) of 64"));
        }
        CHECK(p.submit<open_many>(10).get() == 10);
    }
}

#endif // PROCPOOL_POSIX

TEST_CASE("per_task isolation and limits are refused where they cannot work", "[isolation]") {
    CHECK_THROWS_AS((procpool::pool{{.workers = 1, .start = start_method::in_process, .isolation = isolation_mode::per_task}}),
                    procpool::start_error);
#if PROCPOOL_WINDOWS
    try {
        procpool::pool p{{.workers = 1, .start = start_method::spawn, .isolation = isolation_mode::per_task}};
        FAIL("no error");
    } catch (const procpool::start_error& e) {
        CHECK_THAT(e.what(), ppt::has_substring("max_tasks_per_worker = 1"));
    }
    try {
        procpool::pool p{{.workers = 1,
                          .start = start_method::spawn,
                          .limits = {.cpu_time = std::chrono::seconds(5), .open_files = 64}}};
        FAIL("no error");
    } catch (const procpool::start_error& e) {
        CHECK_THAT(e.what(), ppt::has_substring("open_files is not available on Windows"));
        CHECK_THAT(e.what(), ppt::has_substring("no per-process handle limit"));
    }
#endif
}

#if PROCPOOL_WINDOWS
TEST_CASE("resource limits on Windows: every worker is in a job object of its own with the pool's limits",
          "[isolation][limits][windows]") {
    constexpr std::size_t memory = std::size_t{64} << 20;
    procpool::pool p{
        {.workers = 2, .limits = {.address_space = memory, .cpu_time = std::chrono::seconds(5), .core_dumps = false}}};
    std::vector<procpool::future<iso_t::job_view>> fs;
    for (int i = 0; i < 4; ++i) fs.push_back(p.submit<iso_t::own_job>());
    for (auto& f : fs) {
        const auto v = f.get();
        CHECK(v.in_limits_job);
        if (ppt::under_wine()) continue; // wine 8's QueryInformationJobObject reports no limits (zeros)
        CHECK((v.flags & JOB_OBJECT_LIMIT_PROCESS_MEMORY) != 0);
        CHECK((v.flags & JOB_OBJECT_LIMIT_PROCESS_TIME) != 0);
        CHECK((v.flags & JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION) != 0);
        CHECK(v.memory == memory);
        CHECK(v.user_time == 5 * 10'000'000);
    }
    procpool::pool unlimited{{.workers = 1}};
    CHECK_FALSE(unlimited.submit<iso_t::own_job>().get().in_limits_job);
}

TEST_CASE("resource limits on Windows: a worker ended with ERROR_NOT_ENOUGH_QUOTA under a CPU time limit fails its "
          "task with limit_exceeded naming RLIMIT_CPU",
          "[isolation][limits][windows]") {
    procpool::pool p{{.workers = 1, .limits = {.cpu_time = std::chrono::seconds(1)}}};
    try {
        p.submit<iso_t::exit_with>(procpool::platform::cpu_limit_exit_code).get();
        FAIL("no error");
    } catch (const procpool::limit_exceeded& e) {
        CHECK(e.resource() == "RLIMIT_CPU");
        CHECK_THAT(e.what(),
                   ppt::has_substring("user-mode CPU time limit (RLIMIT_CPU; a job object limit on Windows) of 1 s"));
    }
    CHECK(p.submit<iso_t::square>(4).get() == 16); // the worker was replaced
    CHECK_THROWS_AS(p.submit<iso_t::exit_with>(3).get(), procpool::worker_died); // another exit code is no limit
    procpool::pool unlimited{{.workers = 1}};
    try {
        unlimited.submit<iso_t::exit_with>(procpool::platform::cpu_limit_exit_code).get();
        FAIL("no error");
    } catch (const procpool::limit_exceeded&) {
        FAIL("limit_exceeded without a CPU time limit");
    } catch (const procpool::worker_died& e) {
        CHECK(e.exit_code() == procpool::platform::cpu_limit_exit_code);
    }
}

TEST_CASE("resource limits on Windows: an allocation that fails under the memory limit fails with limit_exceeded "
          "naming RLIMIT_AS",
          "[isolation][limits][windows]") {
    constexpr std::size_t too_much = std::size_t{1} << 47; // more than the 128 TiB of a process's address space
    procpool::pool p{{.workers = 1, .limits = {.address_space = std::size_t{64} << 20}}};
    CHECK(p.submit<iso_t::reserve>(std::size_t{1} << 20).get() == std::size_t{1} << 20);
    try {
        (void)p.submit<iso_t::reserve>(too_much).get();
        FAIL("no error");
    } catch (const procpool::limit_exceeded& e) {
        CHECK(e.resource() == "RLIMIT_AS");
        CHECK_THAT(e.what(), ppt::has_substring(
                                 "committed memory limit (RLIMIT_AS; a job object limit on Windows) of 67108864 bytes"));
    }
    CHECK(p.submit<iso_t::reserve>(std::size_t{1} << 20).get() == std::size_t{1} << 20); // the worker lives on
    procpool::pool unlimited{{.workers = 1}};
    CHECK_THROWS_AS(unlimited.submit<iso_t::reserve>(too_much).get(), std::bad_alloc);
}
#endif
