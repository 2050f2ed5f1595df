// SPDX-License-Identifier: BSL-1.0
// examples/in_process_debugging.cpp: start_method::in_process, procpool's n_jobs=1. Tasks run in the calling thread,
// so a debugger's breakpoints, a sanitizer's reports and printf all work as in a plain call; unlike a plain call,
// arguments and results still go through encoding and decoding, so a serialization bug shows up here too.
//   example_in_process_debugging            in process (this file's default)
//   example_in_process_debugging --spawn    the same code in worker processes
#include <procpool/procpool.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int word_count(std::string text) {
    int words = 0;
    bool in_word = false;
    for (char ch : text) { // a breakpoint here is hit in the debugger's process with in_process
        bool letter = ch != ' ' && ch != '\n';
        if (letter && !in_word) ++words;
        in_word = letter;
    }
    return words;
}
PROCPOOL_TASK(word_count);

// A type whose decoder reads more than its encoder wrote: the kind of bug a direct call would never show.
struct range_query {
    int from = 0, to = 0;
    void procpool_encode(procpool::writer& w) const { w.write(from); } // forgets `to`
    static range_query procpool_decode(procpool::reader& r) {
        range_query q;
        q.from = r.read<int>();
        q.to = r.read<int>();
        return q;
    }
};
int width(range_query q) { return q.to - q.from; }
PROCPOOL_TASK(width);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    bool spawn = argc > 1 && std::strcmp(argv[1], "--spawn") == 0;
    procpool::pool pool{{.start = spawn ? procpool::start_method::spawn : procpool::start_method::in_process}};
    std::printf("start method: %s, %zu worker processes\n", spawn ? "spawn" : "in_process", pool.size());

    std::vector<std::string> texts{"one two three", "a b", ""};
    std::printf("word counts:");
    for (int n : pool.map<word_count>(texts)) std::printf(" %d", n);
    std::printf("\n");

    try {
        std::printf("width: %d\n", pool.submit<width>(range_query{2, 9}).get());
    } catch (const procpool::protocol_error& e) { // the truncated value is found, as it would be in a worker
        std::printf("serialization bug found: %s\n", e.what());
    }
}
