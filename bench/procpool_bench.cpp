// SPDX-License-Identifier: BSL-1.0
// bench/procpool_bench.cpp: procpool against the physical limits of this machine and against Python's pools,
// all measured in the same run; prints markdown tables with ratios (docs/performance.md explains them).
//
//   procpool_bench                 full run (about 5-8 minutes on 2 cores)
//   procpool_bench --quick         smoke run: tiny sizes, same tables, a few seconds (ctest bench.smoke)
//   procpool_bench --python PATH   interpreter for bench/python_peer.py (default: the first python3 that
//                                  imports joblib, else the first that runs); --no-python skips the peer
//
// Figures: limits (pipe / socketpair round trip, fork, posix_spawn to a first byte, memcpy and socketpair
// throughput), P1 round trip, P2 throughput, P3 start, P4 payload, P5 memory. POSIX only (fork, /proc on Linux).
#include <procpool/procpool.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

extern char** environ;

// ---- the tasks ---------------------------------------------------------------------------------------------------
int tiny(int x) { return x + 1; }
PROCPOOL_TASK(tiny);

std::uint64_t payload_size(const std::vector<std::byte>& v) { return v.size(); }
PROCPOOL_TASK(payload_size);

namespace {

using clk = std::chrono::steady_clock;
constexpr std::size_t MiB = std::size_t{1} << 20;

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }
double us_since(clk::time_point t0) { return std::chrono::duration<double, std::micro>(clk::now() - t0).count(); }

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    auto n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
/// Nearest-rank percentile.
double percentile(std::vector<double> v, double p) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    auto k = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::clamp<std::size_t>(k, 1, v.size()) - 1];
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void progress(const char* fmt, ...) {
    std::fprintf(stderr, "[procpool_bench] ");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "\n");
    std::fflush(stderr);
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "procpool_bench: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(2);
}

void write_all(int fd, const void* p, std::size_t n) {
    auto c = static_cast<const char*>(p);
    while (n) {
        auto r = ::write(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("write");
        c += r;
        n -= static_cast<std::size_t>(r);
    }
}
bool read_exact(int fd, void* p, std::size_t n) {
    auto c = static_cast<char*>(p);
    while (n) {
        auto r = ::read(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}
/// Waits up to `ms` for fd to become readable.
bool readable_within(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}
void reap(pid_t pid) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
}
void set_buffers(int fd, int bytes) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}
/// Keeps the compiler from dropping a computation whose result is unused.
template <class T>
void keep(const T& v) {
    asm volatile("" : : "g"(&v) : "memory");
}

/// Private (unshared) resident bytes (Linux smaps_rollup), or nothing.
std::optional<std::size_t> private_bytes(long pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
    if (!f) return std::nullopt;
    std::string key;
    std::size_t kb = 0, total = 0;
    bool any = false;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream ls(line);
        ls >> key >> kb;
        if (key == "Private_Clean:" || key == "Private_Dirty:") {
            total += kb * 1024;
            any = true;
        }
    }
    return any ? std::optional(total) : std::nullopt;
}

// ---- starting a copy of this executable with a socket as descriptor 3 (for the limits and P5) ------------------
struct child_proc {
    pid_t pid = -1;
    int fd = -1; // our end of the socket; the child's descriptor 3
};

child_proc spawn_self_child(const std::vector<std::string>& args) {
    static const std::string exe = procpool::platform::executable_path();
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
    int src = sv[1], tmp = -1;
    if (src == 3) src = tmp = ::fcntl(sv[1], F_DUPFD_CLOEXEC, 10); // dup2(3, 3) would keep close-on-exec
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, src, 3);
    std::vector<std::string> store = args;
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (auto& s : store) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(sv[1]);
    if (tmp >= 0) ::close(tmp);
    if (rc != 0) {
        errno = rc;
        die("posix_spawn");
    }
    return {pid, sv[0]};
}

// ---- the limits --------------------------------------------------------------------------------------------------
struct latency {
    double median_us = NAN, p99_us = NAN;
};

// CPU placement (Linux): a blocking round trip costs ~5 us when both processes share a CPU, and ~35 us more per
// direction when the peer sleeps on another, idle CPU (waking it). The scheduler picks either, so the round trips
// are measured three ways: as the scheduler places them, all on CPU 0, and parent on CPU 0 / peer on CPU 1.
enum class placement { scheduler, same_cpu, two_cpus };
constexpr placement placements[] = {placement::scheduler, placement::same_cpu, placement::two_cpus};
const char* placement_name(placement p) {
    switch (p) {
    case placement::scheduler: return "scheduler's choice";
    case placement::same_cpu: return "same CPU (pinned)";
    case placement::two_cpus: return "two CPUs (pinned)";
    }
    return "";
}

#if defined(__linux__)
cpu_set_t& original_affinity() {
    static cpu_set_t s = [] {
        cpu_set_t m;
        CPU_ZERO(&m);
        ::sched_getaffinity(0, sizeof m, &m);
        return m;
    }();
    return s;
}
/// Pins `pid` (0: this process) to `cpu`, or gives it back the original mask when cpu < 0.
bool pin(pid_t pid, int cpu) {
    cpu_set_t m;
    if (cpu < 0) m = original_affinity();
    else {
        CPU_ZERO(&m);
        CPU_SET(cpu, &m);
    }
    return ::sched_setaffinity(pid, sizeof m, &m) == 0;
}
bool can_pin_two() { return CPU_COUNT(&original_affinity()) >= 2 && CPU_ISSET(0, &original_affinity()) && CPU_ISSET(1, &original_affinity()); }
#else
bool pin(pid_t, int cpu) { return cpu < 0; }
bool can_pin_two() { return false; }
#endif

/// CPUs of (parent, peer) for a placement; -1: not pinned.
std::pair<int, int> cpus_of(placement p) {
    switch (p) {
    case placement::scheduler: return {-1, -1};
    case placement::same_cpu: return {0, 0};
    case placement::two_cpus: return {0, 1};
    }
    return {-1, -1};
}

/// A forked child that echoes every byte it reads, over two pipes or one socketpair.
struct echo_child {
    pid_t pid = -1;
    int out = -1, in = -1; // to the child, from the child
};

echo_child start_echo(bool use_pipe) {
    int to_child[2], to_parent[2];
    if (use_pipe) {
        if (::pipe(to_child) < 0 || ::pipe(to_parent) < 0) die("pipe");
    } else {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
        to_child[1] = to_parent[0] = sv[0];
        to_child[0] = to_parent[1] = sv[1];
    }
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        ::close(to_child[1]); // keep only our ends, so the parent's close is an end of stream here
        if (use_pipe) ::close(to_parent[0]);
        char b;
        while (::read(to_child[0], &b, 1) == 1)
            if (::write(to_parent[1], &b, 1) != 1) break;
        ::_exit(0);
    }
    ::close(to_child[0]);
    if (use_pipe) ::close(to_parent[1]);
    return {pid, to_child[1], to_parent[0]};
}

void stop_echo(echo_child& e) {
    ::close(e.out);
    if (e.in != e.out) ::close(e.in);
    reap(e.pid);
}

