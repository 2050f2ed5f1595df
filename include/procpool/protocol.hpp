// SPDX-License-Identifier: BSL-1.0
// procpool/protocol.hpp: kept for code that included it. The messages between the pool and its workers are internal
// now (procpool/detail/wire.hpp); task_call is in procpool/task.hpp.
#ifndef PROCPOOL_PROTOCOL_HPP
#define PROCPOOL_PROTOCOL_HPP

#include <procpool/detail/wire.hpp>
#include <procpool/task.hpp>

#endif // PROCPOOL_PROTOCOL_HPP
