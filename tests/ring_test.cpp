// SPDX-License-Identifier: BSL-1.0
// tests/ring_test.cpp: the result ring (Linux): each worker writes its results into memory it shares with the
// pool (detail/result_ring.hpp), and a frame too large for it goes over the channel in its place. What these
// check: every start method uses it, order holds across the two paths, a full ring makes the worker wait (not
// overwrite), a result published just before a crash still counts, and a corrupt ring is refused.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)

namespace rt {

inline std::vector<std::byte> blob(std::uint32_t n, int seed) {
    std::vector<std::byte> b(n);
    for (std::uint32_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((static_cast<std::uint32_t>(seed) + i) % 251);
    return b;
}
inline int plus_one(int x) { return x + 1; }
[[noreturn]] inline int exit_now(int) { std::_Exit(3); }

// The address of this worker's result ring (its control page), from /proc/self/maps; null when there is none.
inline void* ring_base() {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);)
        if (line.find("procpool-results") != std::string::npos)
            return reinterpret_cast<void*>(std::strtoull(line.c_str(), nullptr, 16));
    return nullptr;
}
inline bool has_ring(int) { return ring_base() != nullptr; }
// How many bytes this worker has published into its ring so far (its head), or -1 when it has no ring.
inline long long ring_published(int) {
    auto* base = ring_base();
    return base ? static_cast<long long>(static_cast<procpool::detail::ring_control*>(base)->head.load()) : -1;
}

// Corrupts the ring, then exits: the parent reads it at the end of stream. how 0: the head moves far past what
// the ring holds; 1: a record of an unknown frame type is published; 2: a result record whose header claims 16
// bytes is published without them.
[[noreturn]] inline int corrupt_ring_and_exit(int how) {
    if (auto* base = ring_base()) {
        auto& c = *static_cast<procpool::detail::ring_control*>(base);
        const auto head = c.head.load();
        if (how == 0) {
            c.head.store(head + 3 * procpool::detail::result_ring_bytes);
        } else {
            auto* data = static_cast<std::byte*>(base) + procpool::platform::ring_control_bytes;
            const auto type = how == 1 ? std::byte{0xEE} : static_cast<std::byte>(procpool::detail::frame_type::result);
            const std::byte record[] = {how == 1 ? std::byte{0} : std::byte{16}, std::byte{0}, std::byte{0}, std::byte{0}, type};
            std::memcpy(data + head % procpool::detail::result_ring_bytes, record, sizeof record);
            c.head.store(head + sizeof record);
        }
    }
    std::_Exit(3);
}

} // namespace rt

PROCPOOL_TASK(rt::blob);
PROCPOOL_TASK(rt::plus_one);
PROCPOOL_TASK(rt::exit_now);
PROCPOOL_TASK(rt::has_ring);
PROCPOOL_TASK(rt::ring_published);
PROCPOOL_TASK(rt::corrupt_ring_and_exit);

using procpool::start_method;

namespace {
int ring_mappings_of(long pid) { // lines of /proc/<pid>/maps: a ring is two (the control page and data, the mirror)
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    int n = 0;
    for (std::string line; std::getline(maps, line);) n += line.find("procpool-results") != std::string::npos;
    return n;
}
} // namespace

TEST_CASE("ring: every start method's workers write results into a shared ring", "[ring]") {
    auto method = GENERATE(start_method::fork, start_method::spawn, start_method::forkserver);
    INFO(ppt::name(method));
    procpool::pool pool{{.workers = 2, .start = method}};
    CHECK(pool.submit<rt::has_ring>(0).get());
    for (long pid : pool.worker_pids()) CHECK(ring_mappings_of(pid) == 2);

    // Mapped is not used: the results between two readings of a worker's head must have gone through the ring,
    // each a record of a frame header and a payload.
    procpool::pool one{{.workers = 1, .start = method}};
    const long long before = one.submit<rt::ring_published>(0).get();
    constexpr int results = 100;
    for (int i = 0; i < results; ++i) REQUIRE(one.submit<rt::plus_one>(i).get() == i + 1);
    const long long after = one.submit<rt::ring_published>(0).get();
    INFO("ring head " << before << " before, " << after << " after");
    REQUIRE(before >= 0);
    // The first reading's own result, then the `results`, were published in between.
    CHECK(after - before >= static_cast<long long>((results + 1) * (procpool::detail::frame_header_size + 1)));
}

