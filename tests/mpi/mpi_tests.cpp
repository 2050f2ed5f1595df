// SPDX-License-Identifier: BSL-1.0
// tests/mpi/mpi_tests.cpp: pools over MPI ranks (procpool/mpi.hpp). Run under mpirun (scripts/test.sh mpi):
//   mpirun --oversubscribe -n 3 procpool_mpi_tests "[mpi]"                    static world: rank 0 runs Catch
//   mpirun --oversubscribe --enable-recovery -n 3 procpool_mpi_tests "[mpi_kill]"   a node agent is killed
//   procpool_mpi_tests "[mpi_spawn]"                                          dynamic: agents from MPI_Comm_spawn
//   mpirun -n 2 procpool_mpi_tests "[mpi_mismatch]" : -n 1 <another procpool MPI program>   refused handshake
#define CATCH_CONFIG_RUNNER
#include "../catch.hpp"

#include <procpool/mpi.hpp>
#include <procpool/shared_memory.hpp>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

int square(int x) { return x * x; }
PROCPOOL_TASK(square);

double sum_shared(procpool::shared_array<const double> a) { return std::accumulate(a.begin(), a.end(), 0.0); }
PROCPOOL_TASK(sum_shared);

double double_shared(procpool::shared_array<double> a) {
    for (auto& x : a) x *= 2;
    return std::accumulate(a.begin(), a.end(), 0.0);
}
PROCPOOL_TASK(double_shared);

long parent_pid() { return static_cast<long>(getppid()); } // in a node agent's local worker: the agent
PROCPOOL_TASK(parent_pid);

int fails(int x) {
    if (x < 0) throw std::out_of_range("negative: " + std::to_string(x));
    return x;
}
PROCPOOL_TASK(fails);

int aborts_on(int x, int bad) {
    if (x == bad) std::abort();
    return x;
}
PROCPOOL_TASK(aborts_on);

// Blocks until its worker is killed by the timeout: reads a pipe nobody writes.
int hangs() {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    char c;
    return static_cast<int>(read(fds[0], &c, 1));
}
PROCPOOL_TASK(hangs);

std::uint64_t checksum(std::vector<std::uint8_t> v) {
    std::uint64_t h = 1469598103934665603ull;
    for (auto b : v) h = (h ^ b) * 1099511628211ull;
    return h ^ v.size();
}
PROCPOOL_TASK(checksum);

std::vector<std::uint8_t> make_bytes(std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 7 + 3);
    return v;
}
PROCPOOL_TASK(make_bytes);

int init_value = 0;
void set_init_value(int v) { init_value = v; }
PROCPOOL_TASK(set_init_value);
int get_init_value() { return init_value; }
PROCPOOL_TASK(get_init_value);
void append_pid(std::string path) { std::ofstream(path, std::ios::app) << getpid() << "\n"; }
PROCPOOL_TASK(append_pid);
void throw_in_init() { throw std::runtime_error("the database is not there"); }
PROCPOOL_TASK(throw_in_init);

std::string tenant = "none";
std::string get_tenant() { return tenant; }
void set_tenant(std::string t) { tenant = std::move(t); }
PROCPOOL_CONTEXT("mpi_tests.tenant", get_tenant, set_tenant);
std::string tenant_task() { return tenant; }
PROCPOOL_TASK(tenant_task);

// Kills the node agent running it, as if its machine were gone.
int kill_my_agent() {
    ::kill(getppid(), SIGKILL);
    int fds[2];
    if (pipe(fds) != 0) return -1;
    char c;
    return static_cast<int>(read(fds[0], &c, 1)); // the agent's death ends this worker too (parent-death signal)
}
PROCPOOL_TASK(kill_my_agent);

static procpool::mpi::cluster_options small() { return {.node = {.workers = 2}}; }