/// n timed 1-byte round trips (negative `warm`: that many untimed first).
void echo_block(echo_child& e, int n, std::vector<double>& us, int warm = 0) {
    char b = 'x';
    for (int i = -warm; i < n; ++i) {
        auto t0 = clk::now();
        write_all(e.out, &b, 1);
        if (!read_exact(e.in, &b, 1)) die("round trip read");
        if (i >= 0) us.push_back(us_since(t0));
    }
}

latency summarize(const std::vector<double>& us) { return {median(us), percentile(us, 99)}; }

/// 1-byte round trips to a forked child over pipes, placed as `p`.
latency raw_pipe_round_trip(placement p, int iters) {
    auto e = start_echo(true);
    auto [mine, theirs] = cpus_of(p);
    pin(0, mine);
    pin(e.pid, theirs);
    std::vector<double> us;
    echo_block(e, iters, us, std::min(iters, 1000));
    pin(0, -1);
    stop_echo(e);
    return summarize(us);
}

/// fork + _exit in the child + waitpid, from this (small) process.
latency raw_fork(int iters) {
    std::vector<double> us;
    std::fflush(nullptr);
    for (int i = -std::min(iters, 20); i < iters; ++i) {
        auto t0 = clk::now();
        pid_t pid = ::fork();
        if (pid < 0) die("fork");
        if (pid == 0) ::_exit(0);
        reap(pid);
        if (i >= 0) us.push_back(us_since(t0));
    }
    return {median(us), percentile(us, 99)};
}

/// posix_spawn of this executable (which writes one byte to descriptor 3 first thing in main) until that byte.
latency raw_spawn_first_byte(int iters) {
    std::vector<double> us;
    for (int i = -std::min(iters, 3); i < iters; ++i) {
        auto t0 = clk::now();
        auto c = spawn_self_child({"--bench-first-byte"});
        char b = 0;
        if (!readable_within(c.fd, 10000) || !read_exact(c.fd, &b, 1)) die("spawned copy sent no byte");
        double t = us_since(t0);
        ::close(c.fd);
        reap(c.pid);
        if (i >= 0) us.push_back(t);
    }
    return {median(us), percentile(us, 99)};
}

/// memcpy of `bytes` between two touched buffers: GB/s (10^9 bytes per second), median.
double raw_memcpy_gbps(std::size_t bytes, int reps) {
    std::vector<std::byte> a(bytes, std::byte{1}), b(bytes, std::byte{0});
    std::vector<double> r;
    for (int i = -1; i < reps; ++i) {
        auto t0 = clk::now();
        std::memcpy(b.data(), a.data(), bytes);
        keep(b);
        if (i >= 0) r.push_back(static_cast<double>(bytes) / seconds_since(t0) / 1e9);
    }
    return median(r);
}

/// `bytes` through a socketpair to a forked child that reads them into a 1 MiB buffer and answers one byte.
/// Socket buffers as procpool sets them (1 MiB). GB/s, median.
double raw_socket_gbps(std::size_t bytes, int reps) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
    set_buffers(sv[0], 1 << 20);
    set_buffers(sv[1], 1 << 20);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        ::close(sv[0]);
        std::vector<char> buf(MiB);
        for (;;) {
            std::size_t got = 0;
            while (got < bytes) {
                auto r = ::read(sv[1], buf.data(), std::min(buf.size(), bytes - got));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) ::_exit(0);
                got += static_cast<std::size_t>(r);
            }
            char ack = 1;
            if (::write(sv[1], &ack, 1) != 1) ::_exit(0);
        }
    }
    ::close(sv[1]);
    std::vector<std::byte> data(bytes, std::byte{7});
    std::vector<double> r;
    for (int i = -1; i < reps; ++i) {
        auto t0 = clk::now();
        write_all(sv[0], data.data(), bytes);
        char ack;
        if (!read_exact(sv[0], &ack, 1)) die("socket throughput ack");
        if (i >= 0) r.push_back(static_cast<double>(bytes) / seconds_since(t0) / 1e9);
    }
    ::close(sv[0]);
    reap(pid);
    return median(r);
}

// ---- procpool figures -------------------------------------------------------------------------------------------
void pool_block(procpool::pool& pool, int n, std::vector<double>& us, int warm = 0) {
    for (int i = -warm; i < n; ++i) {
        auto t0 = clk::now();
        int r = pool.submit<tiny>(i).get();
        double t = us_since(t0);
        if (r != i + 1) die("wrong result");
        if (i >= 0) us.push_back(t);
    }
}

/// as_completed over `n` futures of tiny tasks: milliseconds to submit them, and to take them all in completion order.
struct as_completed_time {
    double submit_ms = NAN, drain_ms = NAN;
};
as_completed_time as_completed_ms(procpool::pool& pool, std::size_t n) {
    std::vector<procpool::future<int>> fs;
    fs.reserve(n);
    auto t0 = clk::now();
    for (std::size_t i = 0; i < n; ++i) fs.push_back(pool.submit<tiny>(static_cast<int>(i)));
    as_completed_time t;
    t.submit_ms = seconds_since(t0) * 1e3;
    auto t1 = clk::now();
    long long sum = 0;
    std::size_t got = 0;
    for (auto& f : procpool::as_completed(fs)) {
        sum += f.get();
        ++got;
    }
    t.drain_ms = seconds_since(t1) * 1e3;
    if (got != n || sum != static_cast<long long>(n) * static_cast<long long>(n + 1) / 2) die("as_completed: wrong results");
    return t;
}

struct round_trips {
    latency raw, pool;
};
/// P1 and its limit, interleaved (blocks of raw socketpair round trips and pool round trips, alternating, so both
/// see the same machine), placed as `p`. Pinned: one echo child and `pool`, whose workers are pinned like the echo
/// child. Scheduler's choice: where the scheduler puts a pair sticks for its lifetime, so every block uses a fresh
/// echo child and a fresh pool of 2, and the medians are over 10 such placements.
round_trips p1_round_trips(procpool::pool& pool, placement p, int iters) {
    constexpr int blocks = 10;
    std::vector<double> raw, mine;
    raw.reserve(static_cast<std::size_t>(iters));
    mine.reserve(static_cast<std::size_t>(iters));
    auto [cpu_me, cpu_peer] = cpus_of(p);
    bool fresh = p == placement::scheduler;
    pin(0, cpu_me);
    std::optional<echo_child> e;
    if (!fresh) {
        e = start_echo(false);
        pin(e->pid, cpu_peer);
        for (long w : pool.worker_pids()) pin(static_cast<pid_t>(w), cpu_peer);
        echo_block(*e, 0, raw, std::min(iters, 1000));
        pool_block(pool, 0, mine, std::min(iters, 1000));
    }
    for (int b = 0; b < blocks; ++b) {
        int n = iters / blocks + (b < iters % blocks ? 1 : 0);
        if (fresh) {
            auto fe = start_echo(false);
            procpool::pool fp{{.workers = 2}};
            echo_block(fe, 0, raw, std::min(n, 200));
            pool_block(fp, 0, mine, std::min(n, 200));
            echo_block(fe, n, raw);
            pool_block(fp, n, mine);
            stop_echo(fe);
        } else {
            echo_block(*e, n, raw);
            pool_block(pool, n, mine);
        }
    }
    pin(0, -1);
    if (!fresh) {
        for (long w : pool.worker_pids()) pin(static_cast<pid_t>(w), -1);
        stop_echo(*e);
    }
    return {summarize(raw), summarize(mine)};
}

