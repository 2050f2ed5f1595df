// SPDX-License-Identifier: BSL-1.0
// tests/shared_memory_test.cpp: shared_buffer / shared_array as task arguments and results: writes seen both ways,
// one mapping per worker, read-only views, lifetime across crashes and a killed parent, bad handles. On Windows the
// memory reaches a worker as a handle duplicated into its process; the /dev/shm and /proc counting is POSIX's.
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#if PROCPOOL_POSIX
#include <csignal>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#elif PROCPOOL_WINDOWS
#include <procpool/platform/windows/win32.hpp>
#endif

using procpool::shared_array;
using procpool::shared_buffer;

namespace shm_t {

// Multiplies every element in place; returns how many it saw.
std::size_t shm_scale(shared_array<double> a, double k) {
    for (auto& x : a) x *= k;
    return a.size();
}

double shm_sum(shared_array<const double> a) { return std::accumulate(a.begin(), a.end(), 0.0); }

// Where the worker sees the elements (in_process: the parent's own).
std::uint64_t shm_address(shared_array<const double> a) { return reinterpret_cast<std::uintptr_t>(a.data()); }

// Bytes: fills with a value and returns the same buffer (a result that is a buffer the worker received).
shared_buffer shm_fill(shared_buffer b, int v) {
    for (auto& x : b.bytes()) x = static_cast<std::byte>(v);
    return b;
}

// A buffer the worker made itself: the parent cannot map it.
shared_array<int> shm_make(int n) {
    auto a = shared_array<int>::create(static_cast<std::size_t>(n));
    for (auto& x : a) x = 7;
    return a;
}

// How many mappings this process has made.
std::uint64_t shm_maps_made() { return procpool::detail::shared_table::instance().maps(); }

int shm_twice(int x) { return 2 * x; }

// Whether this process still maps a buffer's memory at `addr` (where shm_address saw it).
bool shm_mapped_at(std::uint64_t addr) {
#if PROCPOOL_WINDOWS
    MEMORY_BASIC_INFORMATION mbi{};
    const auto* p = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(addr));
    return ::VirtualQuery(p, &mbi, sizeof mbi) && mbi.Type == MEM_MAPPED && mbi.AllocationBase == p;
#else
    std::ifstream in("/proc/self/maps");
    for (std::string line; std::getline(in, line);)
        if (line.find("procpool-shm") != std::string::npos && std::stoull(line, nullptr, 16) == addr) return true;
    return false;
#endif
}

// Writes through a read-only view: the worker must crash.
int shm_write_const(shared_array<const int> a) {
#if PROCPOOL_POSIX
    std::signal(SIGSEGV, SIG_DFL); // a fork worker inherits the test runner's handler, which would report it
#endif
    const_cast<int*>(a.data())[0] = 42;
    return a[0];
}

// Tries to make a read-only view writable: refused (its descriptor, or handle, is read-only too).
int shm_mprotect_const(shared_array<const int> a) {
#if PROCPOOL_WINDOWS
    DWORD old = 0;
    return ::VirtualProtect(const_cast<int*>(a.data()), 4096, PAGE_READWRITE, &old) ? 0 : -1;
#else
    return ::mprotect(const_cast<int*>(a.data()), 4096, PROT_READ | PROT_WRITE);
#endif
}

#if PROCPOOL_WINDOWS
// File-mapping handles open in this process: the handles that can be mapped (GetProcessHandleCount says 0 under
// wine, so each small handle value is tried).
int shm_mapping_handles() {
    int n = 0;
    for (std::uintptr_t v = 4; v < (1u << 16); v += 4) {
        auto h = reinterpret_cast<HANDLE>(v);
        DWORD flags = 0;
        if (!::GetHandleInformation(h, &flags)) continue;
        if (void* p = ::MapViewOfFile(h, FILE_MAP_READ, 0, 0, 0)) {
            ++n;
            ::UnmapViewOfFile(p);
        }
    }
    return n;
}
#endif

#if PROCPOOL_POSIX
// Lines of /proc/self/maps that map a buffer's memory (the memfd's name), in the process that runs it.
int shm_mapped_here() {
    std::ifstream in("/proc/self/maps");
    int n = 0;
    for (std::string line; std::getline(in, line);)
        if (line.find("procpool-shm") != std::string::npos) ++n;
    return n;
}

void shm_abort(shared_array<double> a) {
    a[0] = -1;
    std::abort();
}

