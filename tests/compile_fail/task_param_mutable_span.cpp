// expect: procpool: a span parameter must be std::span<const T>
// A task parameter of type std::span<int>: the worker's writes through it would never reach the caller. Fix: take
// std::span<const int> (or a std::vector<int>) and return what the caller needs.
#include <procpool/procpool.hpp>

#include <span>
#include <vector>

#ifdef FIXED
std::vector<int> double_all(std::span<const int> xs) { // returns what the caller needs
    std::vector<int> out(xs.begin(), xs.end());
    for (auto& x : out) x *= 2;
    return out;
}
#else
void double_all(std::span<int> xs) {
    for (auto& x : xs) x *= 2;
}
#endif
PROCPOOL_TASK(double_all);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    std::vector<int> v{1, 2, 3};
#ifdef FIXED
    v = pool.submit<double_all>(std::span<const int>(v)).get();
#else
    pool.submit<double_all>(std::span<int>(v)).get();
#endif
    return 0;
}
