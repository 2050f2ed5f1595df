// SPDX-License-Identifier: BSL-1.0
// tests/pfr_shim/pfr.hpp: TEST-ONLY SHIM standing in for the standalone PFR (<pfr.hpp>, namespace pfr), which no
// package on the build machines provides. It forwards namespace pfr to Boost.PFR, so that the selection logic of
// codec.hpp (PROCPOOL_USE_STANDALONE_PFR, __has_include(<pfr.hpp>)) is built and run. Never install or ship it.
#ifndef PROCPOOL_TESTS_PFR_SHIM_PFR_HPP
#define PROCPOOL_TESTS_PFR_SHIM_PFR_HPP

#include <boost/pfr/core.hpp>

#define PROCPOOL_TEST_PFR_SHIM 1

namespace pfr = boost::pfr;

#endif // PROCPOOL_TESTS_PFR_SHIM_PFR_HPP