// Marks the array, then blocks on a gate (until its process is killed).
int shm_hold(shared_array<int> a, std::string gate) {
    __atomic_store_n(&a[0], 1, __ATOMIC_RELEASE); // (libc++ 14 has no std::atomic_ref)
    return ppt::wait_on_gate(gate);
}

/// Entries in /dev/shm (named POSIX shared memory; a memfd never appears there).
int dev_shm_entries() {
    DIR* d = ::opendir("/dev/shm");
    if (!d) return 0;
    int n = 0;
    while (auto* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
}

/// The inode of the memory behind `p` in this process's mappings, or 0.
unsigned long long inode_of(const void* p) {
    std::ifstream in("/proc/self/maps");
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    for (std::string line; std::getline(in, line);) {
        unsigned long long lo = 0, hi = 0, off = 0, ino = 0;
        char perms[8], dev[16];
        if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %15s %llu", &lo, &hi, perms, &off, dev, &ino) == 6 && a >= lo &&
            a < hi)
            return ino;
    }
    return 0;
}

/// Mappings of memfd inode `ino` in every process of this machine that this user can read.
int mappings_of_inode(unsigned long long ino) {
    int n = 0;
    DIR* d = ::opendir("/proc");
    if (!d) return -1;
    const std::string needle = " " + std::to_string(ino) + " ";
    while (auto* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream in("/proc/" + std::string(e->d_name) + "/maps");
        for (std::string line; std::getline(in, line);)
            if (line.find("memfd:procpool-shm") != std::string::npos && line.find(needle) != std::string::npos) ++n;
    }
    ::closedir(d);
    return n;
}

/// Waits (at most 30 s) until `pred` holds, checking every 10 ms: for processes that die on their own time.
template <class F>
bool eventually(F pred) {
    for (int i = 0; i < 3000; ++i) {
        if (pred()) return true;
        ::usleep(10000);
    }
    return pred();
}
#endif

/// what() of the E that f throws ("" when it throws nothing or something else).
template <class E, class F>
std::string what_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (...) {
    }
    return "";
}

procpool::pool_options opts(procpool::start_method m, std::size_t workers = 2) {
    procpool::pool_options o;
    o.workers = workers;
    o.start = m;
    return o;
}

} // namespace shm_t

using namespace shm_t;
PROCPOOL_TASK(shm_scale);
PROCPOOL_TASK(shm_sum);
PROCPOOL_TASK(shm_address);
PROCPOOL_TASK(shm_fill);
PROCPOOL_TASK(shm_make);
PROCPOOL_TASK(shm_maps_made);
PROCPOOL_TASK(shm_twice);
PROCPOOL_TASK(shm_mapped_at);
PROCPOOL_TASK(shm_write_const);
PROCPOOL_TASK(shm_mprotect_const);
#if PROCPOOL_WINDOWS
PROCPOOL_TASK(shm_mapping_handles);
#endif
#if PROCPOOL_POSIX
PROCPOOL_TASK(shm_mapped_here);
PROCPOOL_TASK(shm_abort);
PROCPOOL_TASK(shm_hold);
#endif

TEST_CASE("shared_array: a handle of a few bytes whatever the size", "[shm]") {
    auto small = shared_array<double>::create(10);
    auto large = shared_array<double>::create(std::size_t{1} << 24); // 128 MiB, untouched
    CHECK(procpool::encode(small).size() == procpool::encode(large).size());
    CHECK(procpool::encode(large).size() < 32);
    CHECK(large.size() == std::size_t{1} << 24);
    CHECK(small[9] == 0.0); // new memory is zeroed
    shared_array<const double> view = small;
    CHECK(view.data() == small.data());
    CHECK(std::span<const double>(view).size() == 10);
}

TEST_CASE("shared_array: in_process is a plain view of the same memory", "[shm]") {
    procpool::pool p{opts(procpool::start_method::in_process)};
    auto a = shared_array<double>::create(100);
    std::iota(a.begin(), a.end(), 0.0);
    CHECK(p.submit<shm_scale>(a, 2.0).get() == 100);
    CHECK(a[99] == 198.0);
    CHECK(p.submit<shm_address>(a).get() == reinterpret_cast<std::uintptr_t>(a.data()));
    CHECK(p.submit<shm_sum>(a).get() == 9900.0);
}

