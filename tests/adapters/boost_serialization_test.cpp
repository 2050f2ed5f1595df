// SPDX-License-Identifier: BSL-1.0
// tests/adapters/boost_serialization_test.cpp: types with Boost.Serialization code (a serialize member, save/load,
// a private serialize, non-intrusive free functions) cross the process boundary through the optional adapter.
// Built as its own executable (with tests/main.cpp) because Boost.Serialization is a compiled library.
#include "../catch.hpp"

#include <procpool/adapters/boost_serialization.hpp>
#include <procpool/procpool.hpp>

#include <boost/serialization/split_member.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bser_t {
struct reading { // a public serialize member: found without help
    std::string sensor;
    std::vector<double> values;
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& sensor& values;
    }
    bool operator==(const reading&) const = default;
};

class account { // a private serialize reached through boost::serialization::access: opted in below
public:
    account() = default;
    account(std::string owner, long balance) : owner_(std::move(owner)), balance_(balance) {}
    [[nodiscard]] long balance() const { return balance_; }
    bool operator==(const account&) const = default;

private:
    friend class boost::serialization::access;
    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& owner_& balance_;
    }
    std::string owner_;
    long balance_ = 0;
};

class celsius { // save/load members
public:
    celsius() = default;
    explicit celsius(double c) : c_(c) {}
    [[nodiscard]] double value() const { return c_; }
    template <class Archive>
    void save(Archive& ar, unsigned) const {
        const long milli = static_cast<long>(c_ * 1000);
        ar << milli;
    }
    template <class Archive>
    void load(Archive& ar, unsigned) {
        long milli = 0;
        ar >> milli;
        c_ = static_cast<double>(milli) / 1000;
    }
    BOOST_SERIALIZATION_SPLIT_MEMBER()

private:
    double c_ = 0;
};

class third_party { // no procpool or Boost code of its own: non-intrusive free serialize, opted in below
public:
    third_party() = default;
    explicit third_party(int v) : v_(v) {}
    int v_ = 0;
};

long total(std::vector<account> accounts) {
    long t = 0;
    for (const auto& a : accounts) t += a.balance();
    return t;
}
reading doubled(reading r) {
    for (auto& v : r.values) v *= 2;
    r.sensor += "x2";
    return r;
}
celsius warmer(celsius c) { return celsius(c.value() + 1.5); }
third_party next(third_party t) { return third_party(t.v_ + 1); }
} // namespace bser_t

namespace boost::serialization {
template <class Archive>
void serialize(Archive& ar, bser_t::third_party& t, unsigned) {
    ar& t.v_;
}
} // namespace boost::serialization

PROCPOOL_BOOST_SERIALIZABLE(bser_t::account);
PROCPOOL_BOOST_SERIALIZABLE(bser_t::third_party);
PROCPOOL_TASK(bser_t::total);
PROCPOOL_TASK(bser_t::doubled);
PROCPOOL_TASK(bser_t::warmer);
PROCPOOL_TASK(bser_t::next);

TEST_CASE("types with Boost.Serialization code cross through the adapter", "[codec][boost_serialization]") {
    STATIC_REQUIRE(procpool::serializable<bser_t::reading>);
    STATIC_REQUIRE(procpool::serializable<bser_t::account>);
    STATIC_REQUIRE(procpool::serializable<bser_t::celsius>);
    STATIC_REQUIRE(procpool::serializable<bser_t::third_party>);
    STATIC_REQUIRE(procpool::serializable<std::vector<bser_t::account>>);

    bser_t::reading r{"t1", {1.5, -2}};
    CHECK(procpool::decode<bser_t::reading>(procpool::encode(r)) == r);
    bser_t::account a("ada", 42);
    CHECK(procpool::decode<bser_t::account>(procpool::encode(a)) == a);

    procpool::pool p{{.workers = 1}}; // spawned workers: the adapter on both sides
    CHECK(p.submit<bser_t::total>(std::vector<bser_t::account>{a, bser_t::account("bob", 8)}).get() == 50);
    CHECK(p.submit<bser_t::doubled>(r).get() == bser_t::reading{"t1x2", {3, -4}});
    CHECK(p.submit<bser_t::warmer>(bser_t::celsius(20)).get().value() == 21.5);
    CHECK(p.submit<bser_t::next>(bser_t::third_party(6)).get().v_ == 7);
}

TEST_CASE("bytes the archive rejects are a protocol_error", "[codec][boost_serialization]") {
    auto wire = procpool::encode(bser_t::reading{"sensor", {1, 2, 3}});
    std::vector<std::byte> cut(wire.begin(), wire.end() - 5);
    const auto len = static_cast<std::uint64_t>(cut.size() - 8); // the length prefix says what is left
    for (std::size_t b = 0; b < 8; ++b) cut[b] = static_cast<std::byte>((len >> (8 * b)) & 0xff);
    CHECK_THROWS_AS(procpool::decode<bser_t::reading>(cut), procpool::protocol_error);
    try {
        (void)procpool::decode<bser_t::reading>(cut);
    } catch (const procpool::protocol_error& e) {
        CHECK(std::string(e.what()).find("Boost.Serialization could not decode the value at byte offset 0") !=
              std::string::npos);
    }
}