/// n tasks, one submit each, then every result: tasks/s.
double submit_each_rate(procpool::pool& pool, std::size_t n) {
    std::vector<procpool::future<int>> fs;
    fs.reserve(n);
    auto t0 = clk::now();
    for (std::size_t i = 0; i < n; ++i) fs.push_back(pool.submit<tiny>(static_cast<int>(i)));
    long long sum = 0;
    for (auto& f : fs) sum += f.get();
    double s = seconds_since(t0);
    auto nn = static_cast<long long>(n);
    if (sum != nn * (nn + 1) / 2) die("wrong sum");
    return static_cast<double>(n) / s;
}

/// map over n inputs with automatic chunking: tasks/s (the input vector is built before the clock starts).
double map_rate(procpool::pool& pool, std::size_t n) {
    std::vector<int> in(n);
    std::iota(in.begin(), in.end(), 0);
    auto t0 = clk::now();
    auto out = pool.map<tiny>(in);
    double s = seconds_since(t0);
    if (out.size() != n || (n && out.back() != static_cast<int>(n))) die("wrong map result");
    return static_cast<double>(n) / s;
}

double median_rate(auto&& fn, int reps) {
    std::vector<double> r;
    for (int i = 0; i < reps; ++i) r.push_back(fn());
    return median(r);
}

/// Pool of 2 workers, constructed until the first result: ms, median.
double pool_start_ms(procpool::start_method m, int reps) {
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
        auto t0 = clk::now();
        procpool::pool p{{.workers = 2, .start = m}};
        int r = p.submit<tiny>(1).get();
        ms.push_back(us_since(t0) / 1000);
        if (r != 2) die("wrong result");
    } // destruction (retiring the workers) is not timed
    return median(ms);
}

/// A `bytes` std::vector<std::byte> argument whose size the task returns: GB/s, median (first call warms up).
double payload_gbps(procpool::pool& pool, std::size_t bytes, int reps) {
    std::vector<std::byte> data(bytes);
    for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<std::byte>(i);
    std::vector<double> r;
    for (int i = -1; i < reps; ++i) {
        auto t0 = clk::now();
        auto n = pool.submit<payload_size>(data).get();
        double s = seconds_since(t0);
        if (n != bytes) die("wrong payload size");
        if (i >= 0) r.push_back(static_cast<double>(bytes) / s / 1e9);
    }
    return median(r);
}

struct rss_pair {
    double rss = NAN, uss = NAN; // bytes
};
/// Largest resident (and private) memory among the pool's workers.
rss_pair worker_memory(procpool::pool& pool) {
    rss_pair m{0, 0};
    for (long pid : pool.worker_pids()) {
        m.rss = std::max(m.rss, static_cast<double>(procpool::platform::resident_bytes(pid)));
        if (auto u = private_bytes(pid)) m.uss = std::max(m.uss, static_cast<double>(*u));
        else m.uss = NAN;
    }
    return m;
}

/// A spawned copy of this executable idling in main(): the executable's own baseline.
rss_pair idle_baseline() {
    auto c = spawn_self_child({"--bench-idle"});
    char b = 0;
    if (!readable_within(c.fd, 10000) || !read_exact(c.fd, &b, 1)) die("idle copy sent no byte");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    rss_pair m{static_cast<double>(procpool::platform::resident_bytes(c.pid)), NAN};
    if (auto u = private_bytes(c.pid)) m.uss = static_cast<double>(*u);
    ::close(c.fd); // it exits on end of stream
    reap(c.pid);
    return m;
}

struct queue_memory {
    double rss_per_task = NAN, heap_per_task = NAN; // bytes
};
/// Parent memory per queued task, measured in a fresh copy of this executable (`--bench-queue-mem n`).
/// Runs a copy of this executable with `args` and returns the first line it writes to descriptor 3 (or what came
/// before it ended, or `timeout_ms` passed without a byte).
std::string child_line(const std::vector<std::string>& args, int timeout_ms) {
    auto c = spawn_self_child(args);
    std::string out;
    char buf[256];
    while (readable_within(c.fd, timeout_ms)) {
        auto r = ::read(c.fd, buf, sizeof buf);
        if (r <= 0) break;
        out.append(buf, static_cast<std::size_t>(r));
        if (out.find('\n') != std::string::npos) break;
    }
    ::close(c.fd);
    reap(c.pid);
    return out;
}

queue_memory queued_memory(std::size_t n) {
    const auto out = child_line({"--bench-queue-mem", std::to_string(n)}, 120000);
    queue_memory q;
    double rss = NAN, heap = NAN;
    if (std::sscanf(out.c_str(), "%lf %lf", &rss, &heap) == 2) {
        q.rss_per_task = rss / static_cast<double>(n);
        q.heap_per_task = heap / static_cast<double>(n);
    }
    return q;
}

/// The `--bench-queue-mem n` child: n tiny tasks submitted (queued, nobody waits yet); prints "rss heap" deltas.
int queue_mem_child(std::size_t n) {
    procpool::pool pool{{.workers = 2}};
    pool.submit<tiny>(0).get();
    auto heap_in_use = [] {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
        return static_cast<double>(mallinfo2().uordblks);
#else
        return NAN;
#endif
    };
    auto me = procpool::platform::current_pid();
    double rss0 = static_cast<double>(procpool::platform::resident_bytes(me)), heap0 = heap_in_use();
    std::vector<procpool::future<int>> fs;
    fs.reserve(n);
    for (std::size_t i = 0; i < n; ++i) fs.push_back(pool.submit<tiny>(static_cast<int>(i)));
    double rss1 = static_cast<double>(procpool::platform::resident_bytes(me)), heap1 = heap_in_use();
    char line[128];
    int len = std::snprintf(line, sizeof line, "%.0f %.0f\n", rss1 - rss0, heap1 - heap0);
    write_all(3, line, static_cast<std::size_t>(len));
    for (auto& f : fs) f.get();
    return 0;
}

/// The parent's memory over a lazy map of n items (imap), measured in a fresh copy of this executable
/// (`--bench-lazy-mem n`): resident memory before, its largest growth while the map ran (sampled every 100k
/// results), and the time; the same for map (which holds every result) when `with_map`.
struct lazy_memory {
    double rss_before = NAN, imap_growth = NAN, imap_seconds = NAN, map_growth = NAN, map_seconds = NAN; // bytes, s
};
lazy_memory lazy_map_memory(std::size_t n, bool with_map) {
    const auto out = child_line({"--bench-lazy-mem", std::to_string(n), with_map ? "map" : "imap"}, 600000);
    lazy_memory m;
    if (std::sscanf(out.c_str(), "%lf %lf %lf %lf %lf", &m.rss_before, &m.imap_growth, &m.imap_seconds,
                    &m.map_growth, &m.map_seconds) < 3)
        return {};
    return m;
}

