// SPDX-License-Identifier: BSL-1.0
// procpool/procpool.hpp: umbrella header; includes every public header and nothing else.
#ifndef PROCPOOL_PROCPOOL_HPP
#define PROCPOOL_PROCPOOL_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/context.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/lazy_results.hpp>
#include <procpool/log.hpp>
#include <procpool/options.hpp>
#include <procpool/per_process.hpp>
#include <procpool/plugin.hpp>
#include <procpool/pool.hpp>
#include <procpool/progress.hpp>
#include <procpool/protocol.hpp>
#include <procpool/shared_memory.hpp>
#include <procpool/task.hpp>
#include <procpool/worker.hpp>

#endif // PROCPOOL_PROCPOOL_HPP
