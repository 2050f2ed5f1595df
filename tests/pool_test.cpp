// SPDX-License-Identifier: BSL-1.0
// tests/pool_test.cpp: what a multiprocessing.Pool user does, for every start method: submit/get, map
// (chunked, starmap), map_unordered, as_completed, wait_all, wait_for, cancel, shutdown, and exceptions.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <functional>
#include <list>
#include <future>
#include <map>
#include <memory>
#include <new>
#include <numeric>
#include <ranges>
#include <forward_list>
#include <iterator>
#include <sstream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h> // mallinfo2
#endif

namespace pool_t {

struct point { // an aggregate: encoded field by field through Boost.PFR
    int x;
    double y;
    std::string label;
    std::vector<int> tags;
};

struct owned { // a move-only aggregate
    std::unique_ptr<int> value;
    std::string text;
};

struct custom_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
long get_pid() { return ppt::pid(); }
void touch(std::string path) { ppt::append_line(path, "touched"); }
void fail_if_negative(int x) {
    if (x < 0) throw std::invalid_argument("negative: " + std::to_string(x));
}
std::unique_ptr<int> boxed(int x) { return std::make_unique<int>(x); }
owned make_owned(int x, std::string text) { return owned{std::make_unique<int>(x), std::move(text)}; }
point moved(const point& p, int dx) {
    point q = p;
    q.x += dx;
    q.label += "!";
    q.tags.push_back(dx);
    return q;
}
std::string describe(point p) { return p.label + ":" + std::to_string(p.x) + ":" + std::to_string(p.tags.size()); }
int wait_gate(std::string path, int value) { return ppt::wait_on_gate(path) == 'x' ? value : -value; }
std::uint64_t byte_count(const std::vector<std::byte>& v) { return v.size(); }

// A value whose decoder refuses negative numbers: a way to make a worker fail in the middle of a frame.
struct non_negative {
    double v = 0;
    void procpool_encode(procpool::writer& w) const { w.write(v); }
    static non_negative procpool_decode(procpool::reader& r) {
        non_negative n{r.read<double>()};
        if (n.v < 0) r.fail_invalid("negative value");
        return n;
    }
};
// Large arguments on both sides of smaller ones: a frame larger than the worker's read buffer is decoded while
// it arrives, and every argument must come out whole and in order.
std::string mixed_large(std::string tag, const std::vector<std::byte>& blob, std::vector<double> nums,
                        std::map<int, std::string> names, non_negative n, const std::string& text) {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < blob.size(); i += 4093) sum += std::to_integer<unsigned>(blob[i]) * i;
    double total = std::accumulate(nums.begin(), nums.end(), 0.0);
    // Appended piece by piece: g++ 12 -O3 warns (-Wrestrict) on "literal" + std::string&&.
    std::string out = tag;
    for (auto x : {blob.size(), static_cast<std::size_t>(sum), nums.size(), names.size()}) {
        out += ' ';
        out += std::to_string(x);
    }
    out += ' ';
    out += std::to_string(total);
    for (const auto& [k, v] : names) {
        out += ' ';
        out += std::to_string(k);
        out += '=';
        out += v;
    }
    out += ' ';
    out += std::to_string(text.size());
    out += ':';
    out += text.substr(text.size() - 3);
    out += ' ';
    out += std::to_string(n.v);
    return out;
}
// What a worker hands a const& parameter: its capacity tells a kept buffer (as large as the largest argument so
// far) from a fresh one (as large as this argument).
// The buffer is kept per task (and parameter): the calls that should share one are calls of this task. When
// given gates, it signals `started` once it runs (its frame has been read whole), then waits for `go`.
std::uint64_t kept_capacity(const std::vector<std::byte>& v, std::string started, std::string go) {
    if (!started.empty()) ppt::signal_gate(started);
    if (!go.empty()) ppt::wait_on_gate(go);
    return v.capacity();
}
std::uint64_t fresh_capacity(std::vector<std::byte> v) { return v.capacity(); }
std::uint64_t weighted_sum(const std::vector<std::byte>& v) {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < v.size(); ++i) sum += (i % 7 + 1) * std::to_integer<unsigned>(v[i]);
    return sum;
}
std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) >> 3);
    return v;
}
// Heap bytes in use in this process (glibc), or -1.
long long heap_in_use() {
#if defined(__GLIBC__) && defined(__GLIBC_MINOR__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    auto m = mallinfo2();
    return static_cast<long long>(m.uordblks + m.hblkhd);
#else
    return -1;
#endif
}
long resident_self() { return static_cast<long>(procpool::platform::resident_bytes(::getpid())); }

int throw_out_of_range(std::string m) { throw std::out_of_range(m); }
int throw_invalid_argument(std::string m) { throw std::invalid_argument(m); }
int throw_runtime_error(std::string m) { throw std::runtime_error(m); }
int throw_bad_alloc() { throw std::bad_alloc(); }
int throw_custom(std::string m) { throw custom_failure(m); }
int throw_int() { throw 42; }
int throw_at(int x) {
    if (x == 3) throw std::out_of_range("item " + std::to_string(x));
    return x;
}

} // namespace pool_t