TEST_CASE("shared_array: writes by a worker are seen by the parent and the parent's by the worker", "[shm]") {
    auto method = GENERATE(from_range(ppt::process_methods));
#if PROCPOOL_POSIX
    // per_task: the worker maps the memory, the fresh process it forks for the task must see the mapping too
    auto isolation = GENERATE(procpool::isolation_mode::per_worker, procpool::isolation_mode::per_task);
#else
    auto isolation = procpool::isolation_mode::per_worker; // per_task forks
#endif
    INFO("start method: " << ppt::name(method) << ", per_task: " << (isolation == procpool::isolation_mode::per_task));
    auto a = shared_array<double>::create(5000); // made before the pool: fork workers still get it by handle
    auto o = opts(method);
    o.isolation = isolation;
    procpool::pool p{o};
    std::iota(a.begin(), a.end(), 1.0);
    CHECK(p.submit<shm_scale>(a, 3.0).get() == 5000);
    CHECK(a[0] == 3.0);
    CHECK(a[4999] == 15000.0);
    a[0] = 100.0; // after the first task: the worker's mapping sees it
    CHECK(p.submit<shm_sum>(a).get() == std::accumulate(a.begin(), a.end(), 0.0));
    CHECK(p.submit<shm_address>(a).get() != 0);

    auto b = shared_buffer::create(3000); // made after the pool started; bytes, and returned as a result
    auto back = p.submit<shm_fill>(b, 5).get();
    CHECK(back.data() == b.data());
    CHECK(b.data()[2999] == std::byte{5});

    // Many buffers at once, through map (chunks).
    std::vector<shared_array<const double>> parts;
    for (int i = 0; i < 40; ++i) {
        auto x = shared_array<double>::create(static_cast<std::size_t>(i) + 1);
        std::fill(x.begin(), x.end(), 1.0);
        parts.push_back(x);
    }
    auto sums = p.map<shm_sum>(parts);
    for (int i = 0; i < 40; ++i) CHECK(sums[static_cast<std::size_t>(i)] == i + 1.0);
}

TEST_CASE("shared_array: sent 1000 times to one worker, mapped there once", "[shm]") {
    procpool::pool p{opts(procpool::start_method::spawn, 1)};
    const auto before = p.submit<shm_maps_made>().get();
    auto a = shared_array<double>::create(1 << 16);
    std::fill(a.begin(), a.end(), 1.0);
    std::vector<procpool::future<double>> fs;
    for (int i = 0; i < 1000; ++i) fs.push_back(p.submit<shm_sum>(a));
    for (auto& f : fs) CHECK(f.get() == 65536.0);
    CHECK(p.submit<shm_maps_made>().get() - before == 1);
#if PROCPOOL_POSIX
    CHECK(p.submit<shm_mapped_here>().get() == 1);
#endif
}

TEST_CASE("shared_array: a worker unmaps a buffer once the parent has dropped it", "[shm]") {
    procpool::pool p{opts(procpool::start_method::spawn, 1)};
    std::uint64_t there = 0;
    {
        auto a = shared_array<double>::create(1 << 20);
        CHECK(p.submit<shm_sum>(a).get() == 0.0);
        there = p.submit<shm_address>(a).get();
        CHECK(p.submit<shm_mapped_at>(there).get()); // cached while the parent holds it
#if PROCPOOL_POSIX
        CHECK(p.submit<shm_mapped_here>().get() == 1);
#endif
    }
    CHECK_FALSE(p.submit<shm_mapped_at>(there).get()); // the parent's drop reached the worker with this task
#if PROCPOOL_POSIX
    CHECK(p.submit<shm_mapped_here>().get() == 0);
    CHECK(shm_mapped_here() == 0);
#endif
}

#if PROCPOOL_POSIX
/// How many mappings of shared buffers process `pid` has.
int shm_mapped_in(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
    int n = 0;
    for (std::string line; std::getline(in, line);)
        if (line.find("procpool-shm") != std::string::npos) ++n;
    return n;
}

TEST_CASE("shared_array: an idle worker unmaps a dropped buffer without waiting for its next task", "[shm][posix]") {
    procpool::pool p{opts(procpool::start_method::spawn, 1)};
    const long worker = p.worker_pids().at(0);
    {
        auto a = shared_array<double>::create(1 << 16);
        CHECK(p.submit<shm_sum>(a).get() == 0.0);
        CHECK(shm_mapped_in(worker) == 1);
    }
    // No task follows: the pool's next round of progress (here pool.poll(), as an event loop calls it) tells the
    // worker, which unmaps it on its own time.
    p.poll();
    const auto bound = std::chrono::steady_clock::now() + std::chrono::seconds(20); // against a hang, not a timing
    int mapped = shm_mapped_in(worker);
    while (mapped != 0 && std::chrono::steady_clock::now() < bound) {
        std::this_thread::yield();
        mapped = shm_mapped_in(worker);
    }
    CHECK(mapped == 0);
    CHECK(p.worker_pids() == std::vector<long>{worker}); // the same worker, idle all along
}
#endif