TEST_CASE("mpi: results and errors come back as on one machine", "[mpi]") {
    auto pool = procpool::mpi::make_pool(small());
    CHECK(pool.size() == 4); // two agents, two workers each
    const auto agents = pool.worker_pids();
    REQUIRE(agents.size() == 2);
    CHECK(std::find(agents.begin(), agents.end(), static_cast<long>(getpid())) == agents.end());

    CHECK(pool.submit<square>(7).get() == 49);
    // Every task ran in a worker process of a node agent, not here.
    std::set<long> parents;
    std::vector<procpool::future<long>> fs;
    for (int i = 0; i < 40; ++i) fs.push_back(pool.submit<parent_pid>());
    for (auto& f : fs) parents.insert(f.get());
    for (long p : parents) CHECK(std::find(agents.begin(), agents.end(), p) != agents.end());
    CHECK(parents.count(static_cast<long>(getpid())) == 0);

    CHECK_THROWS_AS(pool.submit<fails>(-3).get(), std::out_of_range);
    try {
        pool.submit<fails>(-4).get();
    } catch (const std::out_of_range& e) {
        CHECK(std::string(e.what()) == "negative: -4");
    }

    std::vector<int> xs(1000);
    std::iota(xs.begin(), xs.end(), 0);
    auto squares = pool.map<square>(xs, 10);
    REQUIRE(squares.size() == xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) CHECK(squares[i] == xs[i] * xs[i]);

    long sum = 0, expected = 0;
    std::size_t n = 0;
    for (int v : pool.map_unordered<square>(xs, 7)) {
        sum += v;
        ++n;
    }
    for (int x : xs) expected += x * x;
    CHECK(n == xs.size());
    CHECK(sum == expected);

    std::vector<procpool::future<int>> many;
    for (int i = 0; i < 20; ++i) many.push_back(pool.submit<square>(i));
    std::set<int> seen;
    for (auto& f : procpool::as_completed(many)) seen.insert(f.get());
    CHECK(seen.size() == 20);

    // Shared memory is on this machine: each task on a node gets a copy of its contents; its writes stay there.
    auto shared = procpool::shared_array<double>::create(1000);
    std::iota(shared.begin(), shared.end(), 1.0);
    CHECK(pool.submit<sum_shared>(shared).get() == 500500.0);
    CHECK(pool.submit<sum_shared>(procpool::shared_array<const double>(shared)).get() == 500500.0);
    CHECK(pool.submit<double_shared>(shared).get() == 1001000.0);
    CHECK(shared[999] == 1000.0); // the copy was doubled, not this
    auto sums = pool.map<sum_shared>(std::vector<procpool::shared_array<const double>>(4, shared), 1);
    CHECK(sums == std::vector<double>(4, 500500.0));
    CHECK(pool.submit<square>(3).get() == 9);

    auto outcomes = pool.map_outcomes<fails>(std::vector<int>{1, -2, 3}, {.chunksize = 1});
    REQUIRE(outcomes.size() == 3);
    CHECK(outcomes[0].ok());
    CHECK_FALSE(outcomes[1].ok());
    CHECK(outcomes[2].get() == 3);

    tenant = "acme"; // captured here, applied in the remote worker before the task
    CHECK(pool.submit<tenant_task>().get() == "acme");
    tenant = "none";

    pool.shutdown();
    CHECK_THROWS_AS(pool.submit<square>(1), procpool::pool_closed);
}

TEST_CASE("mpi: a task that aborts on a node fails only itself", "[mpi]") {
    auto pool = procpool::mpi::make_pool(small());
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 8; ++i) fs.push_back(pool.submit<aborts_on>(i, 3));
    for (int i = 0; i < 8; ++i) {
        if (i == 3) {
            try {
                fs[i].get();
                FAIL("the aborting task returned");
            } catch (const procpool::worker_died& e) {
                CHECK(e.signal() == SIGABRT);
                CHECK(e.task() == "aborts_on");
                CHECK(std::string(e.what()).find("MPI rank") != std::string::npos);
            }
        } else {
            CHECK(fs[i].get() == i);
        }
    }
    CHECK(pool.submit<square>(5).get() == 25); // the job goes on
}