/// The numbers [0, n) as a sized range (libc++ 14 has no std::views).
struct iota_range {
    struct iterator {
        using value_type = int;
        using difference_type = std::ptrdiff_t;
        int v = 0;
        int operator*() const { return v; }
        iterator& operator++() {
            ++v;
            return *this;
        }
        iterator operator++(int) { return iterator{v++}; }
        bool operator==(const iterator&) const = default;
    };
    int n = 0;
    [[nodiscard]] iterator begin() const { return {0}; }
    [[nodiscard]] iterator end() const { return {n}; }
    [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(n); }
};

/// The `--bench-lazy-mem n imap|map` child: prints "rss_before imap_growth imap_s map_growth map_s" (NaN when not run).
int lazy_mem_child(std::size_t n, bool with_map) {
    procpool::pool pool{{.workers = 2}};
    pool.submit<tiny>(0).get();
    auto me = procpool::platform::current_pid();
    auto rss = [&] { return static_cast<double>(procpool::platform::resident_bytes(me)); };
    const double before = rss();
    double peak = before;
    auto t0 = clk::now();
    long long sum = 0;
    std::size_t got = 0;
    for (int v : pool.imap<tiny>(iota_range{static_cast<int>(n)}, {.chunksize = 1000, .max_in_flight = 16000})) {
        sum += v;
        if (++got % 100000 == 0) peak = std::max(peak, rss());
    }
    const double imap_s = seconds_since(t0);
    if (got != n || sum != static_cast<long long>(n) * static_cast<long long>(n + 1) / 2) die("imap: wrong results");
    double map_growth = NAN, map_s = NAN;
    if (with_map) { // after imap: its own growth is measured from the same baseline
        auto t1 = clk::now();
        auto all = pool.map<tiny>(iota_range{static_cast<int>(n)}, 1000);
        map_s = seconds_since(t1);
        map_growth = rss() - before;
        if (all.size() != n) die("map: wrong size");
    }
    char line[256];
    int len = std::snprintf(line, sizeof line, "%.0f %.0f %.3f %.0f %.3f\n", before, peak - before, imap_s,
                            map_growth, map_s);
    write_all(3, line, static_cast<std::size_t>(len));
    return 0;
}

// ---- the Python peer -----------------------------------------------------------------------------------------------
using json_value = std::variant<std::monostate, double, std::string>; // null, number (or bool), string
using json_object = std::map<std::string, json_value>;

/// Parses the flat JSON object python_peer.py prints. Returns nothing on anything else.
std::optional<json_object> parse_flat_json(const std::string& s) {
    json_object out;
    std::size_t i = 0;
    auto ws = [&] {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    };
    auto str = [&]() -> std::optional<std::string> {
        if (i >= s.size() || s[i] != '"') return std::nullopt;
        std::string r;
        for (++i; i < s.size() && s[i] != '"'; ++i) {
            if (s[i] == '\\' && i + 1 < s.size()) {
                ++i;
                if (s[i] == 'u') { // keep it simple: \uXXXX becomes '?'
                    i += 4;
                    r += '?';
                    continue;
                }
                r += s[i] == 'n' ? '\n' : s[i] == 't' ? '\t' : s[i];
            } else {
                r += s[i];
            }
        }
        if (i >= s.size()) return std::nullopt;
        ++i;
        return r;
    };
    ws();
    if (i >= s.size() || s[i] != '{') return std::nullopt;
    ++i;
    for (;;) {
        ws();
        if (i < s.size() && s[i] == '}') return out;
        auto key = str();
        if (!key) return std::nullopt;
        ws();
        if (i >= s.size() || s[i] != ':') return std::nullopt;
        ++i;
        ws();
        if (s.compare(i, 4, "null") == 0) {
            out[*key] = std::monostate{};
            i += 4;
        } else if (s.compare(i, 4, "true") == 0) {
            out[*key] = 1.0;
            i += 4;
        } else if (s.compare(i, 5, "false") == 0) {
            out[*key] = 0.0;
            i += 5;
        } else if (i < s.size() && s[i] == '"') {
            auto v = str();
            if (!v) return std::nullopt;
            out[*key] = *v;
        } else {
            char* end = nullptr;
            double d = std::strtod(s.c_str() + i, &end);
            if (end == s.c_str() + i) return std::nullopt;
            i = static_cast<std::size_t>(end - s.c_str());
            out[*key] = d;
        }
        ws();
        if (i < s.size() && s[i] == ',') ++i;
    }
}