TEST_CASE("shared_array: encoded by value (for workers on other machines), it decodes as a copy", "[shm]") {
    auto a = shared_array<double>::create(300);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<double>(i) / 4;
    std::vector<procpool::detail::shared_ref> sent;
    std::vector<std::byte> bytes;
    {
        procpool::detail::collect_shared by_value(sent, true);
        bytes = procpool::encode(std::tuple<shared_array<double>, shared_array<const double>>{a, a});
    }
    CHECK(sent.empty()); // nothing to send out of band: the contents are in the frame
    CHECK(bytes.size() >= 2 * a.size() * sizeof(double));
    auto [copy, view] = procpool::decode<std::tuple<shared_array<double>, shared_array<const double>>>(bytes);
    REQUIRE(copy.size() == a.size());
    CHECK(copy.data() != a.data());
    CHECK(std::equal(copy.begin(), copy.end(), a.begin()));
    CHECK(std::equal(view.begin(), view.end(), a.begin()));
    copy[7] = -1;
    CHECK(a[7] == 7.0 / 4);
    // Contents that are not whole elements, or more than the frame holds: refused, nothing mapped.
    auto cut = bytes;
    cut.resize(cut.size() - 9);
    CHECK_THROWS_AS((procpool::decode<std::tuple<shared_array<double>, shared_array<const double>>>(cut)),
                    procpool::protocol_error);
    std::vector<std::byte> one;
    {
        procpool::detail::collect_shared by_value(sent, true);
        one = procpool::encode(a); // 2400 bytes: not a whole number of 7-byte elements
    }
    using seven = std::array<char, 7>;
    CHECK_THROWS_AS(procpool::decode<shared_array<seven>>(one), procpool::protocol_error);
    CHECK(procpool::decode<shared_array<double>>(one).size() == a.size());
}

TEST_CASE("shared_array<const T>: a worker cannot write, and a write fails only that task", "[shm]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{opts(method)};
    auto a = shared_array<int>::create(1024);
    a[0] = 1;
    shared_array<const int> ro = a;
    CHECK(p.submit<shm_mprotect_const>(ro).get() == -1);
    auto bad = p.submit<shm_write_const>(ro);
    std::vector<procpool::future<int>> others;
    for (int i = 0; i < 20; ++i) others.push_back(p.submit<shm_twice>(i));
    CHECK_THROWS_AS(bad.get(), procpool::worker_died);
    for (int i = 0; i < 20; ++i) CHECK(others[static_cast<std::size_t>(i)].get() == 2 * i);
    CHECK(a[0] == 1);
    // The same memory sent writable to the same workers: a separate, writable mapping.
    CHECK(p.submit<shm_scale>(shared_array<double>::create(4), 2.0).get() == 4);
}

#if PROCPOOL_POSIX
TEST_CASE("shared memory: a crashed worker leaves no segment and no mapping", "[shm][crash][posix]") {
    const int shm_before = dev_shm_entries();
    const int maps_before = shm_mapped_here();
    unsigned long long ino = 0;
    int during = 0;
    {
        procpool::pool p{opts(procpool::start_method::spawn, 2)};
        auto a = shared_array<double>::create(1 << 18);
        ino = inode_of(a.data());
        REQUIRE(ino != 0);
        CHECK_THROWS_AS(p.submit<shm_abort>(a).get(), procpool::worker_died);
        CHECK(a[0] == -1.0); // written before the crash
        CHECK(p.submit<shm_sum>(a).get() == -1.0);
        during = mappings_of_inode(ino);
        CHECK(during >= 2); // the parent and a worker
    }
    const int shm_after = dev_shm_entries();
    const int maps_after = shm_mapped_here();
    const int inode_after = mappings_of_inode(ino);
    UNSCOPED_INFO("crashed worker: /dev/shm entries " << shm_before << " -> " << shm_after << ", mappings here "
                                                      << maps_before << " -> " << maps_after
                                                      << ", mappings of the memory in any process " << during << " -> "
                                                      << inode_after);
    CHECK(shm_after == shm_before);
    CHECK(maps_after == maps_before);
    CHECK(inode_after == 0);
    WARN("crashed worker: /dev/shm " << shm_before << " -> " << shm_after << "; maps here " << maps_before << " -> "
                                     << maps_after << "; maps of the memory anywhere " << during << " -> "
                                     << inode_after);
}

