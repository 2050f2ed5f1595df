// SPDX-License-Identifier: BSL-1.0
// examples/per_process_resource.cpp: a resource that must not be shared across processes (an open log file,
// with its FILE* buffer and file offset) held in procpool::per_process, so each worker opens its own.
//
// Without it, a fork worker inherits the parent's FILE*: both processes buffer into copies of one buffer and
// write through one shared file offset, so lines are lost, doubled or interleaved; and closing it in the child
// would flush the parent's unwritten buffer a second time. per_process opens a file per process on first use,
// leaves the parent's alone in a forked child, and closes the worker's when it retires.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

static std::string g_log_dir; // set by the parent at run time; reaches spawned workers as a context
std::string get_log_dir() { return g_log_dir; }
void set_log_dir(std::string d) { g_log_dir = std::move(d); }
PROCPOOL_CONTEXT("example.log_dir", get_log_dir, set_log_dir);

/// One process's log file.
class log_file {
public:
    log_file() : pid_(procpool::this_process_id()) {
        auto path = fs::path(g_log_dir) / ("process-" + std::to_string(pid_) + ".log");
        file_ = std::fopen(path.string().c_str(), "a");
        if (!file_) throw std::runtime_error("cannot open " + path.string());
        std::fprintf(file_, "opened by %ld\n", pid_);
    }
    ~log_file() {
        std::fprintf(file_, "closed by %ld\n", procpool::this_process_id());
        std::fclose(file_); // flushes the buffer: in a fork worker, only on retire (it leaves through _exit)
    }
    log_file(const log_file&) = delete;
    log_file& operator=(const log_file&) = delete;
    void write(const std::string& line) { std::fprintf(file_, "%ld: %s\n", pid_, line.c_str()); }

private:
    long pid_;
    std::FILE* file_ = nullptr;
};

static procpool::per_process<log_file> g_log{[] { return log_file(); }};

long work(int item) {
    g_log->write("item " + std::to_string(item));
    return procpool::this_process_id();
}
PROCPOOL_TASK(work);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);

    auto dir = fs::temp_directory_path() / ("procpool-per-process-" + std::to_string(procpool::this_process_id()));
    fs::create_directories(dir);
    g_log_dir = dir.string();
    g_log->write("the parent's own log, opened before the pools"); // a fork worker inherits this FILE*

    bool ok = true;
    std::set<long> workers;
#if PROCPOOL_WINDOWS
    const std::vector<procpool::start_method> methods{procpool::start_method::spawn}; // Windows has no fork()
#else
    const std::vector<procpool::start_method> methods{procpool::start_method::fork, procpool::start_method::spawn};
#endif
    for (auto method : methods) {
        procpool::pool pool{{.workers = 2, .start = method}};
        std::vector<int> items{0, 1, 2, 3, 4, 5, 6, 7};
        for (long pid : pool.map<work>(items, 1)) workers.insert(pid);
    } // the workers retire here: each closes its own file (per_process destroys its instance)
    g_log->write("the parent's log, still open after the pools");
    g_log.reset(); // close the parent's file now, to read it below

    long parent = procpool::this_process_id();
    std::size_t items_logged = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::ifstream in(entry.path());
        std::vector<std::string> lines;
        for (std::string l; std::getline(in, l);) lines.push_back(l);
        std::string pid = entry.path().stem().string().substr(std::string("process-").size());
        std::size_t own = 0;
        for (const auto& l : lines) {
            if (l.rfind(pid + ": ", 0) == 0 && l.find("item ") != std::string::npos) ++items_logged;
            if (l.rfind(pid + ": ", 0) == 0) ++own;
        }
        bool whole = lines.size() == own + 2 && lines.front() == "opened by " + pid && lines.back() == "closed by " + pid;
        std::printf("%s %s: %zu lines, all its own: %s\n", std::stol(pid) == parent ? "parent" : "worker",
                    pid.c_str(), lines.size(), whole ? "yes" : "NO");
        ok = ok && whole;
    }
    std::printf("%zu worker processes logged %zu items, each to its own file\n", workers.size(), items_logged);
    fs::remove_all(dir);
    return ok && items_logged == 8 * methods.size() && workers.size() >= 2 ? 0 : 1;
}