PROCPOOL_TASK(pool_t::square);
PROCPOOL_TASK(pool_t::add);
PROCPOOL_TASK(pool_t::get_pid);
PROCPOOL_TASK(pool_t::touch);
PROCPOOL_TASK(pool_t::fail_if_negative);
PROCPOOL_TASK(pool_t::boxed);
PROCPOOL_TASK(pool_t::make_owned);
PROCPOOL_TASK(pool_t::moved);
PROCPOOL_TASK(pool_t::describe);
PROCPOOL_TASK(pool_t::wait_gate);
PROCPOOL_TASK(pool_t::byte_count);
PROCPOOL_TASK(pool_t::mixed_large);
PROCPOOL_TASK(pool_t::kept_capacity);
PROCPOOL_TASK(pool_t::fresh_capacity);
PROCPOOL_TASK(pool_t::weighted_sum);
PROCPOOL_TASK(pool_t::resident_self);
PROCPOOL_TASK(pool_t::throw_out_of_range);
PROCPOOL_TASK(pool_t::throw_invalid_argument);
PROCPOOL_TASK(pool_t::throw_runtime_error);
PROCPOOL_TASK(pool_t::throw_bad_alloc);
PROCPOOL_TASK(pool_t::throw_custom);
PROCPOOL_TASK(pool_t::throw_int);
PROCPOOL_TASK(pool_t::throw_at);

using namespace pool_t;
using procpool::start_method;

// Tasks that block on a gate run under ppt::process_methods: in_process, submit() runs the task before it returns.

TEST_CASE("submit and get: values, void and move-only results, aggregate arguments", "[pool]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    REQUIRE(p.method() == method);

    SECTION("a value") {
        auto f = p.submit<square>(7);
        REQUIRE(f.valid());
        CHECK(f.task_name() == "pool_t::square");
        CHECK(f.get() == 49);
        CHECK_FALSE(f.valid());
        CHECK(p.submit<add>(2, 40).get() == 42);
    }
    SECTION("void: get() returns once the task ran, and rethrows its exception") {
        ppt::temp_dir dir;
        auto path = dir.file("touched");
        auto f = p.submit<touch>(path);
        static_assert(std::is_void_v<decltype(f.get())>);
        f.get();
        CHECK(ppt::read_lines(path) == std::vector<std::string>{"touched"});
        p.submit<fail_if_negative>(1).get();
        CHECK_THROWS_AS(p.submit<fail_if_negative>(-1).get(), std::invalid_argument);
    }
    SECTION("move-only results") {
        std::unique_ptr<int> b = p.submit<boxed>(5).get();
        REQUIRE(b);
        CHECK(*b == 5);
        owned o = p.submit<make_owned>(9, std::string("nine")).get();
        REQUIRE(o.value);
        CHECK(*o.value == 9);
        CHECK(o.text == "nine");
        auto many = p.map<boxed>(std::vector<int>{1, 2, 3});
        REQUIRE(many.size() == 3);
        for (int i = 0; i < 3; ++i) {
            REQUIRE(many[static_cast<std::size_t>(i)]);
            CHECK(*many[static_cast<std::size_t>(i)] == i + 1);
        }
    }
    SECTION("aggregates as arguments and results (Boost.PFR)") {
        point in{3, 1.5, "pt", {1, 2}};
        point out = p.submit<moved>(in, 4).get();
        CHECK(out.x == 7);
        CHECK(out.y == 1.5);
        CHECK(out.label == "pt!");
        CHECK(out.tags == std::vector<int>{1, 2, 4});
        CHECK(p.submit<describe>(in).get() == "pt:3:2");
    }
}

