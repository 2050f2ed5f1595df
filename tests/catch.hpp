// SPDX-License-Identifier: BSL-1.0
// tests/catch.hpp: Catch2 v3 when it is installed, v2 otherwise.
#ifndef PROCPOOL_TESTS_CATCH_HPP
#define PROCPOOL_TESTS_CATCH_HPP
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
#endif // PROCPOOL_TESTS_CATCH_HPP
