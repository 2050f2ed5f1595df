// SPDX-License-Identifier: BSL-1.0
// procpool/worker.hpp: serve_if_worker, the call that makes a spawned process a worker.
#ifndef PROCPOOL_WORKER_HPP
#define PROCPOOL_WORKER_HPP

#include <procpool/config.hpp>

PROCPOOL_BEGIN_NAMESPACE

/// Call first in main(): in a process that procpool started as a worker it serves tasks and exits; in any
/// other process it returns at once. Spawned workers run static initialization and then main(), so a pool
/// constructed before this call would start workers recursively: procpool detects that and says so.
/// \code
/// int main(int argc, char** argv) {
///     procpool::serve_if_worker(argc, argv);
///     ...
/// }
/// \endcode
PROCPOOL_DECL void serve_if_worker(int argc, char** argv);

PROCPOOL_END_NAMESPACE

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/worker_main.hpp>
#endif

#endif // PROCPOOL_WORKER_HPP