TEST_CASE("map returns results in input order", "[pool][map]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};

    std::vector<int> in(37);
    std::iota(in.begin(), in.end(), -5);
    std::vector<int> expected;
    for (int x : in) expected.push_back(x * x);

    SECTION("default chunksize") { CHECK(p.map<square>(in) == expected); }
    SECTION("explicit chunksizes") {
        for (std::size_t chunk : {1u, 2u, 5u, 36u, 37u, 100u}) {
            INFO("chunksize " << chunk);
            CHECK(p.map<square>(in, chunk) == expected);
        }
    }
    SECTION("empty input and one element") {
        CHECK(p.map<square>(std::vector<int>{}).empty());
        CHECK(p.map<square>(std::vector<int>{}, 3).empty());
        CHECK(p.map<square>(std::vector<int>{-4}) == std::vector<int>{16});
        CHECK(p.map<square>(std::vector<int>{-4}, 8) == std::vector<int>{16});
    }
    SECTION("any input range: a list, a view") {
        std::list<int> list{3, 1, 2};
        CHECK(p.map<square>(list, 2) == std::vector<int>{9, 1, 4});
#if defined(__cpp_lib_ranges) // libc++ 14 has std::ranges concepts but no views
        auto view = std::views::iota(0, 10) | std::views::transform([](int i) { return 2 * i; });
        std::vector<int> want;
        for (int i = 0; i < 10; ++i) want.push_back(4 * i * i);
        CHECK(p.map<square>(view, 3) == want);
#endif
    }
    SECTION("tuples are unpacked for a two-argument task (starmap)") {
        std::vector<std::tuple<int, int>> pairs;
        std::vector<int> sums;
        for (int i = 0; i < 11; ++i) {
            pairs.emplace_back(i, 100 * i);
            sums.push_back(101 * i);
        }
        CHECK(p.map<add>(pairs) == sums);
        CHECK(p.map<add>(pairs, 4) == sums);
        CHECK(p.map<add>(std::vector<std::pair<int, int>>{{1, 2}, {3, 4}}) == std::vector<int>{3, 7});
    }
    SECTION("a void task") {
        ppt::temp_dir dir;
        auto path = dir.file("touched");
        p.map<touch>(std::vector<std::string>(5, path), 2);
        CHECK(ppt::read_lines(path).size() == 5);
    }
    SECTION("the first failure in input order is thrown") {
        CHECK_THROWS_AS(p.map<throw_at>(std::vector<int>{0, 1, 2, 3, 4, 5}, 2), std::out_of_range);
        CHECK_THROWS_WITH(p.map<throw_at>(std::vector<int>{0, 1, 2, 3, 4, 5}, 1), "item 3");
        // and the pool still works afterwards
        CHECK(p.map<throw_at>(std::vector<int>{0, 1, 2}) == std::vector<int>{0, 1, 2});
    }
}

TEST_CASE("map_unordered yields every result exactly once", "[pool][map]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    for (std::size_t chunk : {0u, 1u, 3u}) {
        INFO("chunksize " << chunk);
        std::vector<int> in(25);
        std::iota(in.begin(), in.end(), 0);
        std::multiset<int> got;
        for (int v : p.map_unordered<square>(in, chunk)) got.insert(v);
        std::multiset<int> want;
        for (int x : in) want.insert(x * x);
        CHECK(got == want);
    }
    std::size_t n = 0;
    for ([[maybe_unused]] int v : p.map_unordered<square>(std::vector<int>{})) ++n;
    CHECK(n == 0);
    std::multiset<int> sums;
    for (int v : p.map_unordered<add>(std::vector<std::tuple<int, int>>{{1, 1}, {2, 2}, {3, 3}})) sums.insert(v);
    CHECK(sums == std::multiset<int>{2, 4, 6});
    // A failing element is thrown when the iteration reaches it.
    auto failing = [&] {
        for ([[maybe_unused]] int v : p.map_unordered<throw_at>(std::vector<int>{0, 1, 2, 3, 4}, 1)) {
        }
    };
    CHECK_THROWS_AS(failing(), std::out_of_range);
}

TEST_CASE("as_completed and wait_all", "[pool][futures]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};

    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 12; ++i) fs.push_back(p.submit<square>(i));
    std::multiset<int> got;
    for (auto& f : procpool::as_completed(fs)) got.insert(f.get());
    std::multiset<int> want;
    for (int i = 0; i < 12; ++i) want.insert(i * i);
    CHECK(got == want);
    for (auto& f : fs) CHECK_FALSE(f.valid());

    std::vector<procpool::future<int>> more;
    for (int i = 0; i < 9; ++i) more.push_back(p.submit<square>(i));
    procpool::wait_all(more);
    for (auto& f : more) CHECK(f.is_ready());
    for (int i = 0; i < 9; ++i) CHECK(more[static_cast<std::size_t>(i)].get() == i * i);
}

TEST_CASE("a future used after get, or never given a task, throws future_error (no_state)", "[pool][futures]") {
    procpool::pool p{{.workers = 1}};
    auto f = p.submit<square>(3);
    CHECK(f.get() == 9);
    CHECK_FALSE(f.valid());
    auto no_state = [](const std::future_error& e) { return e.code() == std::future_errc::no_state; };
    CHECK_THROWS_MATCHES(f.get(), std::future_error, Catch::Matchers::Predicate<std::future_error>(no_state));
    CHECK_THROWS_MATCHES(f.wait(), std::future_error, Catch::Matchers::Predicate<std::future_error>(no_state));
    procpool::future<int> never;
    CHECK_THROWS_MATCHES(never.wait_for(std::chrono::milliseconds(1)), std::future_error,
                         Catch::Matchers::Predicate<std::future_error>(no_state));
    CHECK_THROWS_MATCHES(never.cancel(), std::future_error, Catch::Matchers::Predicate<std::future_error>(no_state));
}

TEST_CASE("as_completed yields a finished task before a blocked one", "[pool][futures]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    ppt::gate g; // after the pool: destroyed first, so a failure cannot leave a task blocked
    std::vector<procpool::future<int>> fs;
    fs.push_back(p.submit<wait_gate>(g.path(), 1)); // one worker blocks
    fs.push_back(p.submit<square>(5));              // the other one is free
    std::vector<int> order;
    for (auto& f : procpool::as_completed(fs)) {
        order.push_back(f.get());
        if (order.size() == 1) g.release();
    }
    CHECK(order == std::vector<int>{25, 1});
}

