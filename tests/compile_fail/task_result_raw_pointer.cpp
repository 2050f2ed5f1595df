// expect: procpool: a pointer cannot cross a process boundary
// A task returning int*: the pointer would point into the worker. Fix: return int.
#include <procpool/procpool.hpp>

#ifdef FIXED
int find_answer(int key) {
    static int answers[] = {42, 43};
    return answers[key % 2];
}
#else
int* find_answer(int key) {
    static int answers[] = {42, 43};
    return &answers[key % 2];
}
#endif
PROCPOOL_TASK(find_answer);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    auto f = pool.submit<find_answer>(0);
#ifdef FIXED
    return f.get() == 42 ? 0 : 1;
#else
    return *f.get() == 42 ? 0 : 1;
#endif
}
