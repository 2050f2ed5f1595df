// expect: procpool: a pointer cannot cross a process boundary
// An aggregate parameter with a pointer member (named by the compiler's note as const char*). Fix: make the
// member a std::string.
#include <procpool/procpool.hpp>

#include <string>

struct labelled {
    int value;
#ifdef FIXED
    std::string label;
#else
    const char* label;
#endif
};

int value_of(labelled l) { return l.value; }
PROCPOOL_TASK(value_of);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    auto f = pool.submit<value_of>(labelled{1, "one"});
    return f.get() == 1 ? 0 : 1;
}
