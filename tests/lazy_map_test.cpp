// SPDX-License-Identifier: BSL-1.0
// tests/lazy_map_test.cpp: the bounded lazy map (imap, imap_unordered: input pulled only while fewer than
// max_in_flight items are between it and the caller), map_unordered going on past failed items, and map's per-item
// timeout.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <iterator>
#include <numeric>
#include <optional>
#include <ranges>
#include <utility>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace lazy_t {
long twice(long x) { return 2 * x; }
int fail_at_three(int x) {
    if (x % 10 == 3) throw std::out_of_range("item " + std::to_string(x));
    return x;
}
void nothing(int) {}
int hang_at(int x) {
    if (x == 3)
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1)); // the hung item: only the timeout ends it
    return x;
}

/// An endless single-pass input (a generator): counts how many items were pulled from it.
class counter {
public:
    class iterator {
    public:
        using value_type = long;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(counter* c) : c_(c) {}
        long operator*() const {
            ++c_->pulled;
            return c_->next;
        }
        iterator& operator++() {
            ++c_->next;
            return *this;
        }
        void operator++(int) { ++*this; }
        bool operator==(std::unreachable_sentinel_t) const { return false; }

    private:
        counter* c_ = nullptr;
    };
    iterator begin() { return iterator(this); }
    std::unreachable_sentinel_t end() { return {}; }
    std::size_t pulled = 0;
    long next = 0;
};
static_assert(std::ranges::input_range<counter> && !std::ranges::forward_range<counter>);

/// The numbers [0, n) as a sized forward range (libc++ 14 has no std::views), counting the elements read.
class numbers {
public:
    class iterator {
    public:
        using value_type = long;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        iterator(long v, std::size_t* reads) : v_(v), reads_(reads) {}
        long operator*() const {
            ++*reads_;
            return v_;
        }
        iterator& operator++() {
            ++v_;
            return *this;
        }
        iterator operator++(int) {
            auto old = *this;
            ++v_;
            return old;
        }
        bool operator==(const iterator& o) const { return v_ == o.v_; }

    private:
        long v_ = 0;
        std::size_t* reads_ = nullptr;
    };
    numbers(long n, std::size_t& reads) : n_(n), reads_(&reads) {}
    [[nodiscard]] iterator begin() const { return {0, reads_}; }
    [[nodiscard]] iterator end() const { return {n_, reads_}; }
    [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(n_); }

private:
    long n_;
    std::size_t* reads_;
};
static_assert(std::ranges::forward_range<numbers> && std::ranges::sized_range<numbers>);
} // namespace lazy_t
PROCPOOL_TASK(lazy_t::twice);
PROCPOOL_TASK(lazy_t::fail_at_three);
PROCPOOL_TASK(lazy_t::nothing);
PROCPOOL_TASK(lazy_t::hang_at);

TEST_CASE("imap yields results in input order and pulls at most max_in_flight items ahead of the caller",
          "[lazy_map][imap]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    std::size_t pulled = 0;
    lazy_t::numbers input(3000, pulled);
    auto results = p.imap<lazy_t::twice>(input, {.chunksize = 8, .max_in_flight = 32});
    CHECK(pulled == 0); // nothing before the iteration begins
    long expected = 0;
    std::size_t most_ahead = 0;
    for (long v : results) {
        REQUIRE(v == 2 * expected);
        ++expected;
        // Items pulled and not yet taken by this loop (the current one counts as taken).
        most_ahead = std::max(most_ahead, pulled - static_cast<std::size_t>(expected));
        REQUIRE(results.in_flight() <= 32);
    }
    CHECK(expected == 3000);
    CHECK(pulled == 3000);
    CHECK(most_ahead <= 32);
    CHECK(most_ahead >= 8); // it did run ahead: at least a chunk was in flight while the loop consumed
}

TEST_CASE("imap over an endless generator runs in bounded memory and stops pulling when the loop breaks",
          "[lazy_map][imap]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    lazy_t::counter gen;
    long taken = 0;
    {
        auto results = p.imap<lazy_t::twice>(gen, {.chunksize = 4, .max_in_flight = 16});
        for (long v : results) {
            REQUIRE(v == 2 * taken);
            REQUIRE(gen.pulled - static_cast<std::size_t>(taken) <= 16);
            if (++taken == 2000) break;
        }
    }
    CHECK(taken == 2000);
    CHECK(gen.pulled <= 2000 + 16);
    // The chunks in flight at the break still run; the pool goes on with other work.
    CHECK(p.submit<lazy_t::twice>(21).get() == 42);
    // A temporary range is kept by the result; without max_in_flight the bound is four chunks per worker.
    auto endless = p.imap<lazy_t::twice>(lazy_t::counter{});
    CHECK(endless.max_in_flight() == 4 * std::max<std::size_t>(1, p.size()));
    long n = 0;
    for (long v : endless) {
        REQUIRE(v == 2 * n);
        if (++n == 100) break;
    }
}

