// SPDX-License-Identifier: BSL-1.0
// tests/wire_test.cpp: detail/wire.hpp, the messages between the pool and its workers: each has one writer and one
// reader, and they agree with each other and with the codec's encoding of the same fields.
#include "catch.hpp"

#include <procpool/detail/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

TEST_CASE("a job head is written once and read back, as the codec encodes an id and a name", "[wire]") {
    std::vector<std::byte> buf;
    procpool::detail::write_job_head(buf, 42, "geo::area");
    procpool::reader r(buf);
    auto head = procpool::detail::read_job_head(r);
    CHECK(head.id == 42);
    CHECK(head.task == "geo::area");
    CHECK(r.remaining() == 0);
    // The same bytes as the codec's own id and std::string.
    std::vector<std::byte> codec;
    procpool::writer w(codec);
    w.write(std::uint64_t{42});
    w.write(std::string("geo::area"));
    CHECK(codec == buf);
}

TEST_CASE("a batch item's length is reserved before it is encoded and filled in after", "[wire]") {
    std::vector<std::byte> buf;
    const auto at = procpool::detail::reserve_item_length(buf);
    procpool::writer(buf).write(std::string("hello"));
    procpool::writer(buf).write(std::int32_t{-7});
    procpool::detail::finish_item(buf, at);
    procpool::reader r(buf);
    const auto len = r.read<std::uint64_t>();
    CHECK(len == buf.size() - 8);
    CHECK(r.read<std::string>() == "hello");
    CHECK(r.read<std::int32_t>() == -7);
    CHECK(r.remaining() == 0);
}

TEST_CASE("a truncated job head is a protocol_error, never a read past the end", "[wire]") {
    std::vector<std::byte> buf;
    procpool::detail::write_job_head(buf, 1, "a task name");
    buf.resize(buf.size() - 3);
    procpool::reader r(buf);
    CHECK_THROWS_AS(procpool::detail::read_job_head(r), procpool::protocol_error);
}
