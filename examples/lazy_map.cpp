// SPDX-License-Identifier: BSL-1.0
// examples/lazy_map.cpp: imap pulls its input only as results are taken, with at most max_in_flight items between
// the input and the loop (Python 3.14: Executor.map(buffersize=)), so an endless generator, or a range of a hundred
// million items, runs in bounded memory. map_unordered(...).outcomes() goes on past failed items.
#include <procpool/procpool.hpp>

#include <cstddef>
#include <cstdio>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

// Collatz steps of n: uneven work, a result per input.
int collatz_steps(long n) {
    int steps = 0;
    for (; n != 1; ++steps) n = n % 2 ? 3 * n + 1 : n / 2;
    return steps;
}
PROCPOOL_TASK(collatz_steps);

double checked_ratio(int a, int b) {
    if (b == 0) throw std::domain_error("division by zero for " + std::to_string(a));
    return double(a) / b;
}
PROCPOOL_TASK(checked_ratio);

// An endless input, as a generator would be: 1, 2, 3, ... (single pass; any input range works).
struct naturals {
    struct iterator {
        using value_type = long;
        using difference_type = std::ptrdiff_t;
        long n = 1;
        long operator*() const { return n; }
        iterator& operator++() {
            ++n;
            return *this;
        }
        void operator++(int) { ++n; }
        bool operator==(std::unreachable_sentinel_t) const { return false; }
    };
    iterator begin() const { return {}; }
    std::unreachable_sentinel_t end() const { return {}; }
};

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 2}};

    // An endless input: the first n whose Collatz sequence takes more than 200 steps. The loop stops the input.
    auto results = pool.imap<collatz_steps>(naturals{}, {.chunksize = 64, .max_in_flight = 512});
    long n = 1;
    for (int steps : results) {
        if (steps > 200) break;
        ++n;
    }
    std::printf("first n with more than 200 Collatz steps: %ld (at most %zu items in flight)\n", n,
                results.max_in_flight());

    // Every item's outcome, in completion order; one failure does not end the loop.
    std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 0}, {5, 4}, {7, 0}, {9, 8}};
    int failed = 0;
    double sum = 0;
    for (auto& o : pool.map_unordered<checked_ratio>(pairs, 1).outcomes()) {
        if (o.ok()) sum += o.get();
        else ++failed;
    }
    std::printf("sum of the ratios that worked: %.3f, failed items: %d\n", sum, failed);
}