TEST_CASE("mpi: a task over its timeout fails with task_timeout, the others run", "[mpi]") {
    auto pool = procpool::mpi::make_pool(small());
    auto slow = pool.submit_with<hangs>({.timeout = std::chrono::milliseconds(300)});
    auto fine = pool.submit<square>(3);
    CHECK_THROWS_AS(slow.get(), procpool::task_timeout);
    CHECK(fine.get() == 9);
}

// Sleeps `ms`, then answers: a limit that does not reach the node fails the test after the nap instead of hanging.
int naps(int ms) {
    usleep(static_cast<useconds_t>(ms) * 1000);
    return ms;
}
PROCPOOL_TASK(naps);

// The node's pool_options travel to the agents: the pool's timeout, under its name and its deprecated spelling
// (encoded in the same place), limits the tasks there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST_CASE("mpi: the node pool's timeout reaches the nodes, under either spelling", "[mpi]") {
    const bool deprecated = GENERATE(false, true);
    INFO((deprecated ? "pool_options::task_timeout" : "pool_options::timeout"));
    procpool::mpi::cluster_options o{.node = {.workers = 1}};
    (deprecated ? o.node.task_timeout : o.node.timeout) = std::chrono::milliseconds(300);
    auto pool = procpool::mpi::make_pool(o);
    auto slow = pool.submit<naps>(60000);
    CHECK_THROWS_WITH(slow.get(), Catch::Matchers::Contains("exceeded its timeout of 300 ms"));
    CHECK(pool.submit<square>(3).get() == 9);
}
#pragma GCC diagnostic pop

