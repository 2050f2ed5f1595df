// expect: procpool: a task cannot return a reference
// A task returning const int&: the referenced object lives in the worker. Fix: return int.
#include <procpool/procpool.hpp>

#ifdef FIXED
int answer(int key) {
#else
const int& answer(int key) {
#endif
    static const int answers[] = {42, 43};
    return answers[key % 2];
}
PROCPOOL_TASK(answer);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    auto f = pool.submit<answer>(0);
    return f.get() == 42 ? 0 : 1;
}