TEST_CASE("ring: a forked worker maps its own ring only, not those of the parent's other workers", "[ring]") {
    procpool::pool first{{.workers = 2, .start = start_method::spawn}};
    CHECK(first.submit<rt::plus_one>(0).get() == 1); // the parent maps both of its workers' rings now
    procpool::pool second{{.workers = 1, .start = start_method::fork}}; // its template is forked after that
    CHECK(second.submit<rt::plus_one>(0).get() == 1);
    for (long pid : first.worker_pids()) CHECK(ring_mappings_of(pid) == 2);
    for (long pid : second.worker_pids()) CHECK(ring_mappings_of(pid) == 2);
}

TEST_CASE("ring: large results over the channel keep their order among small ones in the ring", "[ring]") {
    auto method = GENERATE(start_method::fork, start_method::spawn);
    INFO(ppt::name(method));
    procpool::pool pool{{.workers = 2, .start = method}};
    // Above ring_max_record (16 KiB) a result goes over the channel; every third one here does.
    std::vector<procpool::future<std::vector<std::byte>>> fs;
    for (int i = 0; i < 300; ++i)
        fs.push_back(pool.submit<rt::blob>(static_cast<std::uint32_t>(i % 3 == 0 ? 40'000 + i : 1 + i % 50), i));
    for (int i = 0; i < 300; ++i) {
        INFO("task " << i);
        REQUIRE(fs[static_cast<std::size_t>(i)].get() ==
                rt::blob(static_cast<std::uint32_t>(i % 3 == 0 ? 40'000 + i : 1 + i % 50), i));
    }
}

TEST_CASE("ring: a worker whose ring is full waits for the pool to read it", "[ring]") {
    procpool::pool pool{{.workers = 1, .start = start_method::fork, .prefetch = 128}};
    // 128 results of 15 KiB (each fits the ring) are 7.5 times the ring: with no thread reading while they are
    // submitted, the worker must wait for room instead of overwriting results not yet read.
    std::vector<procpool::future<std::vector<std::byte>>> fs;
    for (int i = 0; i < 128; ++i) fs.push_back(pool.submit<rt::blob>(std::uint32_t{15'000}, i));
    for (int i = 0; i < 128; ++i) {
        INFO("task " << i);
        REQUIRE(fs[static_cast<std::size_t>(i)].get() == rt::blob(15'000, i));
    }
    CHECK(pool.submit<rt::plus_one>(1).get() == 2);
}

TEST_CASE("ring: a result published before its worker crashed still counts", "[ring]") {
    auto method = GENERATE(start_method::fork, start_method::spawn);
    INFO(ppt::name(method));
    procpool::pool pool{{.workers = 1, .start = method}};
    CHECK(pool.submit<rt::plus_one>(0).get() == 1); // the worker is ready, and its ring in use
    const long pid = pool.worker_pids().at(0);
    auto first = pool.submit<rt::plus_one>(41); // both sent at once (the worker takes two jobs ahead)
    auto second = pool.submit<rt::exit_now>(0);
    // No thread reads while the worker answers the first and dies in the second: wait until it is a zombie.
    while (ppt::process_state(pid) != 'Z' && ppt::process_state(pid) != 0) std::this_thread::yield();
    CHECK(first.get() == 42); // read from the ring at the end of stream, not blamed for the crash
    CHECK_THROWS_AS(second.get(), procpool::worker_died);
    CHECK(pool.submit<rt::plus_one>(1).get() == 2);
}

TEST_CASE("ring: a corrupt ring is refused with a specific error and the pool goes on", "[ring]") {
    const int how = GENERATE(0, 1, 2);
    procpool::pool pool{{.workers = 1, .start = start_method::fork}};
    CHECK(pool.submit<rt::plus_one>(0).get() == 1);
    auto f = pool.submit<rt::corrupt_ring_and_exit>(how);
    try {
        (void)f.get();
        FAIL("a corrupt ring went unnoticed");
    } catch (const procpool::protocol_error& e) {
        CHECK_THAT(e.what(), ppt::has_substring(how == 0   ? "the result ring's head"
                                               : how == 1 ? "unknown frame type 238"
                                                          : "a truncated record in the result ring"));
    }
    CHECK(pool.submit<rt::plus_one>(1).get() == 2);
}

#endif // __linux__