TEST_CASE("wait_for times out on a blocked task, then sees it finish", "[pool][futures]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    ppt::gate g;
    auto f = p.submit<wait_gate>(g.path(), 7);
    CHECK(f.wait_for(std::chrono::milliseconds(20)) == std::future_status::timeout);
    CHECK_FALSE(f.is_ready());
    CHECK(f.wait_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(1)) ==
          std::future_status::timeout);
    g.release();
    // The long timeout is only a bound against hanging: wait_for returns as soon as the result arrives.
    CHECK(f.wait_for(std::chrono::minutes(5)) == std::future_status::ready);
    CHECK(f.is_ready());
    CHECK(f.get() == 7);
}

// The process methods' cancel and shutdown are tested below with a blocked worker; in_process cannot block.
TEST_CASE("in_process: a task has finished when submit returns (ready, not cancellable), and shutdown closes the pool",
          "[pool][futures][cancel][shutdown]") {
    procpool::pool p{{.start = start_method::in_process}};
    auto f = p.submit<square>(3);
    CHECK(f.is_ready());
    CHECK(f.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
    CHECK_FALSE(f.cancel()); // finished
    CHECK(f.get() == 9);
    p.shutdown();
    CHECK_THROWS_AS(p.submit<square>(1), procpool::pool_closed);
    p.shutdown(procpool::shutdown_mode::cancel_pending); // idempotent
}

TEST_CASE("cancel removes a queued task", "[pool][cancel]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    ppt::temp_dir dir;
    const auto marker = dir.file("cancelled-task-ran");
    procpool::pool p{{.workers = 1, .start = method}};
    ppt::gate g;
    auto blocker = p.submit<wait_gate>(g.path(), 1);
    // The only worker is busy. The pool sends one task ahead to a busy worker (dispatch depth 2: that one is
    // in the worker's channel and can no longer be cancelled), so the second task is not queued; the later are.
    auto ahead = p.submit<square>(2);
    auto queued = p.submit<touch>(marker); // its side effect shows whether it ran
    auto last = p.submit<square>(4);
    CHECK_FALSE(blocker.cancel()); // running
    CHECK(queued.cancel());
    CHECK(queued.is_ready());      // completed at once, as cancelled
    CHECK_FALSE(queued.cancel());  // a second cancel finds nothing to do
    g.release();
    CHECK(blocker.get() == 1);
    CHECK(ahead.get() == 4);
    CHECK_THROWS_AS(queued.get(), procpool::task_cancelled);
    CHECK(last.get() == 16); // the tasks around the cancelled one still run
    // One worker runs its jobs in order: had the cancelled task been left queued, it would have run before `last`.
    CHECK_FALSE(std::filesystem::exists(marker));

    auto done = p.submit<square>(5);
    done.wait();
    CHECK_FALSE(done.cancel()); // finished
    CHECK(done.get() == 25);
}

TEST_CASE("prefetch: a busy worker holds that many jobs, those sent ahead cannot be cancelled, the rest can",
          "[pool][cancel][prefetch]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method, .prefetch = 5}};
    ppt::gate g;
    auto blocker = p.submit<wait_gate>(g.path(), 1);
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 8; ++i) fs.push_back(p.submit<square>(i));
    for (int i = 0; i < 4; ++i) CHECK_FALSE(fs[static_cast<std::size_t>(i)].cancel()); // in the worker's channel
    for (int i = 4; i < 8; ++i) CHECK(fs[static_cast<std::size_t>(i)].cancel());       // still queued
    g.release();
    CHECK(blocker.get() == 1);
    for (int i = 0; i < 4; ++i) CHECK(fs[static_cast<std::size_t>(i)].get() == i * i);
    for (int i = 4; i < 8; ++i) CHECK_THROWS_AS(fs[static_cast<std::size_t>(i)].get(), procpool::task_cancelled);
}

TEST_CASE("many tiny tasks: every result arrives once, in its own future, at any dispatch depth",
          "[pool][prefetch]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    auto prefetch = GENERATE(std::size_t{0}, std::size_t{1}, std::size_t{128});
    INFO("start method: " << ppt::name(method) << ", prefetch " << prefetch);
    procpool::pool p{{.workers = 2, .start = method, .prefetch = prefetch}};
    constexpr int n = 20000;
    std::vector<procpool::future<int>> fs;
    fs.reserve(n);
    for (int i = 0; i < n; ++i) fs.push_back(p.submit<square>(i % 1000));
    int wrong = 0;
    for (int i = 0; i < n; ++i) wrong += fs[static_cast<std::size_t>(i)].get() != (i % 1000) * (i % 1000);
    CHECK(wrong == 0);
    std::vector<int> in(n);
    std::iota(in.begin(), in.end(), 0);
    auto out = p.map<square>(in, 7); // many small chunks, several per frame write
    REQUIRE(out.size() == in.size());
    for (int i = 0; i < n; ++i) wrong += out[static_cast<std::size_t>(i)] != i * i;
    CHECK(wrong == 0);
}

