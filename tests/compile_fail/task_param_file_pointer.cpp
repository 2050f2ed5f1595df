// expect: procpool: a pointer cannot cross a process boundary
// A task parameter of type FILE*. Fix: pass the file's path (std::string) and open it in the worker.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <string>

#ifdef FIXED
int first_char(std::string path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return EOF;
    int c = std::fgetc(f);
    std::fclose(f);
    return c;
}
#else
int first_char(std::FILE* f) { return std::fgetc(f); }
#endif
PROCPOOL_TASK(first_char);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    auto f = pool.submit<first_char>(std::string("/nonexistent"));
#else
    auto f = pool.submit<first_char>(stdin);
#endif
    return f.get() == EOF ? 0 : 1;
}