TEST_CASE("shared memory: a killed parent leaves no segment and no mapping", "[shm][crash][posix]") {
    const int shm_before = dev_shm_entries();
    ppt::gate g;
    int report[2];
    REQUIRE(::pipe(report) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(report[0]);
        try {
            procpool::pool p{opts(procpool::start_method::spawn, 1)};
            auto a = shared_array<int>::create(1 << 20);
            auto f = p.submit<shm_hold>(a, g.path());
            while (__atomic_load_n(&a[0], __ATOMIC_ACQUIRE) == 0) { // the worker has mapped it
            }
            unsigned long long ino = inode_of(a.data());
            if (::write(report[1], &ino, sizeof ino) != sizeof ino) ::_exit(3);
            ::pause(); // until killed
        } catch (...) {
        }
        ::_exit(2);
    }
    ::close(report[1]);
    unsigned long long ino = 0;
    REQUIRE(::read(report[0], &ino, sizeof ino) == sizeof ino);
    ::close(report[0]);
    const int during = mappings_of_inode(ino);
    CHECK(during >= 2); // the application and its worker
    ::kill(child, SIGKILL);
    int st = 0;
    ::waitpid(child, &st, 0);
    // Its worker dies with it (a lifeline); then nothing maps the memory any more.
    CHECK(eventually([&] { return mappings_of_inode(ino) == 0; }));
    const int shm_after = dev_shm_entries();
    CHECK(shm_after == shm_before);
    WARN("killed parent: /dev/shm " << shm_before << " -> " << shm_after << "; maps of the memory anywhere "
                                    << during << " -> " << mappings_of_inode(ino));
}

#endif

TEST_CASE("shared memory: a worker returning a buffer it did not get is a protocol_error", "[shm]") {
    procpool::pool p{opts(procpool::start_method::spawn, 1)};
#if PROCPOOL_POSIX
    const int maps_before = shm_mapped_here();
#endif
    CHECK_THAT(what_of<procpool::protocol_error>([&] { (void)p.submit<shm_make>(100).get(); }), ppt::has_substring("a worker can return only a buffer it received"));
    CHECK(p.submit<shm_twice>(4).get() == 8); // the pool goes on
#if PROCPOOL_POSIX
    CHECK(shm_mapped_here() == maps_before);
    CHECK(p.submit<shm_mapped_here>().get() == 0); // and the worker kept nothing
#endif
}

TEST_CASE("shared_array::map_file shares a file's contents", "[shm]") {
    ppt::temp_dir dir;
    const auto path = dir.file("table.bin");
    {
        std::vector<double> v(1000);
        std::iota(v.begin(), v.end(), 0.0);
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(double)));
    }
    procpool::pool p{opts(procpool::start_method::spawn, 1)};
    auto ro = shared_array<const double>::map_file(path);
    CHECK(ro.size() == 1000);
    CHECK(p.submit<shm_sum>(ro).get() == 499500.0);
    auto rw = shared_array<double>::map_file(path, procpool::map_mode::read_write);
    CHECK(p.submit<shm_scale>(rw, 2.0).get() == 1000);
    std::ifstream in(path, std::ios::binary);
    std::vector<double> back(1000);
    in.read(reinterpret_cast<char*>(back.data()), static_cast<std::streamsize>(back.size() * sizeof(double)));
    CHECK(back[999] == 1998.0); // the worker wrote through to the file
    CHECK(ro[999] == 1998.0);
    CHECK_THROWS_AS(shared_array<double>::map_file(path, procpool::map_mode::read_only), std::invalid_argument);
    CHECK_THROWS_AS(shared_array<double>::map_file(dir.file("missing")), std::system_error);
    // The path as any of its usual spellings: std::filesystem::path, std::string, a C string.
    CHECK(shared_array<const double>::map_file(std::filesystem::path(path)).size() == 1000);
    CHECK(shared_array<const double>::map_file(path.c_str())[999] == 1998.0);
    CHECK_THROWS_AS(shared_array<const double>::map_file(std::filesystem::path(dir.file("missing"))), std::system_error);
}