/// An input range of unknown length that can be walked once: numbers read from a stream.
struct streamed_numbers {
    std::istream* in;
    [[nodiscard]] auto begin() const { return std::istream_iterator<int>(*in); }
    [[nodiscard]] auto end() const { return std::istream_iterator<int>(); }
};

TEST_CASE("map of ranges of unknown length: single-pass, and forward without size()", "[pool][map]") {
    procpool::pool p{{.workers = 2}};
    std::string text;
    std::forward_list<int> odd;
    for (int i = 49; i > 0; i -= 2) {
        text = std::to_string(i) + " " + text;
        odd.push_front(i);
    }
    std::istringstream in(text);
    STATIC_REQUIRE_FALSE(std::ranges::forward_range<streamed_numbers>);
    STATIC_REQUIRE_FALSE(std::ranges::sized_range<std::forward_list<int>>);
    for (const auto& out : {p.map<square>(streamed_numbers{&in}), p.map<square>(odd)}) {
        REQUIRE(out.size() == 25);
        for (int i = 0; i < 25; ++i) CHECK(out[static_cast<std::size_t>(i)] == (2 * i + 1) * (2 * i + 1));
    }
}

TEST_CASE("a worker gives back the memory of a large argument once it has answered", "[pool][memory]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    const long idle = p.submit<resident_self>().get();
    if (idle <= 0) {
        WARN("resident memory cannot be read on this platform");
        return;
    }
    if (PPT_ASAN) {
        WARN("not measured under AddressSanitizer: its quarantine keeps freed memory resident");
        return;
    }
    std::vector<std::byte> big(std::size_t{64} << 20, std::byte{7});
    CHECK(p.submit<byte_count>(big).get() == big.size());
    // Before, the worker kept its receive buffer at the largest frame's size: +64 MiB for life.
    const long after = p.submit<resident_self>().get();
    INFO("worker resident memory: " << idle << " bytes idle, " << after << " after a 64 MiB argument");
    CHECK(after - idle < (long{16} << 20));
}