/// Runs `argv` (PATH search), stdout captured, stderr passed through. Exit status (or -1) and output.
int run_capture(const std::vector<std::string>& args, std::string& out, int timeout_ms) {
    int p[2];
    if (::pipe(p) < 0) die("pipe");
    ::fcntl(p[0], F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    std::vector<std::string> store = args;
    std::vector<char*> argv;
    for (auto& s : store) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    if (rc != 0) {
        ::close(p[0]);
        return -1;
    }
    auto deadline = clk::now() + std::chrono::milliseconds(timeout_ms);
    char buf[4096];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clk::now()).count();
        if (left <= 0 || !readable_within(p[0], static_cast<int>(left))) {
            progress("%s timed out after %d s; killed", args[0].c_str(), timeout_ms / 1000);
            ::kill(pid, SIGKILL);
            break;
        }
        auto r = ::read(p[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        out.append(buf, static_cast<std::size_t>(r));
    }
    ::close(p[0]);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/// The interpreter to use: --python, else the first candidate that imports joblib, else the first that runs.
std::optional<std::string> pick_python(const std::optional<std::string>& forced) {
    if (forced) return forced;
    std::vector<std::string> candidates{"python3", "/usr/bin/python3", "python"};
    std::optional<std::string> runs;
    for (auto& c : candidates) {
        std::string ignored;
        if (run_capture({c, "-c", "import joblib"}, ignored, 30000) == 0) return c;
        if (!runs && run_capture({c, "-c", "import concurrent.futures, multiprocessing"}, ignored, 30000) == 0)
            runs = c;
    }
    return runs;
}

std::string find_peer_script(const std::optional<std::string>& forced, const char* argv0) {
    namespace fs = std::filesystem;
    if (forced) return *forced;
    std::vector<fs::path> candidates;
#if defined(PROCPOOL_BENCH_PEER)
    candidates.emplace_back(PROCPOOL_BENCH_PEER);
#endif
    candidates.push_back(fs::path(__FILE__).parent_path() / "python_peer.py");
    if (argv0) candidates.push_back(fs::path(argv0).parent_path() / "python_peer.py");
    candidates.emplace_back("bench/python_peer.py");
    for (auto& c : candidates) {
        std::error_code ec;
        if (fs::is_regular_file(c, ec)) return c.string();
    }
    return {};
}

// ---- the run ---------------------------------------------------------------------------------------------------------
struct config {
    bool quick = false;
    bool python = true;
    std::optional<std::string> python_path, peer_path;
    std::string only = "limits,p1,p2,p3,p4,p5,ac,lazy";
    std::size_t sizes[3] = {1000, 100000, 1000000};
    int p1_iters = 10000; // per placement; the raw socketpair round trips interleaved with them: as many
    int pipe_iters = 10000;
    int fork_iters = 500;
    int spawn_iters = 40;
    int p3_reps = 15;
    std::size_t payload = 64 * MiB;
    int payload_reps = 9;
    std::size_t queued = 100000;
    std::size_t ac_sizes[3] = {1000, 10000, 100000};
    std::size_t lazy_items = 10000000;
    [[nodiscard]] bool want(const std::string& what) const {
        return ("," + only + ",").find("," + what + ",") != std::string::npos;
    }
};

struct results {
    latency pipe_rtt[3], sock_rtt[3], p1[3]; // by placement
    latency fork_cost, spawn_cost;
    double memcpy_gbps = NAN, sock_gbps = NAN;
    double p2_each[3] = {NAN, NAN, NAN}, p2_map[3] = {NAN, NAN, NAN};
    double p3_fork_ms = NAN, p3_spawn_ms = NAN, p3_forkserver_ms = NAN;
    double p4_gbps = NAN;
    rss_pair baseline, spawn_worker, fork_worker, worker_after_payload;
    queue_memory queued;
    as_completed_time ac[3];
    lazy_memory lazy;
    json_object py;
    std::string python_used;
    std::string load_before;
    double seconds = NAN;
};

std::string fmt(const char* f, double v) {
    if (std::isnan(v)) return "n/a";
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}
std::string rate_str(double v) {
    if (std::isnan(v)) return "n/a";
    char b[64];
    if (v >= 1e6) std::snprintf(b, sizeof b, "%.2f M/s", v / 1e6);
    else if (v >= 1e3) std::snprintf(b, sizeof b, "%.1f k/s", v / 1e3);
    else std::snprintf(b, sizeof b, "%.0f /s", v);
    return b;
}
std::string count_str(std::size_t n) {
    if (n >= 1000000 && n % 1000000 == 0) return std::to_string(n / 1000000) + "M";
    if (n >= 1000 && n % 1000 == 0) return std::to_string(n / 1000) + "k";
    return std::to_string(n);
}
std::string mib(double bytes) { return fmt("%.2f MiB", bytes / static_cast<double>(MiB)); }
std::string plus_mib(double bytes) { return std::isnan(bytes) ? "n/a" : (bytes >= 0 ? "+" : "") + mib(bytes); }
std::string ratio(double a, double b) { return (std::isnan(a) || std::isnan(b) || b == 0) ? "n/a" : fmt("%.2fx", a / b); }
std::string us_str(double v) { return fmt("%.1f us", v); }
std::string ms_str(double v) { return fmt("%.2f ms", v); }
std::string gbps_str(double v) { return fmt("%.2f GB/s", v); }

double py_num(const results& r, const std::string& key) {
    auto it = r.py.find(key);
    if (it == r.py.end()) return NAN;
    if (auto* d = std::get_if<double>(&it->second)) return *d;
    return NAN;
}
std::string py_str(const results& r, const std::string& key) {
    auto it = r.py.find(key);
    if (it == r.py.end()) return "n/a";
    if (auto* s = std::get_if<std::string>(&it->second)) return *s;
    return "n/a";
}

/// "met" / "NOT met" / "n/a" for value `v` against `bound` (<= when `at_most`).
std::string verdict(double v, double bound, bool at_most) {
    if (std::isnan(v)) return "n/a";
    return (at_most ? v <= bound : v >= bound) ? "met" : "**NOT met**";
}

/// One row of the main table: procpool, limit, Python, joblib (cells already formatted).
void row(const std::string& figure, const std::string& mine, const std::string& limit, const std::string& vs_limit,
         const std::string& py = "", const std::string& vs_py = "", const std::string& jl = "",
         const std::string& vs_jl = "") {
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", figure.c_str(), mine.c_str(), limit.c_str(),
                vs_limit.c_str(), py.c_str(), vs_py.c_str(), jl.c_str(), vs_jl.c_str());
}

/// CPU model, CPUs, kernel, compiler, load average: printed with the tables.
std::string machine_line() {
    std::string model = "unknown CPU";
    std::ifstream ci("/proc/cpuinfo");
    for (std::string line; std::getline(ci, line);) {
        if (line.rfind("model name", 0) == 0) {
            model = line.substr(line.find(':') + 2);
            break;
        }
    }
    utsname u{};
    std::string kernel = ::uname(&u) == 0 ? std::string(u.sysname) + " " + u.release : "unknown kernel";
#if defined(__clang__)
    std::string compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
    std::string compiler = "g++ " __VERSION__;
#else
    std::string compiler = "unknown compiler";
#endif
    return model + ", " + std::to_string(std::thread::hardware_concurrency()) + " CPUs, " + kernel + ", " + compiler;
}

std::string load_average() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    if (!(f >> a >> b >> c)) return "n/a";
    return a + " " + b + " " + c;
}