TEST_CASE("shared memory: a share frame announcing more memory than it brings is a protocol_error", "[shm]") {
    namespace pd = procpool::detail;
    const auto before = pd::shared_table::instance().maps();
    auto h = procpool::platform::create_shared_memory(4096);
    pd::share_msg m{12345, std::uint64_t{1} << 30, 0};
#if PROCPOOL_WINDOWS
    m.handle = procpool::platform::shm_object_value(h); // the frame names the handle (here: this process's)
#endif
    CHECK_THAT(what_of<procpool::protocol_error>([&] { pd::accept_share(procpool::encode(m), h); }),
               ppt::has_substring("announced as 1073741824 bytes came with memory of"));
    CHECK(pd::shared_table::instance().maps() == before); // nothing mapped; the handle was closed
}

TEST_CASE("shared memory: a handle that names no live mapping, or the wrong size, is a protocol_error", "[shm]") {
    std::vector<std::byte> bytes;
    {
        auto a = shared_array<double>::create(8);
        bytes = procpool::encode(a);
        // The size field (after the 8-byte id) changed: refused, whatever the table holds.
        auto wrong = bytes;
        wrong[8] = std::byte{9};
        CHECK_THAT(what_of<procpool::protocol_error>([&] { (void)procpool::decode<shared_array<double>>(wrong); }), ppt::has_substring("but its handle says"));
        using triple = std::array<double, 3>;
        CHECK_THROWS_AS(procpool::decode<shared_array<triple>>(bytes), procpool::protocol_error);
        CHECK(procpool::decode<shared_array<double>>(bytes).data() == a.data());
        auto ro = procpool::encode(shared_array<const double>(a));
        CHECK_THAT(what_of<procpool::protocol_error>([&] { (void)procpool::decode<shared_array<double>>(ro); }), ppt::has_substring("read-only"));
    }
    CHECK_THAT(what_of<procpool::protocol_error>([&] { (void)procpool::decode<shared_array<double>>(bytes); }), ppt::has_substring("is not mapped in process"));
    CHECK(procpool::decode<shared_buffer>(procpool::encode(shared_buffer{})).empty());
}

#if PROCPOOL_WINDOWS
TEST_CASE("shared memory: a worker closes a buffer's handle once the parent dropped it, and the parent keeps none",
          "[shm][windows]") {
    procpool::pool p{opts(procpool::start_method::spawn, 1)};
    const int worker_before = p.submit<shm_mapping_handles>().get();
    const int parent_before = shm_mapping_handles();
    {
        auto a = shared_array<double>::create(1000);
        shared_array<const double> ro = a;
        CHECK(p.submit<shm_scale>(a, 2.0).get() == 1000);
        CHECK(p.submit<shm_sum>(ro).get() == 0.0);
        CHECK(p.submit<shm_mapping_handles>().get() == worker_before + 2); // the writable and the read-only handle
        CHECK(shm_mapping_handles() == parent_before + 2);                  // the same two, here
    }
    CHECK(p.submit<shm_mapping_handles>().get() == worker_before); // the drop reached the worker with this task
    CHECK(shm_mapping_handles() == parent_before);
}

TEST_CASE("shared memory: a mapping that cannot be handed to a worker fails that task only", "[shm][windows]") {
    procpool::pool p{opts(procpool::start_method::spawn, 1)};
    auto a = shared_array<double>::create(100);
    // Its handle closed behind its back (the view stays): DuplicateHandle into the worker fails.
    const auto wire = procpool::encode(a);
    procpool::reader r(wire);
    auto core = procpool::detail::shared_table::instance().find(r.read<std::uint64_t>(), false);
    REQUIRE(core);
    ::CloseHandle(std::exchange(core->handle, procpool::platform::invalid_shm_object));
    auto f = p.submit<shm_scale>(a, 2.0); // submit returns: the failure is this task's, in its future
    CHECK_THAT(what_of<std::system_error>([&] { (void)f.get(); }),
               ppt::has_substring("DuplicateHandle of a shared buffer's mapping into worker process"));
    auto again = p.submit<shm_sum>(a);
    CHECK_THROWS_AS(again.get(), std::system_error); // not counted as sent: tried again
    CHECK(p.submit<shm_twice>(4).get() == 8); // the pool goes on
    CHECK(p.submit<shm_scale>(shared_array<double>::create(4), 2.0).get() == 4);
}
#endif
