// SPDX-License-Identifier: BSL-1.0
// Consumer test, separate-compilation mode: a second file that uses a pool. With the engine compiled once
// (procpool::compiled, or a file that includes <procpool/src.hpp>), both files link without duplicate definitions.
#include <procpool/procpool.hpp>

#if !defined(PROCPOOL_SEPARATE_COMPILATION) || PROCPOOL_HEADER_ONLY
#error "second.cpp is built only in separate-compilation mode: PROCPOOL_SEPARATE_COMPILATION must be defined"
#endif

int cube(int x) { return x * x * x; }
PROCPOOL_TASK(cube);

int second_file_result() {
    procpool::pool pool{{.workers = 1, .start = procpool::start_method::in_process}};
    return pool.submit<cube>(3).get();
}