TEST_CASE("mpi: map over a million tiny items returns them in order", "[mpi]") {
    auto pool = procpool::mpi::make_pool(small());
    std::vector<int> xs(1'000'000);
    std::iota(xs.begin(), xs.end(), -500'000);
    auto out = pool.map<fails>(std::vector<int>(xs.begin() + 500'000, xs.end()), 10000);
    REQUIRE(out.size() == 500'000);
    bool in_order = true;
    for (std::size_t i = 0; i < out.size(); ++i) in_order &= out[i] == static_cast<int>(i);
    CHECK(in_order);
    auto sq = pool.map<square>(std::vector<int>(1'000'000, 3));
    CHECK(sq.size() == 1'000'000);
    CHECK(std::all_of(sq.begin(), sq.end(), [](int v) { return v == 9; }));
}

TEST_CASE("mpi: a large argument split into several messages arrives whole", "[mpi]") {
    auto pool = procpool::mpi::make_pool(small());
    auto data = make_bytes(3 << 20);
    const auto saved = procpool::detail::mpi_max_message;
    procpool::detail::mpi_max_message = 64 * 1024 + 3; // many messages, the last one short
    auto f = pool.submit<checksum>(data);
    procpool::detail::mpi_max_message = saved;
    CHECK(f.get() == checksum(data));
    auto back = pool.submit<make_bytes>(std::size_t{5 << 20}).get(); // a large result, one message
    CHECK(back == make_bytes(5 << 20));
}

TEST_CASE("mpi: initializer and finalizer run in every worker of every node", "[mpi]") {
    const std::string path = "/tmp/procpool_mpi_finalizer_" + std::to_string(getpid());
    std::remove(path.c_str());
    {
        auto pool = procpool::mpi::make_pool({.node = {.workers = 2,
                                                       .initializer = procpool::call<set_init_value>(42),
                                                       .finalizer = procpool::call<append_pid>(path)}});
        auto vs = pool.map<get_init_value>(std::vector<std::tuple<>>(16), 1);
        CHECK(std::all_of(vs.begin(), vs.end(), [](int v) { return v == 42; }));
    }
    std::ifstream in(path);
    std::set<std::string> pids;
    for (std::string line; std::getline(in, line);) pids.insert(line);
    CHECK(pids.size() == 4);
    std::remove(path.c_str());
}

TEST_CASE("mpi: an initializer that throws on the nodes fails make_pool, naming the rank", "[mpi]") {
    try {
        auto pool = procpool::mpi::make_pool({.node = {.workers = 1, .initializer = procpool::call<throw_in_init>()}});
        FAIL("make_pool succeeded");
    } catch (const procpool::initializer_error& e) {
        CHECK(std::string(e.what()).find("MPI rank") != std::string::npos);
        CHECK(std::string(e.what()).find("the database is not there") != std::string::npos);
    }
    CHECK(procpool::mpi::make_pool(small()).submit<square>(2).get() == 4); // the agents serve the next pool
}

TEST_CASE("mpi: the static world's agents serve one pool at a time", "[mpi]") {
    auto pool = procpool::mpi::make_pool(small());
    CHECK_THROWS_AS(procpool::mpi::make_pool(small()), procpool::start_error);
    CHECK(pool.submit<square>(4).get() == 16);
}

TEST_CASE("mpi: a node agent killed with SIGKILL fails its tasks with node_lost, the others go on", "[mpi_kill]") {
    auto pool = procpool::mpi::make_pool({.node = {.workers = 1}, .agent_timeout = std::chrono::milliseconds(1500), .window = 1});
    REQUIRE(pool.worker_pids().size() == 2);
    auto doomed = pool.submit<kill_my_agent>();
    try {
        doomed.get();
        FAIL("the task returned");
    } catch (const procpool::mpi::node_lost& e) {
        CHECK((e.rank() == 1 || e.rank() == 2));
        CHECK_FALSE(e.host().empty());
        CHECK(std::string(e.what()).find("MPI rank " + std::to_string(e.rank())) != std::string::npos);
    }
    CHECK(pool.worker_pids().size() == 1);
    auto rest = pool.map<square>(std::vector<int>{1, 2, 3, 4}, 1);
    CHECK(rest == std::vector<int>{1, 4, 9, 16});
}

TEST_CASE("mpi: an agent that runs another build is refused, naming its rank and host", "[.][mpi_mismatch]") {
    try {
        auto pool = procpool::mpi::make_pool(small());
        FAIL("make_pool succeeded");
    } catch (const procpool::mpi::node_refused& e) {
        CHECK(e.rank() == 2);
        CHECK_FALSE(e.host().empty());
        const std::string what = e.what();
        CHECK(what.find("MPI rank 2") != std::string::npos);
        CHECK(what.find("different task registry") != std::string::npos);
    }
}

TEST_CASE("mpi: dynamic pool, agents started with MPI_Comm_spawn", "[mpi_spawn]") {
    REQUIRE(procpool::mpi::serving_ranks() == 0); // a singleton
    auto pool = procpool::mpi::make_pool({.node = {.workers = 1}, .spawn = 2});
    CHECK(pool.size() == 2);
    auto agents = pool.worker_pids();
    REQUIRE(agents.size() == 2);
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 6; ++i) fs.push_back(pool.submit<aborts_on>(i, 2));
    CHECK_THROWS_AS(fs[2].get(), procpool::worker_died);
    for (int i : {0, 1, 3, 4, 5}) CHECK(fs[i].get() == i);
    auto out = pool.map<square>(std::vector<int>{1, 2, 3}, 1);
    CHECK(out == std::vector<int>{1, 4, 9});
    CHECK(pool.submit<parent_pid>().get() != static_cast<long>(getpid()));
}

int main(int argc, char** argv) {
    procpool::mpi::serve_if_worker_rank(argc, argv); // local workers and node agents serve here, then exit
    const int rc = Catch::Session().run(argc, argv);
    procpool::mpi::finalize();
    return rc;
}
