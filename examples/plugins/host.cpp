// SPDX-License-Identifier: BSL-1.0
// examples/plugins/host.cpp: loads a plugin at run time and runs its tasks in spawned workers.
//   example_plugin_host <path to the shapes plugin>
#include "shapes.hpp"

#include <procpool/procpool.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv); // spawned workers load the parent's plugins before their first task
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <plugin.so>\n", argv[0]);
        return 2;
    }
    procpool::pool pool{{.workers = 2, .start = procpool::start_method::spawn}};
    procpool::load_plugin(argv[1]); // after the pool started: its live workers get the plugin before their next task

    std::printf("typed:    area = %.3f\n", pool.submit<circle_area>(shapes::circle{2.0}).get());
    std::printf("by name:  %s\n", pool.submit_by_name<std::string>("shapes::label", shapes::circle{2.0}).get().c_str());
    try {
        (void)pool.submit_by_name<double>("shapes::area", 2.0); // the registered parameter is shapes::circle
    } catch (const procpool::signature_error& e) {
        std::printf("refused:  %s\n", e.what());
    }
    return 0;
}
