// SPDX-License-Identifier: BSL-1.0
// tests/pfr_shim/standalone_pfr_check.cpp: codec.hpp built with PROCPOOL_USE_STANDALONE_PFR takes <pfr.hpp>
// (namespace pfr) for aggregates; here <pfr.hpp> is the test-only shim next to this file (forwarding to Boost.PFR).
// Exit status 0 when the standalone header was chosen and an aggregate round-trips through it.
#include <procpool/codec.hpp>

#include <cstdio>
#include <string>
#include <vector>

#ifndef PROCPOOL_TEST_PFR_SHIM
#error "procpool test: <pfr.hpp> was not taken from tests/pfr_shim although PROCPOOL_USE_STANDALONE_PFR is defined"
#endif
static_assert(procpool::detail::standalone_pfr, "procpool test: codec.hpp did not select the standalone PFR");

struct inner {
    int a;
    std::string b;
};
struct outer {
    double x;
    inner in;
    std::vector<inner> many;
};
static_assert(procpool::serializable<outer>);

int main() {
    outer o{1.5, {2, "two"}, {{3, "three"}, {4, "four"}}};
    auto back = procpool::decode<outer>(procpool::encode(o));
    bool ok = back.x == 1.5 && back.in.a == 2 && back.in.b == "two" && back.many.size() == 2 &&
              back.many[1].b == "four";
    std::puts(ok ? "standalone PFR: aggregate round trip ok" : "standalone PFR: aggregate round trip FAILED");
    return ok ? 0 : 1;
}
