// SPDX-License-Identifier: BSL-1.0
// examples/shared_memory.cpp: a large read-only table shared by every task, and results written in place into a
// shared output array. Neither array is copied: each task gets two handles of a few bytes, and each worker maps
// the memory once, however many tasks it runs.
#include <procpool/procpool.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

// out[i] = table[i] * table[i] + 1, for i in [begin, end): reads the shared table, writes the shared output.
std::size_t square_slice(procpool::shared_array<const double> table, procpool::shared_array<double> out,
                         std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) out[i] = table[i] * table[i] + 1.0;
    return end - begin;
}
PROCPOOL_TASK(square_slice);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);

    constexpr std::size_t n = std::size_t{1} << 22; // 32 MiB of doubles in each array
    auto table = procpool::shared_array<double>::create(n);
    for (std::size_t i = 0; i < n; ++i) table[i] = std::sin(static_cast<double>(i));
    auto out = procpool::shared_array<double>::create(n);
    // Tasks only read the table: a read-only view, which a worker maps read-only (a write would crash the worker
    // and fail that task with procpool::worker_died).
    procpool::shared_array<const double> ro = table;

    procpool::pool pool{{.workers = 4}};
    std::vector<procpool::future<std::size_t>> parts;
    constexpr std::size_t slice = n / 64;
    for (std::size_t b = 0; b < n; b += slice) parts.push_back(pool.submit<square_slice>(ro, out, b, b + slice));
    std::size_t done = 0;
    for (auto& f : parts) done += f.get(); // a task's writes are visible once its future is ready

    std::size_t wrong = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (out[i] != table[i] * table[i] + 1.0) ++wrong;
    std::printf("%zu tasks wrote %zu results in place, %zu wrong\n", parts.size(), done, wrong);
    std::printf("out[12345] = %.6f\n", out[12345]);
    return wrong == 0 && done == n ? 0 : 1;
}
