// SPDX-License-Identifier: BSL-1.0
// examples/progress.cpp: map_unordered yields results as chunks finish, so the loop that consumes them can report
// progress (Python: imap_unordered with tqdm, or as_completed). Results come in completion order, not input order:
// return whatever identifies the input along with the result.
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

std::pair<int, long> slow_square(int i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + i % 7)); // uneven work
    return {i, long(i) * i};
}
PROCPOOL_TASK(slow_square);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 2}};

    std::vector<int> inputs;
    for (int i = 0; i < 200; ++i) inputs.push_back(i);

    std::size_t done = 0;
    long sum = 0;
    for (auto [i, square] : pool.map_unordered<slow_square>(inputs, 10)) { // chunks of 10 inputs
        (void)i;
        sum += square;
        if (++done % 40 == 0) std::printf("progress: %zu/%zu done\n", done, inputs.size());
    }
    std::printf("sum of squares: %ld\n", sum);
}