TEST_CASE("imap_unordered yields every item once, in completion order, within the bound", "[lazy_map][imap]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    lazy_t::counter gen;
    std::set<long> seen;
    auto results = p.imap_unordered<lazy_t::twice>(gen, {.chunksize = 5, .max_in_flight = 20});
    for (auto it = results.begin(); it != results.end(); ++it) {
        CHECK(seen.insert(*it).second);
        REQUIRE(results.in_flight() <= 20);
        if (seen.size() == 500) break;
    }
    CHECK(gen.pulled <= 500 + 20);
    // Every item pulled before the break was a multiple of two of an input: the 500 seen are among the first pulled.
    for (long v : seen) CHECK((v % 2 == 0 && v / 2 < static_cast<long>(gen.pulled)));
}

TEST_CASE("imap and map_unordered go on past a failed item: outcomes(), or catching at the item",
          "[lazy_map][errors]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    std::vector<int> in(30);
    std::iota(in.begin(), in.end(), 0);

    SECTION("map_unordered(...).outcomes() yields every item with its index") {
        std::vector<int> got(in.size(), -1);
        std::size_t failed = 0;
        for (auto& o : p.map_unordered<lazy_t::fail_at_three>(in, 4).outcomes()) {
            REQUIRE(o.index < in.size());
            if (o.ok()) got[o.index] = o.get();
            else {
                ++failed;
                CHECK(in[o.index] % 10 == 3);
                CHECK_THROWS_AS(o.get(), std::out_of_range);
            }
        }
        CHECK(failed == 3);
        for (std::size_t i = 0; i < in.size(); ++i)
            if (in[i] % 10 != 3) CHECK(got[i] == in[i]);
    }
    SECTION("a loop that catches at the failed item goes on with the next") {
        auto results = p.map_unordered<lazy_t::fail_at_three>(in, 4);
        std::size_t values = 0, errors = 0;
        for (auto it = results.begin(); it != results.end(); ++it) {
            try {
                const int v = *it; // throws at a failed item
                CHECK(v % 10 != 3);
                ++values;
            } catch (const std::out_of_range&) {
                ++errors;
            }
        }
        CHECK(values == 27);
        CHECK(errors == 3);
    }
    SECTION("a range-for ends at the failed item by default, in input order for imap") {
        std::vector<int> got;
        auto loop = [&] {
            for (int v : p.imap<lazy_t::fail_at_three>(in, {.chunksize = 2})) got.push_back(v);
        };
        CHECK_THROWS_AS(loop(), std::out_of_range);
        CHECK(got == std::vector<int>{0, 1, 2});
    }
    SECTION("imap of a void task: outcomes() only") {
        std::size_t n = 0;
        for (auto& o : p.imap<lazy_t::nothing>(in, {.chunksize = 3}).outcomes()) {
            CHECK(o.index == n);
            CHECK(o.ok());
            ++n;
        }
        CHECK(n == in.size());
    }
}

TEST_CASE("imap reports progress when the input's length is known", "[lazy_map][progress]") {
    procpool::pool p{{.workers = 2}};
    std::vector<std::pair<std::size_t, std::size_t>> calls;
    long sum = 0;
    std::size_t reads = 0;
    for (long v : p.imap<lazy_t::twice>(lazy_t::numbers(100, reads),
                                        {.chunksize = 10,
                                         .on_progress = [&](std::size_t d, std::size_t t) { calls.emplace_back(d, t); },
                                         .max_in_flight = 30}))
        sum += v;
    CHECK(sum == 9900);
    REQUIRE(calls.size() == 11);
    CHECK(calls.front() == std::pair<std::size_t, std::size_t>(0, 100));
    CHECK(calls.back() == std::pair<std::size_t, std::size_t>(100, 100));
}

TEST_CASE("an imap that outlives its pool fails with pool_closed instead of touching it", "[lazy_map][imap]") {
    std::optional<procpool::pool> p;
    p.emplace(procpool::pool_options{.workers = 1});
    auto results = p->imap<lazy_t::twice>(lazy_t::counter{}, {.chunksize = 1, .max_in_flight = 2});
    p.reset();
    CHECK_THROWS_AS(results.begin(), procpool::pool_closed);
}

TEST_CASE("map_options::timeout is per item: a hung item fails alone, the others complete", "[lazy_map][timeout]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    std::vector<int> in{0, 1, 2, 3, 4, 5, 6, 7};
    auto out = p.map_outcomes<lazy_t::hang_at>(in, {.timeout = std::chrono::milliseconds(300)});
    REQUIRE(out.size() == in.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (in[i] == 3) CHECK_THROWS_AS(out[i].get(), procpool::task_timeout);
        else CHECK(out[i].get() == in[i]);
    }
    // A chunk of several items cannot have a per-item limit: refused, nothing sent.
    CHECK_THROWS_AS(p.map<lazy_t::hang_at>(in, {.chunksize = 4, .timeout = std::chrono::milliseconds(300)}),
                    std::invalid_argument);
    CHECK_THROWS_AS(p.imap<lazy_t::hang_at>(in, {.timeout = std::chrono::milliseconds(-1)}), std::invalid_argument);
}
