// expect: procpool: a pointer cannot cross a process boundary
// A task parameter of type FILE*. Fix: pass the file's path (std::string) and open it in the worker.
#include <procpool/procpool.hpp>

#include <cstdio>

int first_char(std::FILE* f) { return std::fgetc(f); }
PROCPOOL_TASK(first_char);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    auto f = pool.submit<first_char>(stdin);
    return f.get() == EOF ? 0 : 1;
}
