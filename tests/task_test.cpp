// SPDX-License-Identifier: BSL-1.0
// tests/task_test.cpp: task names, the registry, duplicate detection, the registry hash.
#include "catch.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <string>

namespace task_t {
int twice(int x) { return 2 * x; }
namespace inner {
std::string echo(const std::string& s) { return s; }
} // namespace inner
float scale(float x) { return x * 2; }
double scale(double x) { return x * 3; }
constexpr auto scale_float = static_cast<float (*)(float)>(scale);
void nothing() {}
} // namespace task_t

PROCPOOL_TASK(task_t::twice);
PROCPOOL_TASK(::task_t::inner::echo);
PROCPOOL_TASK_AS("task_t::scale<float>", task_t::scale_float);
PROCPOOL_TASK_AS("task_t::scale<double>", static_cast<double (*)(double)>(task_t::scale));
PROCPOOL_TASK(task_t::nothing);

TEST_CASE("a task's name is its spelled name, or the explicit one", "[task]") {
    STATIC_REQUIRE(procpool::task_traits<task_t::twice>::name == "task_t::twice");
    STATIC_REQUIRE(procpool::task_traits<task_t::inner::echo>::name == "task_t::inner::echo"); // leading :: dropped
    STATIC_REQUIRE(procpool::task_traits<task_t::scale_float>::name == "task_t::scale<float>");
    STATIC_REQUIRE(procpool::registered_task<task_t::twice>);
    STATIC_REQUIRE(std::is_same_v<procpool::task_result_t<task_t::inner::echo>, std::string>);
    STATIC_REQUIRE(std::is_same_v<procpool::task_traits<task_t::inner::echo>::args_tuple, std::tuple<std::string>>);
    STATIC_REQUIRE(std::is_void_v<procpool::task_result_t<task_t::nothing>>);
    auto names = procpool::registered_task_names();
    for (const char* n : {"task_t::twice", "task_t::inner::echo", "task_t::scale<float>", "task_t::scale<double>"})
        CHECK(std::find(names.begin(), names.end(), n) != names.end());
}

TEST_CASE("overloads registered under explicit names run the right overload", "[task]") {
    procpool::pool p{{.workers = 1, .start = procpool::start_method::in_process}};
    CHECK(p.submit<task_t::scale_float>(1.5f).get() == 3.0f);
    constexpr auto scale_double = static_cast<double (*)(double)>(task_t::scale);
    CHECK(p.submit<scale_double>(1.5).get() == 4.5);
}

TEST_CASE("a duplicate task name is reported with both registrations", "[task]") {
    procpool::detail::registry r;
    auto inv = &procpool::detail::invoke_task<task_t::twice>;
    r.add({"dup", "sig", inv, "a.cpp:10", ""});
    r.add({"dup", "sig", inv, "a.cpp:10", ""}); // the same registration seen twice is not a conflict
    CHECK_NOTHROW(r.verify());
    r.add({"dup", "other", inv, "b.cpp:20", ""});
    try {
        r.verify();
        FAIL("verify() should have thrown");
    } catch (const procpool::registry_error& e) {
        std::string what = e.what();
        CHECK(what.find("\"dup\"") != std::string::npos);
        CHECK(what.find("a.cpp:10") != std::string::npos);
        CHECK(what.find("b.cpp:20") != std::string::npos);
        CHECK(what.find("PROCPOOL_TASK_AS") != std::string::npos);
    }
}

TEST_CASE("the registry hash depends on names and signatures, not on registration order", "[task]") {
    auto inv = &procpool::detail::invoke_task<task_t::twice>;
    procpool::detail::registry a, b, c, d;
    a.add({"x", "s1", inv, "f:1", ""});
    a.add({"y", "s2", inv, "f:2", ""});
    b.add({"y", "s2", inv, "f:2", ""});
    b.add({"x", "s1", inv, "f:1", ""});
    c.add({"x", "s1", inv, "f:1", ""});
    c.add({"y", "s3", inv, "f:2", ""}); // same name, other signature
    d.add({"x", "s1", inv, "f:1", ""});
    CHECK(a.hash() == b.hash());
    CHECK(a.hash() != c.hash());
    CHECK(a.hash() != d.hash());
    CHECK(procpool::detail::registry::instance().hash() != procpool::detail::registry().hash());
}

TEST_CASE("an unknown task name fails that task with unknown_task listing what the worker has", "[task]") {
    std::vector<std::byte> out;
    procpool::detail::run_call("no_such_task", {}, out);
    procpool::reader r(out);
    REQUIRE_FALSE(r.read<bool>());
    auto rec = r.read<procpool::detail::exception_record>();
    CHECK(rec.kind == procpool::detail::exception_kind::unknown_task);
    CHECK(rec.what.find("no_such_task") != std::string::npos);
    CHECK(rec.what.find("task_t::twice") != std::string::npos);
    CHECK_THROWS_AS(procpool::detail::throw_exception_record(rec), procpool::unknown_task);
}

TEST_CASE("arguments that do not match the registered signature are a protocol_error, not a misdecoded value",
          "[task]") {
    // What a worker gets if a frame carries the wrong bytes for a task: a clear error for that task.
    std::vector<std::byte> out;
    auto args = procpool::encode(std::string("not an int, and too long"));
    procpool::detail::run_call("task_t::twice", args, out);
    procpool::reader r(out);
    REQUIRE_FALSE(r.read<bool>());
    auto rec = r.read<procpool::detail::exception_record>();
    CHECK(rec.kind == procpool::detail::exception_kind::protocol_error);
    CHECK_THROWS_AS(procpool::detail::throw_exception_record(rec), procpool::protocol_error);
}