void print_report(const config& c, const results& r) {
    const auto& s = c.sizes;
    constexpr auto sched = static_cast<std::size_t>(placement::scheduler);
    std::printf("\n## procpool_bench%s\n\n", c.quick ? " --quick (smoke sizes: the figures mean nothing)" : "");
    std::printf("Machine: %s. Load average before / after the run: %s / %s. Duration: %.0f s.\n\n",
                machine_line().c_str(), r.load_before.c_str(), load_average().c_str(), r.seconds);
    std::printf("Python peer: %s (Python %s, joblib %s, default start method %s)\n\n",
                r.python_used.empty() ? "not run" : r.python_used.c_str(), py_str(r, "python").c_str(),
                py_str(r, "joblib").c_str(), py_str(r, "start_method").c_str());

    std::printf("### Physical limits (this machine, this run)\n\n");
    std::printf("| limit | median | p99 |\n|---|---:|---:|\n");
    for (auto p : placements) {
        auto i = static_cast<std::size_t>(p);
        std::printf("| 1-byte round trip, pipe, forked child, %s | %s | %s |\n", placement_name(p),
                    us_str(r.pipe_rtt[i].median_us).c_str(), us_str(r.pipe_rtt[i].p99_us).c_str());
    }
    for (auto p : placements) {
        auto i = static_cast<std::size_t>(p);
        std::printf("| 1-byte round trip, socketpair, forked child, %s | %s | %s |\n", placement_name(p),
                    us_str(r.sock_rtt[i].median_us).c_str(), us_str(r.sock_rtt[i].p99_us).c_str());
    }
    std::printf("| fork + _exit + waitpid | %s | %s |\n", us_str(r.fork_cost.median_us).c_str(),
                us_str(r.fork_cost.p99_us).c_str());
    std::printf("| posix_spawn of this executable to a first byte back | %s | %s |\n",
                us_str(r.spawn_cost.median_us).c_str(), us_str(r.spawn_cost.p99_us).c_str());
    std::printf("| memcpy, %zu MiB | %s | |\n", c.payload / MiB, gbps_str(r.memcpy_gbps).c_str());
    std::printf("| socketpair to a forked child, %zu MiB | %s | |\n\n", c.payload / MiB, gbps_str(r.sock_gbps).c_str());

    std::printf("### procpool against the limits and against Python\n\n");
    std::printf("Ratios are procpool / reference for the figure in that row: for times lower is better, for rates "
                "higher is better. P1 round trips are interleaved with the raw socketpair round trips they are "
                "compared with.\n\n");
    std::printf("| figure | procpool | limit | procpool / limit | Python | procpool / Python | joblib | procpool / "
                "joblib |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    double ppe = py_num(r, "p1_ppe_median_us"), apply = py_num(r, "p1_pool_apply_median_us");
    double jl = py_num(r, "p1_joblib_median_us");
    for (auto p : placements) {
        auto i = static_cast<std::size_t>(p);
        bool first = p == placement::scheduler;
        row(std::string("P1 round trip, median, ") + placement_name(p) +
                (first ? " (Python: ProcessPoolExecutor.submit().result())" : ""),
            us_str(r.p1[i].median_us), us_str(r.sock_rtt[i].median_us), ratio(r.p1[i].median_us, r.sock_rtt[i].median_us),
            first ? us_str(ppe) : "", first ? ratio(r.p1[i].median_us, ppe) : "", first ? us_str(jl) : "",
            first ? ratio(r.p1[i].median_us, jl) : "");
    }
    row("P1 round trip, median, scheduler's choice (Python: Pool.apply)", us_str(r.p1[sched].median_us), "", "",
        us_str(apply), ratio(r.p1[sched].median_us, apply));
    row("P1 round trip, p99, scheduler's choice (Python: ProcessPoolExecutor)", us_str(r.p1[sched].p99_us),
        us_str(r.sock_rtt[sched].p99_us), ratio(r.p1[sched].p99_us, r.sock_rtt[sched].p99_us),
        us_str(py_num(r, "p1_ppe_p99_us")), ratio(r.p1[sched].p99_us, py_num(r, "p1_ppe_p99_us")),
        us_str(py_num(r, "p1_joblib_p99_us")), ratio(r.p1[sched].p99_us, py_num(r, "p1_joblib_p99_us")));
    for (int i = 0; i < 3; ++i) {
        auto n = std::to_string(s[i]);
        double py = py_num(r, "p2_imap1_" + n), j = py_num(r, "p2_joblib_" + n);
        row("P2 " + count_str(s[i]) + " tasks, one submit each (Python: Pool.imap_unordered(chunksize=1); joblib: "
                                      "Parallel, one delayed call each)",
            rate_str(r.p2_each[i]), "", "", rate_str(py), ratio(r.p2_each[i], py), rate_str(j), ratio(r.p2_each[i], j));
    }
    for (int i = 0; i < 3; ++i) {
        double py = py_num(r, "p2_map1000_" + std::to_string(s[i]));
        row("P2 " + count_str(s[i]) + " tasks, map, automatic chunks (Python: Pool.map(chunksize=1000))",
            rate_str(r.p2_map[i]), "", "", rate_str(py), ratio(r.p2_map[i], py));
    }
    {
        double py = py_num(r, "p2_ppe_" + std::to_string(s[0]));
        row("P2 " + count_str(s[0]) + " tasks, one submit each (Python: ProcessPoolExecutor.submit each)",
            rate_str(r.p2_each[0]), "", "", rate_str(py), ratio(r.p2_each[0], py));
    }
    row("P2 per-task cost at " + count_str(s[2]) + " / at " + count_str(s[1]) + ", one submit each",
        ratio(r.p2_each[1], r.p2_each[2]), "", "");
    row("P2 per-task cost at " + count_str(s[2]) + " / at " + count_str(s[1]) + ", map", ratio(r.p2_map[1], r.p2_map[2]),
        "", "");
    double two_forks = 2 * r.fork_cost.median_us / 1000, spawn_ms = r.spawn_cost.median_us / 1000;
    row("P3 fork pool of 2, constructed until the first result (limit: 2 x fork)", ms_str(r.p3_fork_ms),
        ms_str(two_forks), ratio(r.p3_fork_ms, two_forks), ms_str(py_num(r, "p3_fork_ms")),
        ratio(r.p3_fork_ms, py_num(r, "p3_fork_ms")));
    row("P3 spawn pool of 2, constructed until the first result (limit: posix_spawn to a first byte)",
        ms_str(r.p3_spawn_ms), ms_str(spawn_ms), ratio(r.p3_spawn_ms, spawn_ms), ms_str(py_num(r, "p3_spawn_ms")),
        ratio(r.p3_spawn_ms, py_num(r, "p3_spawn_ms")));
    row("P3 forkserver pool of 2, constructed until the first result (limit: posix_spawn to a first byte + 2 x fork)",
        ms_str(r.p3_forkserver_ms), ms_str(spawn_ms + two_forks), ratio(r.p3_forkserver_ms, spawn_ms + two_forks),
        ms_str(py_num(r, "p3_forkserver_ms")), ratio(r.p3_forkserver_ms, py_num(r, "p3_forkserver_ms")));
    double py4 = py_num(r, "p4_ppe_gbps"), jl4 = py_num(r, "p4_joblib_gbps");
    row("P4 " + std::to_string(c.payload / MiB) +
            " MiB std::vector<std::byte> argument, size returned (limit: socketpair; Python: ProcessPoolExecutor)",
        gbps_str(r.p4_gbps), gbps_str(r.sock_gbps), ratio(r.p4_gbps, r.sock_gbps), gbps_str(py4), ratio(r.p4_gbps, py4),
        gbps_str(jl4), ratio(r.p4_gbps, jl4));
    row("P4 (limit: memcpy; Python: Pool.apply)", gbps_str(r.p4_gbps), gbps_str(r.memcpy_gbps),
        ratio(r.p4_gbps, r.memcpy_gbps), gbps_str(py_num(r, "p4_pool_apply_gbps")),
        ratio(r.p4_gbps, py_num(r, "p4_pool_apply_gbps")));
    double py_base = py_num(r, "p5_baseline_rss");
    double added = r.spawn_worker.rss - r.baseline.rss;
    row("P5 idle spawn worker, RSS (limit: an idle spawned copy of the executable; Python: idle spawn worker, "
        "baseline: the interpreter idling in the peer script)",
        mib(r.spawn_worker.rss), mib(r.baseline.rss), plus_mib(added), mib(py_num(r, "p5_spawn_worker_rss")),
        "baseline " + mib(py_base) + ", " + plus_mib(py_num(r, "p5_spawn_worker_rss") - py_base));
    row("P5 idle spawn worker, private memory (USS)", mib(r.spawn_worker.uss), mib(r.baseline.uss),
        plus_mib(r.spawn_worker.uss - r.baseline.uss), mib(py_num(r, "p5_spawn_worker_uss")));
    row("P5 idle fork worker, RSS / USS (RSS counts pages shared with the parent)",
        mib(r.fork_worker.rss) + " / " + mib(r.fork_worker.uss), "", "",
        mib(py_num(r, "p5_fork_worker_rss")) + " / " + mib(py_num(r, "p5_fork_worker_uss")));
    row("P5 idle spawn worker after one " + std::to_string(c.payload / MiB) + " MiB task, RSS",
        mib(r.worker_after_payload.rss), mib(r.baseline.rss), plus_mib(r.worker_after_payload.rss - r.baseline.rss));
    double py_q = py_num(r, "p5_ppe_parent_rss_per_queued") * 100000;
    row("P5 parent, per 100k queued tasks: RSS (heap in use) (Python: ProcessPoolExecutor, RSS)",
        mib(r.queued.rss_per_task * 100000) + " (" + mib(r.queued.heap_per_task * 100000) + ")", "", "", mib(py_q),
        ratio(r.queued.rss_per_task * 100000, py_q));
    std::printf("\n");

    // ---- the targets
    struct target_line {
        std::string what, value, verdict;
    };
    std::vector<target_line> t;
    auto add = [&](std::string what, double v, double bound, bool at_most, const char* f) {
        t.push_back({std::move(what), fmt(f, v), verdict(v, bound, at_most)});
    };
    for (auto p : placements) {
        auto i = static_cast<std::size_t>(p);
        add(std::string("P1 median <= 1.3x raw socketpair round trip, ") + placement_name(p),
            r.p1[i].median_us / r.sock_rtt[i].median_us, 1.3, true, "%.2fx");
    }
    add("P2 one submit each (" + count_str(s[1]) + ") >= 15x Pool.imap_unordered(chunksize=1)",
        r.p2_each[1] / py_num(r, "p2_imap1_" + std::to_string(s[1])), 15, false, "%.1fx");
    add("P2 map (" + count_str(s[1]) + ") >= 1.5x Pool.map(chunksize=1000)",
        r.p2_map[1] / py_num(r, "p2_map1000_" + std::to_string(s[1])), 1.5, false, "%.2fx");
    add("P2 per-task cost at " + count_str(s[2]) + " <= 1.2x at " + count_str(s[1]) + ", one submit each",
        r.p2_each[1] / r.p2_each[2], 1.2, true, "%.2fx");
    add("P2 per-task cost at " + count_str(s[2]) + " <= 1.2x at " + count_str(s[1]) + ", map",
        r.p2_map[1] / r.p2_map[2], 1.2, true, "%.2fx");
    add("P3 fork pool ready <= 3x (2 workers x raw fork)", r.p3_fork_ms / two_forks, 3, true, "%.2fx");
    add("P3 spawn pool ready <= 1.5x raw posix_spawn to a first byte", r.p3_spawn_ms / spawn_ms, 1.5, true, "%.2fx");
    add("P4 >= 5x ProcessPoolExecutor", r.p4_gbps / py4, 5, false, "%.1fx");
    add("P4 >= 60% of raw socketpair throughput", 100 * r.p4_gbps / r.sock_gbps, 60, false, "%.0f%%");
    add("P5 idle worker adds <= 2 MiB over the executable's baseline", added / static_cast<double>(MiB), 2, true,
        "%+.2f MiB");
    if (c.want("ac")) {
        // Linear means the time per future stays flat from 1k to 100k (the last column near 1.0x).
        std::printf("### as_completed (tiny tasks, 2 workers)\n\n| futures | submit | as_completed | per future | "
                    "per future vs %s |\n|---:|---:|---:|---:|---:|\n",
                    count_str(c.ac_sizes[0]).c_str());
        const double first = r.ac[0].drain_ms / static_cast<double>(c.ac_sizes[0]);
        for (int i = 0; i < 3; ++i) {
            const double each = r.ac[i].drain_ms / static_cast<double>(c.ac_sizes[i]);
            std::printf("| %s | %s | %s | %s | %s |\n", count_str(c.ac_sizes[i]).c_str(), ms_str(r.ac[i].submit_ms).c_str(),
                        ms_str(r.ac[i].drain_ms).c_str(), us_str(each * 1e3).c_str(), ratio(each, first).c_str());
        }
        std::printf("\n");
    }
    if (c.want("lazy")) {
        // Flat means the imap row stays at a few MiB whatever the item count; map holds every result.
        std::printf("### Parent memory over a lazy map (tiny tasks, 2 workers, chunksize 1000)\n\n| call | items | "
                    "parent RSS growth | time |\n|---|---:|---:|---:|\n");
        std::printf("| `imap`, max_in_flight 16000 | %s | %s | %s |\n", count_str(c.lazy_items).c_str(),
                    fmt("%+.1f MiB", r.lazy.imap_growth / static_cast<double>(MiB)).c_str(),
                    fmt("%.2f s", r.lazy.imap_seconds).c_str());
        std::printf("| `map` (every result held) | %s | %s | %s |\n\n", count_str(c.lazy_items).c_str(),
                    fmt("%+.1f MiB", r.lazy.map_growth / static_cast<double>(MiB)).c_str(),
                    fmt("%.2f s", r.lazy.map_seconds).c_str());
    }
    std::printf("### Targets\n\n| target | measured | status |\n|---|---:|---|\n");
    for (auto& x : t) std::printf("| %s | %s | %s |\n", x.what.c_str(), x.value.c_str(), x.verdict.c_str());
    std::printf("\n");
    std::fflush(stdout);
}

void run_python(const config& c, results& r, const char* argv0) {
    if (!c.python) return;
    auto py = pick_python(c.python_path);
    auto peer = find_peer_script(c.peer_path, argv0);
    if (!py || peer.empty()) {
        progress("Python peer not run (%s): Python figures are n/a", !py ? "no python3 found" : "python_peer.py not found");
        return;
    }
    auto n = [](std::size_t v) { return std::to_string(v); };
    std::string only;
    for (auto [name, fig] : {std::pair{"p1", "1"}, {"p2", "2"}, {"p3", "3"}, {"p4", "4"}, {"p5", "5"}})
        if (c.want(name)) only += (only.empty() ? "" : ",") + std::string(fig);
    if (only.empty()) return;
    std::vector<std::string> args{*py,
                                  peer,
                                  "--only",
                                  only,
                                  "--sizes",
                                  n(c.sizes[0]) + "," + n(c.sizes[1]) + "," + n(c.sizes[2]),
                                  "--p1",
                                  n(static_cast<std::size_t>(c.p1_iters)),
                                  "--payload-mib",
                                  n(c.payload / MiB),
                                  "--queued",
                                  n(c.queued),
                                  "--imap-max",
                                  n(c.sizes[1]),
                                  "--p3-reps",
                                  c.quick ? "1" : "7",
                                  "--p4-reps",
                                  c.quick ? "2" : "5"};
    progress("Python peer: %s %s", py->c_str(), peer.c_str());
    std::string out;
    int rc = run_capture(args, out, c.quick ? 120000 : 900000);
    auto pos = out.rfind("\n{");
    auto obj = parse_flat_json(out.substr(pos == std::string::npos ? 0 : pos + 1));
    if (rc != 0 || !obj) {
        progress("Python peer failed (exit %d); Python figures are n/a", rc);
        return;
    }
    r.py = std::move(*obj);
    r.python_used = *py;
}

int usage(const char* argv0, int code) {
    std::fprintf(code ? stderr : stdout,
                 "usage: %s [--quick] [--python PATH | --no-python] [--peer PATH] [--only LIST]\n"
                 "  --quick      smoke run: tiny sizes, the same tables (the figures mean nothing)\n"
                 "  --python     interpreter for the Python peer (default: the first python3 that imports joblib)\n"
                 "  --no-python  skip the Python peer (Python figures are n/a)\n"
                 "  --peer       path of python_peer.py (default: found next to the sources or the binary)\n"
                 "  --only       comma-separated subset of limits,p1,p2,p3,p4,p5,ac (e.g. for perf record;\n"
                 "               ac: as_completed over 1k/10k/100k futures; lazy: parent memory over a 10M-item\n"
                 "               imap)\n",
                 argv0);
    return code;
}

} // namespace

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv); // spawned pool workers re-run this binary and serve here

    // Copies of this executable started by the benchmark itself (descriptor 3 is a socket to the bench).
    if (argc >= 2 && std::strcmp(argv[1], "--bench-first-byte") == 0) {
        char b = 1;
        return ::write(3, &b, 1) == 1 ? 0 : 1;
    }
    if (argc >= 2 && std::strcmp(argv[1], "--bench-idle") == 0) {
        char b = 1;
        if (::write(3, &b, 1) != 1) return 1;
        while (::read(3, &b, 1) > 0) {
        }
        return 0;
    }
    if (argc >= 3 && std::strcmp(argv[1], "--bench-queue-mem") == 0)
        return queue_mem_child(static_cast<std::size_t>(std::strtoull(argv[2], nullptr, 10)));
    if (argc >= 4 && std::strcmp(argv[1], "--bench-lazy-mem") == 0)
        return lazy_mem_child(static_cast<std::size_t>(std::strtoull(argv[2], nullptr, 10)),
                              std::strcmp(argv[3], "map") == 0);

    config c;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--quick") c.quick = true;
        else if (a == "--no-python") c.python = false;
        else if (a == "--python" && i + 1 < argc) c.python_path = argv[++i];
        else if (a == "--peer" && i + 1 < argc) c.peer_path = argv[++i];
        else if (a == "--only" && i + 1 < argc) c.only = argv[++i];
        else if (a == "--help" || a == "-h") return usage(argv[0], 0);
        else return usage(argv[0], 2);
    }
    if (c.quick) {
        c.sizes[0] = 100;
        c.sizes[1] = 1000;
        c.sizes[2] = 10000;
        c.p1_iters = c.pipe_iters = 300;
        c.fork_iters = 20;
        c.spawn_iters = 3;
        c.p3_reps = 1;
        c.payload = 4 * MiB;
        c.payload_reps = 2;
        c.queued = 10000;
        c.ac_sizes[0] = 100;
        c.ac_sizes[1] = 1000;
        c.ac_sizes[2] = 10000;
        c.lazy_items = 100000;
    }
    ::signal(SIGPIPE, SIG_IGN);
    auto t_start = clk::now();
    results r;
    r.load_before = load_average();
    bool two = can_pin_two();
    auto placed = [&](placement p) { return p == placement::scheduler || two; };

    // Limits first, while this process is small (fork cost grows with the parent's mappings).
    if (c.want("limits")) {
        progress("limits: pipe round trips (%d per placement)", c.pipe_iters);
        for (auto p : placements)
            if (placed(p)) r.pipe_rtt[static_cast<std::size_t>(p)] = raw_pipe_round_trip(p, c.pipe_iters);
        progress("limits: fork (%d), posix_spawn to a first byte (%d)", c.fork_iters, c.spawn_iters);
        r.fork_cost = raw_fork(c.fork_iters);
        r.spawn_cost = raw_spawn_first_byte(c.spawn_iters);
    }
    // P3 next, in the same small state as the raw fork above.
    if (c.want("p3")) {
        progress("P3: pool start, fork, spawn and forkserver (%d each)", c.p3_reps);
        r.p3_fork_ms = pool_start_ms(procpool::start_method::fork, c.p3_reps);
        r.p3_spawn_ms = pool_start_ms(procpool::start_method::spawn, c.p3_reps);
        r.p3_forkserver_ms = pool_start_ms(procpool::start_method::forkserver, c.p3_reps);
    }
    if (c.want("p5")) {
        progress("P5: idle worker memory");
        r.baseline = idle_baseline();
        for (auto m : {procpool::start_method::spawn, procpool::start_method::fork}) {
            procpool::pool pool{{.workers = 2, .start = m}};
            for (int i = 0; i < 100; ++i) pool.submit<tiny>(i).get();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            (m == procpool::start_method::spawn ? r.spawn_worker : r.fork_worker) = worker_memory(pool);
        }
    }
    if (c.want("p1") || c.want("p2")) {
        procpool::pool pool{{.workers = 2}};
        if (c.want("p1")) {
            for (auto p : placements) {
                if (!placed(p)) continue;
                progress("P1: %d round trips, interleaved with as many raw socketpair round trips, %s", c.p1_iters,
                         placement_name(p));
                auto rt = p1_round_trips(pool, p, c.p1_iters);
                r.sock_rtt[static_cast<std::size_t>(p)] = rt.raw;
                r.p1[static_cast<std::size_t>(p)] = rt.pool;
            }
        }
        if (c.want("p2")) {
            for (int i = 0; i < 3; ++i) {
                std::size_t n = c.sizes[i];
                int reps = c.quick ? 1 : static_cast<int>(std::clamp<std::size_t>(c.sizes[1] * 10 / n, 3, 15));
                progress("P2: %zu tasks, one submit each and map (%d runs each)", n, reps);
                r.p2_each[i] = median_rate([&] { return submit_each_rate(pool, n); }, reps);
                r.p2_map[i] = median_rate([&] { return map_rate(pool, n); }, reps);
            }
        }
    }
    if (c.want("ac")) {
        procpool::pool pool{{.workers = 2}};
        for (int i = 0; i < 3; ++i) {
            progress("as_completed: %zu futures", c.ac_sizes[i]);
            r.ac[i] = as_completed_ms(pool, c.ac_sizes[i]);
            progress("as_completed: %zu futures: submit %.1f ms, as_completed %.1f ms", c.ac_sizes[i],
                     r.ac[i].submit_ms, r.ac[i].drain_ms);
        }
    }
    if (c.want("lazy")) {
        progress("lazy map: parent memory over %zu items (imap, then map), in a fresh process", c.lazy_items);
        r.lazy = lazy_map_memory(c.lazy_items, true);
    }
    if (c.want("p4")) {
        procpool::pool pool{{.workers = 2}};
        progress("P4: %zu MiB argument (%d runs)", c.payload / MiB, c.payload_reps);
        r.p4_gbps = payload_gbps(pool, c.payload, c.payload_reps);
        if (c.want("p5")) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            r.worker_after_payload = worker_memory(pool);
        }
    }
    if (c.want("p5")) {
        progress("P5: parent memory per queued task (%zu tasks, in a fresh process)", c.queued);
        r.queued = queued_memory(c.queued);
    }
    if (c.want("limits")) {
        progress("limits: memcpy and socketpair throughput, %zu MiB", c.payload / MiB);
        r.memcpy_gbps = raw_memcpy_gbps(c.payload, c.payload_reps);
        r.sock_gbps = raw_socket_gbps(c.payload, c.payload_reps);
    }
    progress("procpool figures done in %.1f s", seconds_since(t_start));
    run_python(c, r, argv[0]);
    r.seconds = seconds_since(t_start);
    progress("total %.1f s", r.seconds);
    print_report(c, r);
    return 0;
}