TEST_CASE("large arguments are received into place, around smaller ones and in order", "[pool][payload]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    std::vector<std::byte> blob((std::size_t{5} << 20) + 17);
    for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<std::byte>(i * 7 + (i >> 12));
    std::vector<double> nums(300'000);
    std::iota(nums.begin(), nums.end(), 0.5);
    std::map<int, std::string> names{{1, "one"}, {2, std::string(100'000, 'b')}, {3, "three"}};
    std::string text(3'000'000, 'x');
    text += "end";
    const auto expected = mixed_large("tag", blob, nums, names, {2.5}, text);
    // Twice: the second call reuses the worker's kept buffer for `blob` and `text`.
    CHECK(p.submit<mixed_large>(std::string("tag"), blob, nums, names, non_negative{2.5}, text).get() == expected);
    CHECK(p.submit<mixed_large>(std::string("tag"), blob, nums, names, non_negative{2.5}, text).get() == expected);
    // Smaller than the worker's 64 KiB read buffer: the whole frame is read first.
    std::vector<std::byte> small(blob.begin(), blob.begin() + 1000);
    CHECK(p.submit<mixed_large>(std::string("s"), small, std::vector<double>{1, 2}, std::map<int, std::string>{},
                                non_negative{0}, std::string("abcdef"))
              .get() == mixed_large("s", small, {1, 2}, {}, {0}, "abcdef"));
}

TEST_CASE("a value refused in the middle of a large frame fails only its task, and the worker reads past the rest",
          "[pool][payload][hardening]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    const long pid = p.submit<get_pid>().get();
    std::vector<std::byte> blob(std::size_t{8} << 20, std::byte{3});
    std::string text(std::size_t{2} << 20, 't');
    // The refused value comes after 8 MiB and before 2 MiB more: the worker must skip those to find the next frame.
    auto bad = p.submit<mixed_large>(std::string("bad"), blob, std::vector<double>{}, std::map<int, std::string>{},
                                     non_negative{-1}, text);
    auto good = p.submit<mixed_large>(std::string("good"), blob, std::vector<double>{1}, std::map<int, std::string>{},
                                      non_negative{1}, text);
    CHECK_THROWS_WITH(bad.get(), ppt::has_substring("negative value"));
    CHECK_THAT(good.get(), ppt::has_substring(std::to_string(blob.size())));
    CHECK(p.submit<get_pid>().get() == pid); // the same worker: nothing was lost, nothing needed replacing
}

TEST_CASE("a large argument goes from the caller's object to an idle worker, and is copied when it must wait",
          "[pool][payload]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    const std::size_t n = (std::size_t{8} << 20) + 3;
    const auto expected = weighted_sum(pattern(n, 1));
    SECTION("an idle worker: written before submit returns, without a copy") {
        CHECK(p.submit<square>(2).get() == 4);
        auto data = pattern(n, 1);
        // The pool copies the rest of a lent argument when its worker reads nothing for a while (a stopped worker
        // must not hold submit): on a loaded machine a worker that is merely not scheduled looks the same. The
        // pool says so in its log, and then a copy is right; without that report there must be none.
        struct capture_log {
            std::vector<std::string> messages;
            procpool::log_level level = procpool::get_log_level();
            capture_log() {
                messages.reserve(16); // no allocation of this vector's own between the two heap readings
                procpool::set_log_level(procpool::log_level::debug);
                procpool::set_log_sink([this](const procpool::log_event& ev) { messages.push_back(ev.message); });
            }
            ~capture_log() {
                procpool::set_log_sink({});
                procpool::set_log_level(level);
            }
            capture_log(const capture_log&) = delete;
            capture_log& operator=(const capture_log&) = delete;
        } log;
        const auto heap_before = heap_in_use();
        auto f = p.submit<weighted_sum>(data);
        const auto heap_after = heap_in_use();
        std::fill(data.begin(), data.end(), std::byte{0xff}); // submit has returned: the data is the caller's again
        data = {};
        CHECK(f.get() == expected);
        const bool copied_after_stall = std::any_of(log.messages.begin(), log.messages.end(), [](const auto& m) {
            return m.find("stopped reading a lent argument") != std::string::npos;
        });
        if (heap_before < 0 || PPT_ASAN) WARN("heap use is not read here (glibc's mallinfo2, no AddressSanitizer)");
        else if (copied_after_stall) WARN("the worker was not scheduled while submit wrote: the pool copied the rest");
        else CHECK(heap_after - heap_before < (1 << 20)); // a copied frame would hold the 8 MiB
    }
    SECTION("a busy worker: the job is sent ahead or queued, from a copy") {
        ppt::gate g;
        auto blocked = p.submit<wait_gate>(g.path(), 1);
        auto data = pattern(n, 1);
        auto f = p.submit<weighted_sum>(data);
        auto f2 = p.submit<weighted_sum>(pattern(n, 1)); // a temporary: gone when submit returns
        std::fill(data.begin(), data.end(), std::byte{0xff});
        data = {};
        g.release();
        CHECK(blocked.get() == 1);
        CHECK(f.get() == expected);
        CHECK(f2.get() == expected);
    }
    SECTION("many at once from several threads, more than there are workers") {
        std::vector<std::thread> threads;
        std::vector<std::uint64_t> got(6);
        for (std::size_t t = 0; t < got.size(); ++t)
            threads.emplace_back([&, t] {
                auto data = pattern(n / 4, static_cast<unsigned>(t));
                auto f = p.submit<weighted_sum>(data);
                std::fill(data.begin(), data.end(), std::byte{0});
                got[t] = f.get();
            });
        for (auto& t : threads) t.join();
        for (std::size_t t = 0; t < got.size(); ++t)
            CHECK(got[t] == weighted_sum(pattern(n / 4, static_cast<unsigned>(t))));
    }
}

TEST_CASE("a worker keeps the buffer of a large const& argument while large calls keep coming", "[pool][payload]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    const std::vector<std::byte> big(std::size_t{6} << 20, std::byte{1}), smaller(std::size_t{3} << 20, std::byte{2});
    // The second frame must be waiting when the first call returns (a worker gives the buffer back after 50 ms
    // without input). The first call runs only once its frame has been read whole, so the channel is empty then,
    // and submit writes the start of the next frame at once; only after that is the first call let go.
    ppt::gate started, go;
    auto first = p.submit<kept_capacity>(big, started.path(), go.path());
    // Until the task runs, the pool is driven (wait_for), which writes what the worker has not read of its
    // frame yet: a worker too slow to read during submit gets the rest from a copy, sent only by a driving thread.
    while (!started.try_wait_signal()) (void)first.wait_for(std::chrono::milliseconds(1));
    auto second = p.submit<kept_capacity>(smaller, std::string(), std::string());
    go.release();
    CHECK(first.get() >= big.size());
    CHECK(second.get() >= big.size()); // the first call's buffer, not a fresh one of 3 MiB
    // A by-value parameter belongs to the task: it is fresh every time.
    auto by_value = p.submit<fresh_capacity>(big);
    auto by_value2 = p.submit<fresh_capacity>(smaller);
    CHECK(by_value.get() >= big.size());
    CHECK(by_value2.get() < big.size());
}

TEST_CASE("shutdown: cancel_pending cancels queued tasks, wait runs them", "[pool][shutdown]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    ppt::gate g;
    auto running = p.submit<wait_gate>(g.path(), 1);
    std::vector<procpool::future<int>> rest;
    for (int i = 0; i < 4; ++i) rest.push_back(p.submit<square>(i));
    // Nothing is dispatched until some thread drives the pool (there is no background thread), so releasing
    // the gate here does not change which tasks are still queued when shutdown() starts.
    g.release();

    SECTION("cancel_pending") {
        p.shutdown(procpool::shutdown_mode::cancel_pending);
        CHECK(running.get() == 1);
        // Tasks already sent to the worker (at most one ahead of the running one) finish; every queued one is
        // cancelled. So the results are a prefix of values and a suffix of task_cancelled, the last cancelled.
        std::vector<bool> ran;
        for (std::size_t i = 0; i < rest.size(); ++i) {
            INFO("task " << i);
            try {
                int v = rest[i].get();
                CHECK(v == static_cast<int>(i * i));
                ran.push_back(true);
            } catch (const procpool::task_cancelled&) {
                ran.push_back(false);
            }
        }
        CHECK(std::is_sorted(ran.begin(), ran.end(), std::greater<>()));
        CHECK(std::count(ran.begin(), ran.end(), false) >= 3);
    }
    SECTION("wait") {
        p.shutdown(procpool::shutdown_mode::wait);
        CHECK(running.get() == 1);
        for (int i = 0; i < 4; ++i) CHECK(rest[static_cast<std::size_t>(i)].get() == i * i);
    }
    CHECK(p.worker_pids().empty());
    CHECK_THROWS_AS(p.submit<square>(1), procpool::pool_closed);
    CHECK_THROWS_AS(p.submit<square>(1), procpool::error);
    CHECK_THROWS_AS(p.map<square>(std::vector<int>{1, 2}), procpool::pool_closed);
    p.shutdown(); // idempotent
}

TEST_CASE("a pool serves many calls", "[pool]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    std::set<long> pids;
    for (int round = 0; round < 50; ++round) {
        REQUIRE(p.submit<square>(round).get() == round * round);
        pids.insert(p.submit<get_pid>().get());
        REQUIRE(p.map<add>(std::vector<std::tuple<int, int>>{{round, 1}, {round, 2}}) ==
                std::vector<int>{round + 1, round + 2});
    }
    // The same workers served every call (no recycling by default).
    CHECK(pids.size() <= 2);
    if (method == start_method::in_process) CHECK(pids == std::set<long>{ppt::pid()});
    else {
        auto live = p.worker_pids();
        for (long pid : pids) CHECK(std::find(live.begin(), live.end(), pid) != live.end());
    }
}

TEST_CASE("task exceptions come back as their own type", "[pool][exceptions]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};

    CHECK_THROWS_AS(p.submit<throw_out_of_range>(std::string("oor")).get(), std::out_of_range);
    CHECK_THROWS_WITH(p.submit<throw_out_of_range>(std::string("oor")).get(), "oor");
    CHECK_THROWS_AS(p.submit<throw_invalid_argument>(std::string("bad arg")).get(), std::invalid_argument);
    CHECK_THROWS_WITH(p.submit<throw_invalid_argument>(std::string("bad arg")).get(), "bad arg");
    CHECK_THROWS_AS(p.submit<throw_runtime_error>(std::string("rt")).get(), std::runtime_error);
    CHECK_THROWS_WITH(p.submit<throw_runtime_error>(std::string("rt")).get(), "rt");
    CHECK_THROWS_AS(p.submit<throw_bad_alloc>().get(), std::bad_alloc);

    // The exact type, not just a base: a std::runtime_error must not come back as remote_error, and an
    // out_of_range must not come back as a plain logic_error.
    try {
        p.submit<throw_runtime_error>(std::string("exact")).get();
        FAIL("no exception");
    } catch (const procpool::error&) {
        FAIL("std::runtime_error came back as a procpool error");
    } catch (const std::runtime_error& e) {
        CHECK(typeid(e) == typeid(std::runtime_error));
        CHECK(std::string(e.what()) == "exact");
    }
    try {
        p.submit<throw_out_of_range>(std::string("exact")).get();
        FAIL("no exception");
    } catch (const std::logic_error& e) {
        CHECK(typeid(e) == typeid(std::out_of_range));
    }

    SECTION("a custom exception type becomes remote_error with its type name and message") {
        try {
            p.submit<throw_custom>(std::string("custom message")).get();
            FAIL("no exception");
        } catch (const procpool::remote_error& e) {
            CHECK_THAT(e.type_name(), ppt::has_substring("custom_failure"));
            CHECK(e.message() == "custom message");
            CHECK_THAT(std::string(e.what()), ppt::has_substring("custom message"));
        }
    }
    SECTION("throw 42 becomes remote_error of type int") {
        try {
            p.submit<throw_int>().get();
            FAIL("no exception");
        } catch (const procpool::remote_error& e) {
            CHECK(e.type_name() == "int");
        }
    }
    // The worker survives its tasks' exceptions.
    CHECK(p.submit<square>(3).get() == 9);
}

TEST_CASE("map and map_unordered report progress: done out of total, after each chunk", "[pool][progress]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    std::vector<int> in(100);
    std::iota(in.begin(), in.end(), 0);
    std::vector<std::pair<std::size_t, std::size_t>> calls;
    auto record = [&](std::size_t done, std::size_t total) { calls.emplace_back(done, total); };
    auto out = p.map<square>(in, {.chunksize = 10, .on_progress = record});
    CHECK(out.size() == 100);
    CHECK(out[9] == 81);
    REQUIRE(calls.size() == 11); // once when sent, then once per chunk
    CHECK(calls.front() == std::pair<std::size_t, std::size_t>{0, 100});
    CHECK(calls.back() == std::pair<std::size_t, std::size_t>{100, 100});
    for (std::size_t i = 1; i < calls.size(); ++i) CHECK(calls[i].first == calls[i - 1].first + 10);

    calls.clear();
    std::size_t n = 0;
    for ([[maybe_unused]] int v : p.map_unordered<square>(in, {.chunksize = 25, .on_progress = record})) {
        ++n;
        CHECK(calls.back().first >= n); // told before the chunk's items are yielded
    }
    CHECK(n == 100);
    CHECK(calls == std::vector<std::pair<std::size_t, std::size_t>>{{0, 100}, {25, 100}, {50, 100}, {75, 100}, {100, 100}});
}

TEST_CASE("progress_bar draws a tqdm-like line, only on a terminal", "[pool][progress]") {
    auto line = procpool::detail::progress_line("hashing", 420, 1000, 3.0, 10);
    CHECK(line == "hashing  42% |####      | 420/1000 [00:03<00:04, 140.0 it/s]");
    CHECK(procpool::detail::progress_line("", 0, 10, 0.0, 4) == "  0% |    | 0/10 [00:00<?, 0.0 it/s]");
    CHECK(procpool::detail::progress_line("", 5000, 5000, 3700.0, 2) == "100% |##| 5000/5000 [1:01:40<00:00, 1.4 it/s]");
    // Whatever the terminal, the callback is safe to call; when stderr is not a terminal it draws nothing.
    auto bar = procpool::progress_bar("test");
    procpool::pool p{{.workers = 1}};
    CHECK(p.map<square>(std::vector<int>{1, 2, 3}, {.chunksize = 1, .on_progress = bar}) == std::vector<int>{1, 4, 9});
}

namespace span_t {
// A std::span<const T> parameter: the worker decodes the argument into a vector the span views.
long sum_span(std::span<const int> xs) {
    long s = 0;
    for (int x : xs) s += x;
    return s;
}
std::size_t count_words(std::span<const std::string> words, std::string prefix) {
    return static_cast<std::size_t>(
        std::count_if(words.begin(), words.end(), [&](const std::string& w) { return w.starts_with(prefix); }));
}
} // namespace span_t
PROCPOOL_TASK(span_t::sum_span);
PROCPOOL_TASK(span_t::count_words);

TEST_CASE("a std::span<const T> parameter takes a span, a vector or an array as its argument", "[pool][span]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    std::vector<int> v{1, 2, 3, 4};
    std::array<int, 3> a{10, 20, 30};
    CHECK(p.submit<span_t::sum_span>(std::span<const int>(v).subspan(1)).get() == 9);
    CHECK(p.submit<span_t::sum_span>(v).get() == 10);
    CHECK(p.submit<span_t::sum_span>(a).get() == 60);
    CHECK(p.submit<span_t::sum_span>(std::span<int>(v)).get() == 10);
    std::vector<std::string> words{"apple", "avocado", "banana"};
    CHECK(p.submit<span_t::count_words>(std::span<const std::string>(words), "a").get() == 2);
    // On the wire it is the vector: a call by name passes one.
    CHECK(p.submit_by_name<long>("span_t::sum_span", std::vector<int>{5, 6}).get() == 11);
}

namespace outcome_t {
int die_at(int x) {
    if (x == 7) std::_Exit(9); // the worker dies while running this item
    return x;
}
} // namespace outcome_t
PROCPOOL_TASK(outcome_t::die_at);

TEST_CASE("map_outcomes gives every item its value or its error, with its index", "[pool][map_outcomes]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    std::vector<int> in{0, 1, 2, 3, 4, 5, 3};
    auto out = p.map_outcomes<throw_at>(in, {.chunksize = 2});
    REQUIRE(out.size() == in.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
        CHECK(out[i].index == i);
        if (in[i] == 3) {
            CHECK_FALSE(out[i].ok());
            CHECK_THROWS_AS(out[i].get(), std::out_of_range);
        } else {
            REQUIRE(out[i].ok());
            CHECK(out[i].get() == in[i]); // the items next to a failing one in its chunk are kept
        }
    }
}

TEST_CASE("map_outcomes: a worker that dies fails only the items of its chunk", "[pool][map_outcomes]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    std::vector<int> in(12);
    std::iota(in.begin(), in.end(), 0);
    auto out = p.map_outcomes<outcome_t::die_at>(in, {.chunksize = 1});
    REQUIRE(out.size() == 12);
    for (std::size_t i = 0; i < out.size(); ++i) {
        CHECK(out[i].index == i);
        if (i == 7) CHECK_THROWS_AS(out[i].get(), procpool::worker_died);
        else CHECK(out[i].get() == static_cast<int>(i));
    }
}
