// SPDX-License-Identifier: BSL-1.0
// tests/codec_test.cpp: round trips, wire layout pins, property and hardening tests of procpool/codec.hpp.
#include "catch.hpp"

#include <procpool/codec.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <bitset>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace {

using bytes_t = std::vector<std::byte>;
using procpool::decode;
using procpool::encode;
using procpool::protocol_error;

bytes_t bytes(std::initializer_list<int> v) {
    bytes_t out;
    for (int b : v) out.push_back(static_cast<std::byte>(b));
    return out;
}

bytes_t le64(std::uint64_t n) {
    bytes_t out;
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(n >> (8 * i)));
    return out;
}

bytes_t cat(bytes_t a, const bytes_t& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

template <class T>
T round_trip(const T& v) {
    return decode<T>(encode(v));
}

bool contains(const char* haystack, std::string_view needle) {
    return std::string_view(haystack).find(needle) != std::string_view::npos;
}

// The protocol_error that decoding `in` as T throws, or nothing when it succeeds. Any other exception escapes
// and fails the test.
template <class T>
std::optional<protocol_error> decode_error(std::span<const std::byte> in) {
    try {
        (void)decode<T>(in);
        return std::nullopt;
    } catch (const protocol_error& e) {
        return e;
    }
}

// ---- types under test ---------------------------------------------------------------------------------------

enum class color : std::int8_t { red = -128, green = 0, blue = 127 };
enum plain_enum : std::uint64_t { plain_zero = 0, plain_max = std::numeric_limits<std::uint64_t>::max() };
enum class flag : bool { off = false, on = true };
enum class wide : std::uint16_t { x = 0x0102 };

struct empty_aggregate {
    bool operator==(const empty_aggregate&) const = default;
};

// Three levels of aggregates, reflected through Boost.PFR.
struct inner {
    std::int32_t id = 0;
    std::string name;
    std::optional<double> weight;
    bool operator==(const inner&) const = default;
};
struct middle {
    inner head;
    std::vector<inner> items;
    std::variant<std::monostate, std::int64_t, std::string> tag;
    bool operator==(const middle&) const = default;
};
struct outer {
    middle m;
    std::map<std::string, middle> by_name;
    // Not std::array<inner, 2>: g++ 12 and 13 crash (an internal compiler error) when Boost.PFR reflects an
    // aggregate that holds an array of a class with a non-trivial destructor.
    std::pair<inner, inner> pair;
    const std::uint16_t version = 7; // const fields are decoded too
    bool operator==(const outer&) const = default;
};

struct no_padding {
    std::uint8_t a;
    std::uint32_t b;
    std::uint16_t c;
};

// Member customization point, with an invariant the decoder enforces.
class celsius {
public:
    explicit celsius(double v) : v_(v) {}
    [[nodiscard]] double value() const { return v_; }
    bool operator==(const celsius&) const = default;

    void procpool_encode(procpool::writer& w) const { w.write(v_); }
    static celsius procpool_decode(procpool::reader& r) {
        double v = r.read<double>();
        if (!(v >= -273.15)) r.fail_invalid("temperature below absolute zero");
        return celsius(v);
    }

private:
    double v_;
};

// An aggregate with the member customization point: the custom encoding wins over PFR's.
struct versioned {
    std::uint16_t a = 0;
    bool operator==(const versioned&) const = default;
    void procpool_encode(procpool::writer& w) const {
        w.write(std::uint8_t{0xee});
        w.write(a);
    }
    static versioned procpool_decode(procpool::reader& r) {
        if (r.read<std::uint8_t>() != 0xee) r.fail_invalid("versioned: bad marker");
        return versioned{r.read<std::uint16_t>()};
    }
};

// A move-only class with the member customization point.
class token {
public:
    explicit token(std::uint32_t id) : id_(std::make_unique<std::uint32_t>(id)) {}
    token(token&&) noexcept = default;
    token& operator=(token&&) noexcept = default;
    token(const token&) = delete;
    token& operator=(const token&) = delete;
    ~token() = default;
    [[nodiscard]] std::uint32_t id() const { return *id_; }

    void procpool_encode(procpool::writer& w) const { w.write(*id_); }
    static token procpool_decode(procpool::reader& r) { return token(r.read<std::uint32_t>()); }

private:
    std::unique_ptr<std::uint32_t> id_;
};

// A move-only aggregate.
struct move_only {
    std::unique_ptr<std::string> name;
    std::vector<std::unique_ptr<int>> values;
    // Not std::optional<token>: Boost.PFR 1.81 cannot count the fields of an aggregate holding an optional of a
    // move-only class (its probe instantiates a copy).
    std::unique_ptr<token> tok;
};

struct polymorphic {
    virtual ~polymorphic() = default;
    int x = 0;
};
struct with_mutex {
    int a;
    std::mutex m;
};
struct with_pointer {
    int a;
    const char* p;
};
struct with_function {
    std::function<void()> f;
};
struct with_c_array {
    int a;
    int arr[3];
};
struct with_nested_bad {
    inner ok;
    std::vector<std::optional<with_pointer>> bad;
};
class opaque {
public:
    explicit opaque(int v) : v_(v) {}
    [[nodiscard]] int get() const { return v_; }

private:
    int v_;
};

} // namespace

// The ADL customization point, for a class with private state.
namespace geo {
class polar {
public:
    polar() = default;
    polar(double r, double theta) : r_(r), theta_(theta) {}
    [[nodiscard]] double r() const { return r_; }
    [[nodiscard]] double theta() const { return theta_; }
    bool operator==(const polar&) const = default;

private:
    double r_ = 0, theta_ = 0;
};
inline void procpool_encode(procpool::writer& w, const polar& p) {
    w.write(p.r());
    w.write(p.theta());
}
inline polar procpool_decode(procpool::reader& r, procpool::type_tag<polar>) {
    double radius = r.read<double>();
    double theta = r.read<double>();
    return polar(radius, theta);
}
} // namespace geo

namespace {

// Records the largest single allocation request, in bytes, to prove that corrupt counts are refused before
// anything is allocated.
struct alloc_stats {
    static inline std::size_t largest = 0;
    static inline std::size_t calls = 0;
    static void reset() { largest = calls = 0; }
};
template <class T>
struct counting_allocator {
    using value_type = T;
    counting_allocator() = default;
    template <class U>
    counting_allocator(const counting_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        alloc_stats::largest = std::max(alloc_stats::largest, n * sizeof(T));
        ++alloc_stats::calls;
        return std::allocator<T>{}.allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
    template <class U>
    bool operator==(const counting_allocator<U>&) const noexcept {
        return true;
    }
};
using counted_ints = std::vector<int, counting_allocator<int>>;
using counted_string = std::basic_string<char, std::char_traits<char>, counting_allocator<char>>;

template <class T>
bool same_bits(T a, T b) {
    return std::memcmp(&a, &b, sizeof(T)) == 0;
}

} // namespace

// ---- round trips ----------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("codec: integers round-trip at their extremes", "[codec]", std::int8_t, std::uint8_t, std::int16_t,
                   std::uint16_t, std::int32_t, std::uint32_t, std::int64_t, std::uint64_t, char, signed char,
                   unsigned char, wchar_t, char8_t, char16_t, char32_t, long, unsigned long long) {
    using lim = std::numeric_limits<TestType>;
    for (TestType v : {lim::min(), lim::max(), TestType{0}, TestType{1}, static_cast<TestType>(lim::max() / 3)}) {
        REQUIRE(round_trip(v) == v);
        REQUIRE(encode(v).size() == sizeof(TestType));
    }
}

TEMPLATE_TEST_CASE("codec: floating point round-trips bit for bit", "[codec]", float, double) {
    using lim = std::numeric_limits<TestType>;
    using bits = std::conditional_t<sizeof(TestType) == 4, std::uint32_t, std::uint64_t>;
    std::vector<TestType> values = {lim::min(),      lim::max(),       lim::lowest(),    lim::denorm_min(),
                                    lim::epsilon(),  lim::infinity(),  -lim::infinity(), TestType(0),
                                    -TestType(0),    TestType(-1.5),   lim::quiet_NaN(), -lim::quiet_NaN(),
                                    lim::signaling_NaN()};
    // NaNs with payloads, quiet and signalling, both signs.
    if constexpr (sizeof(TestType) == 4) {
        for (bits b : {0x7fc00001u, 0xffc12345u, 0x7f800001u, 0x7fa00000u, 0xff80beefu})
            values.push_back(std::bit_cast<TestType>(b));
    } else {
        for (bits b : {0x7ff8000000000001ull, 0xfff8deadbeef0001ull, 0x7ff0000000000001ull, 0x7ff4000000000000ull,
                       0xfff000000000cafeull})
            values.push_back(std::bit_cast<TestType>(b));
    }
    for (TestType v : values) {
        INFO("bits " << std::bit_cast<bits>(v));
        REQUIRE(std::bit_cast<bits>(round_trip(v)) == std::bit_cast<bits>(v));
    }
    // Sequences take the memcpy path, lists the element path, optional and variant their own: all keep the bits.
    auto vec = round_trip(values);
    auto lst = round_trip(std::list<TestType>(values.begin(), values.end()));
    REQUIRE(vec.size() == values.size());
    REQUIRE(lst.size() == values.size());
    auto it = lst.begin();
    for (std::size_t i = 0; i < values.size(); ++i, ++it) {
        REQUIRE(same_bits(vec[i], values[i]));
        REQUIRE(same_bits(*it, values[i]));
        REQUIRE(same_bits(*round_trip(std::optional<TestType>(values[i])), values[i]));
        REQUIRE(same_bits(std::get<1>(round_trip(std::variant<int, TestType>(values[i]))), values[i]));
    }
}

TEST_CASE("codec: bool, enums and std::byte round-trip", "[codec]") {
    REQUIRE(round_trip(true) == true);
    REQUIRE(round_trip(false) == false);
    for (color c : {color::red, color::green, color::blue}) REQUIRE(round_trip(c) == c);
    REQUIRE(round_trip(plain_max) == plain_max);
    REQUIRE(round_trip(plain_zero) == plain_zero);
    REQUIRE(round_trip(flag::on) == flag::on);
    REQUIRE(round_trip(flag::off) == flag::off);
    for (int b = 0; b < 256; ++b) REQUIRE(round_trip(static_cast<std::byte>(b)) == static_cast<std::byte>(b));
}

TEST_CASE("codec: strings round-trip, embedded NULs included", "[codec]") {
    using namespace std::string_literals;
    REQUIRE(round_trip(""s).empty());
    auto nuls = "a\0b\0\0c\0"s;
    REQUIRE(nuls.size() == 7);
    REQUIRE(round_trip(nuls) == nuls);
    std::string all;
    for (int i = 0; i < 1000; ++i) all.push_back(static_cast<char>(i % 256));
    REQUIRE(round_trip(all) == all);
    std::u16string u16 = u"h\u00e9llo \u4e16\u754c \0 end"s;
    REQUIRE(round_trip(u16) == u16);
    std::u32string u32 = U"\U0001F600\0x"s;
    REQUIRE(round_trip(u32) == u32);
    std::wstring ws = L"wide\0string"s;
    REQUIRE(round_trip(ws) == ws);
    std::u8string u8 = u8"utf-8 \u00e9"s;
    REQUIRE(round_trip(u8) == u8);
    counted_string cs("a string longer than the small-string buffer");
    REQUIRE(round_trip(cs) == cs);
}

TEST_CASE("codec: sequences, sets and maps round-trip", "[codec]") {
    using namespace std::string_literals;
    REQUIRE(round_trip(std::vector<int>{}).empty());
    std::vector<int> vi{std::numeric_limits<int>::min(), -1, 0, 1, std::numeric_limits<int>::max()};
    REQUIRE(round_trip(vi) == vi);
    std::vector<std::string> vs{"", "one", "two\0two"s};
    REQUIRE(round_trip(vs) == vs);
    std::deque<double> dq{1.5, -2.25, 1e300};
    REQUIRE(round_trip(dq) == dq);
    std::list<std::string> ls{"x", "", "zz"};
    REQUIRE(round_trip(ls) == ls);
    std::set<int> st{5, -3, 9};
    REQUIRE(round_trip(st) == st);
    std::multiset<int> ms{1, 1, 2, 2, 2, -7};
    REQUIRE(round_trip(ms) == ms);
    std::unordered_set<std::string> us{"a", "b", "c", ""};
    REQUIRE(round_trip(us) == us);
    std::unordered_multiset<int> ums{4, 4, 4, 1};
    REQUIRE(round_trip(ums) == ums);
    std::map<std::string, int> mp{{"one", 1}, {"two", 2}, {"", 0}};
    REQUIRE(round_trip(mp) == mp);
    std::multimap<int, std::string> mm{{1, "b"}, {1, "a"}, {0, "z"}, {1, "c"}};
    auto mm2 = round_trip(mm);
    REQUIRE(mm2 == mm); // the order of equal keys is kept
    std::unordered_map<int, std::vector<int>> um{{1, {1, 2}}, {2, {}}, {-3, {7}}};
    REQUIRE(round_trip(um) == um);
    std::unordered_multimap<std::string, int> umm{{"k", 1}, {"k", 2}, {"j", 3}};
    REQUIRE(round_trip(umm) == umm);
    std::map<int, std::monostate> set_like_map{{1, {}}, {2, {}}};
    REQUIRE(round_trip(set_like_map) == set_like_map);
    std::vector<std::vector<std::vector<std::uint8_t>>> deep{{{1}, {}}, {}, {{2, 3}}};
    REQUIRE(round_trip(deep) == deep);
}

TEST_CASE("codec: vector<bool> round-trips at every small size", "[codec]") {
    std::mt19937_64 rng(0xb001);
    for (std::size_t n = 0; n < 70; ++n) {
        std::vector<bool> v;
        for (std::size_t i = 0; i < n; ++i) v.push_back(rng() & 1);
        REQUIRE(round_trip(v) == v);
        REQUIRE(encode(v).size() == 8 + n); // one byte per element, not packed
    }
}

TEST_CASE("codec: std::array, optional, variant, tuple and pair round-trip", "[codec]") {
    std::array<int, 4> a{1, -2, 3, -4};
    REQUIRE(round_trip(a) == a);
    std::array<std::string, 2> as{"x", ""};
    REQUIRE(round_trip(as) == as);
    REQUIRE(round_trip(std::array<int, 0>{}) == std::array<int, 0>{});
    std::array<std::monostate, 3> am{};
    REQUIRE(round_trip(am) == am);

    REQUIRE(round_trip(std::optional<int>{}) == std::nullopt);
    REQUIRE(round_trip(std::optional<int>{42}) == 42);
    REQUIRE(round_trip(std::optional<std::string>{"s"}) == "s");
    std::optional<std::optional<int>> engaged_empty{std::optional<int>{}};
    auto ee = round_trip(engaged_empty);
    REQUIRE(ee.has_value());
    REQUIRE(!ee->has_value());
    REQUIRE(!round_trip(std::optional<std::optional<int>>{}).has_value());

    using var = std::variant<std::monostate, int, std::string, std::vector<double>>;
    for (const var& v : {var{}, var{7}, var{std::string("str")}, var{std::vector<double>{1, 2}}}) {
        auto back = round_trip(v);
        REQUIRE(back.index() == v.index());
        REQUIRE(back == v);
    }
    std::variant<int, int> twin{std::in_place_index<1>, 5};
    auto twin2 = round_trip(twin);
    REQUIRE(twin2.index() == 1);
    REQUIRE(std::get<1>(twin2) == 5);

    std::tuple<int, std::string, double, bool> t{-1, "tuple", 0.5, true};
    REQUIRE(round_trip(t) == t);
    REQUIRE(round_trip(std::tuple<>{}) == std::tuple<>{});
    std::pair<std::string, std::vector<int>> p{"pair", {1, 2, 3}};
    REQUIRE(round_trip(p) == p);
    std::tuple<std::pair<int, std::tuple<char, std::optional<short>>>> nested{{1, {'c', short{-2}}}};
    REQUIRE(round_trip(nested) == nested);
}

TEST_CASE("codec: chrono durations and time points round-trip", "[codec]") {
    using namespace std::chrono;
    for (auto d : {nanoseconds::min(), nanoseconds::max(), nanoseconds{0}, nanoseconds{-1}})
        REQUIRE(round_trip(d) == d);
    REQUIRE(round_trip(hours{-5}) == hours{-5});
    REQUIRE(round_trip(duration<double, std::milli>{2.5}) == duration<double, std::milli>{2.5});
    REQUIRE(round_trip(duration<std::int16_t, std::ratio<7, 3>>{-9}) == duration<std::int16_t, std::ratio<7, 3>>{-9});
    auto now = system_clock::now();
    REQUIRE(round_trip(now) == now);
    auto mono = steady_clock::now();
    REQUIRE(round_trip(mono) == mono);
    time_point<system_clock, seconds> ts{seconds{1700000000}};
    REQUIRE(round_trip(ts) == ts);
    time_point<steady_clock, duration<float>> tf{duration<float>{1.25f}};
    REQUIRE(round_trip(tf) == tf);
}

TEST_CASE("codec: unique_ptr round-trips null and non-null", "[codec]") {
    REQUIRE(round_trip(std::unique_ptr<int>{}) == nullptr);
    auto p = round_trip(std::make_unique<int>(17));
    REQUIRE(p != nullptr);
    REQUIRE(*p == 17);
    auto q = round_trip(std::make_unique<inner>(inner{3, "three", 3.0}));
    REQUIRE(q != nullptr);
    REQUIRE(*q == inner{3, "three", 3.0});
    auto nested = round_trip(std::make_unique<std::unique_ptr<std::string>>(std::make_unique<std::string>("n")));
    REQUIRE(**nested == "n");
}

TEST_CASE("codec: aggregates nested three levels deep round-trip", "[codec]") {
    inner i1{1, "one", std::nullopt};
    inner i2{-2, std::string("t\0wo", 4), -0.5};
    middle m1{i1, {i1, i2}, std::int64_t{-9}};
    middle m2{i2, {}, std::string("tag")};
    outer o{m1, {{"a", m1}, {"b", m2}, {"", middle{}}}, {i2, i1}, 9};
    auto back = round_trip(o);
    REQUIRE(back == o);
    REQUIRE(back.version == 9);
    REQUIRE(round_trip(empty_aggregate{}) == empty_aggregate{});
    REQUIRE(round_trip(outer{}) == outer{});
}

TEST_CASE("codec: customization points round-trip", "[codec]") {
    REQUIRE(round_trip(celsius(21.5)) == celsius(21.5));
    REQUIRE(round_trip(std::vector<celsius>{celsius(1), celsius(-273.15)}) ==
            std::vector<celsius>{celsius(1), celsius(-273.15)});
    REQUIRE(round_trip(geo::polar(2.0, 0.25)) == geo::polar(2.0, 0.25));
    std::map<std::string, geo::polar> places{{"home", {1, 2}}, {"work", {3, 4}}};
    REQUIRE(round_trip(places) == places);
    REQUIRE(round_trip(versioned{0x1234}) == versioned{0x1234});
    REQUIRE(round_trip(std::optional<versioned>{versioned{9}}) == versioned{9});
}

TEST_CASE("codec: move-only types round-trip", "[codec]") {
    REQUIRE(round_trip(token(77)).id() == 77);
    std::vector<token> tokens;
    tokens.emplace_back(1);
    tokens.emplace_back(2);
    auto tokens2 = round_trip(tokens);
    REQUIRE(tokens2.size() == 2);
    REQUIRE(tokens2[1].id() == 2);

    move_only mo;
    mo.name = std::make_unique<std::string>("name");
    mo.values.push_back(std::make_unique<int>(1));
    mo.values.push_back(nullptr);
    mo.tok = std::make_unique<token>(5);
    move_only back = round_trip(mo);
    REQUIRE(*back.name == "name");
    REQUIRE(back.values.size() == 2);
    REQUIRE(*back.values[0] == 1);
    REQUIRE(back.values[1] == nullptr);
    REQUIRE(back.tok->id() == 5);
}

TEST_CASE("codec: writer and reader stream several values", "[codec]") {
    bytes_t buf = bytes({0xaa});
    procpool::encode_to(buf, std::uint8_t{1}); // appends, keeps what was there
    REQUIRE(buf == bytes({0xaa, 0x01}));
    procpool::writer w(buf);
    w.write(std::int32_t{-1});
    w.write(std::string("xy"));
    REQUIRE(&w.buffer() == &buf);
    procpool::reader r(buf);
    REQUIRE(r.read<std::uint8_t>() == 0xaa);
    REQUIRE(r.read<std::uint8_t>() == 1);
    REQUIRE(r.offset() == 2);
    REQUIRE(r.read<std::int32_t>() == -1);
    REQUIRE(r.remaining() == 10);
    REQUIRE(r.read<std::string>() == "xy");
    REQUIRE(r.remaining() == 0);
    REQUIRE_THROWS_AS(r.read<std::uint8_t>(), protocol_error);
}

// ---- the wire layout, pinned ----------------------------------------------------------------------------------

TEST_CASE("codec: wire layout of scalars is fixed", "[codec][wire]") {
    STATIC_REQUIRE(procpool::codec_version == 1);
    REQUIRE(encode(std::uint32_t{0x01020304}) == bytes({0x04, 0x03, 0x02, 0x01}));
    REQUIRE(encode(std::int16_t{-2}) == bytes({0xfe, 0xff}));
    REQUIRE(encode(std::uint64_t{0x0102030405060708}) == bytes({8, 7, 6, 5, 4, 3, 2, 1}));
    REQUIRE(encode(true) == bytes({0x01}));
    REQUIRE(encode(false) == bytes({0x00}));
    REQUIRE(encode('A') == bytes({0x41}));
    REQUIRE(encode(u'\u20ac') == bytes({0xac, 0x20}));
    REQUIRE(encode(std::byte{0xab}) == bytes({0xab}));
    REQUIRE(encode(1.0f) == bytes({0x00, 0x00, 0x80, 0x3f}));
    REQUIRE(encode(-2.0) == bytes({0, 0, 0, 0, 0, 0, 0x00, 0xc0}));
    REQUIRE(encode(wide::x) == bytes({0x02, 0x01}));
    REQUIRE(encode(color::red) == bytes({0x80}));
    REQUIRE(encode(flag::on) == bytes({0x01}));
    REQUIRE(encode(std::monostate{}).empty());
    REQUIRE(encode(empty_aggregate{}).empty());
    REQUIRE(encode(std::tuple<>{}).empty());
}

TEST_CASE("codec: wire layout of strings and containers is fixed", "[codec][wire]") {
    REQUIRE(encode(std::string("ab")) == cat(le64(2), bytes({'a', 'b'})));
    REQUIRE(encode(std::string()) == le64(0));
    REQUIRE(encode(std::string("a\0b", 3)) == cat(le64(3), bytes({'a', 0, 'b'})));
    REQUIRE(encode(std::u16string(u"a")) == cat(le64(1), bytes({0x61, 0x00})));
    REQUIRE(encode(std::vector<std::uint8_t>{1, 2}) == cat(le64(2), bytes({1, 2})));
    REQUIRE(encode(std::vector<std::uint16_t>{0x0102}) == cat(le64(1), bytes({2, 1})));
    REQUIRE(encode(std::list<std::uint16_t>{0x0102}) == cat(le64(1), bytes({2, 1})));
    REQUIRE(encode(std::vector<bool>{true, false, true}) == cat(le64(3), bytes({1, 0, 1})));
    REQUIRE(encode(std::set<std::uint8_t>{3, 1}) == cat(le64(2), bytes({1, 3})));
    REQUIRE(encode(std::map<std::uint8_t, bool>{{1, true}, {2, false}}) == cat(le64(2), bytes({1, 1, 2, 0})));
    REQUIRE(encode(std::array<std::uint16_t, 2>{1, 2}) == bytes({1, 0, 2, 0})); // no count
    REQUIRE(encode(std::vector<std::string>{"x"}) == cat(cat(le64(1), le64(1)), bytes({'x'})));
}

TEST_CASE("codec: wire layout of optional, unique_ptr, variant, tuple and aggregates is fixed", "[codec][wire]") {
    REQUIRE(encode(std::optional<int>{}) == bytes({0x00}));
    REQUIRE(encode(std::optional<std::uint8_t>{7}) == bytes({0x01, 0x07}));
    REQUIRE(encode(std::unique_ptr<std::uint8_t>{}) == bytes({0x00}));
    REQUIRE(encode(std::make_unique<std::uint8_t>(9)) == bytes({0x01, 0x09}));
    // The variant index is a u32.
    REQUIRE(encode(std::variant<std::uint8_t, std::uint16_t>{std::uint16_t{5}}) == bytes({1, 0, 0, 0, 5, 0}));
    REQUIRE(encode(std::variant<std::monostate, int>{}) == bytes({0, 0, 0, 0}));
    REQUIRE(encode(std::tuple<std::uint8_t, std::uint16_t>{1, 2}) == bytes({1, 2, 0}));
    REQUIRE(encode(std::pair<bool, std::uint8_t>{true, 3}) == bytes({1, 3}));
    // Aggregates: fields in declaration order, no padding.
    REQUIRE(encode(no_padding{1, 0x02030405, 0x0607}) == bytes({1, 5, 4, 3, 2, 7, 6}));
    REQUIRE(encode(inner{1, "a", 2.0}) == cat(cat(bytes({1, 0, 0, 0}), le64(1)),
                                              bytes({'a', 1, 0, 0, 0, 0, 0, 0, 0, 0x40})));
    // Durations are their rep; time points their duration since the epoch.
    REQUIRE(encode(std::chrono::milliseconds{3}) == le64(3));
    REQUIRE(encode(std::chrono::duration<std::int32_t>{-1}) == bytes({0xff, 0xff, 0xff, 0xff}));
    REQUIRE(encode(std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>{std::chrono::seconds{1}}) ==
            le64(1));
    // Custom encodings are exactly what the type writes.
    REQUIRE(encode(celsius(1.0)) == bytes({0, 0, 0, 0, 0, 0, 0xf0, 0x3f}));
    REQUIRE(encode(versioned{0x0102}) == bytes({0xee, 0x02, 0x01}));
    REQUIRE(encode(geo::polar(1.0, -2.0)) == bytes({0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0}));
}

// ---- property tests -------------------------------------------------------------------------------------------

namespace {

constexpr std::uint64_t property_seed = 0x5EEDC0DEC0DEC001ull;

using value_t = std::variant<std::int64_t, std::string, std::vector<double>>;
using nested_t = std::vector<std::map<std::string, std::optional<value_t>>>;

struct leaf {
    std::int32_t id = 0;
    std::string name;
    std::optional<std::uint16_t> port;
    bool on = false;
    color c = color::green;
    bool operator==(const leaf&) const = default;
};
struct branch {
    std::vector<leaf> leaves;
    std::variant<std::monostate, leaf, std::vector<std::int8_t>> extra;
    std::map<std::int64_t, std::deque<std::string>> index;
    bool operator==(const branch&) const = default;
};
struct tree {
    branch left;
    std::optional<branch> right;
    std::array<std::chrono::milliseconds, 2> times;
    std::set<std::u16string> tags;
    std::tuple<double, std::vector<bool>, std::byte> misc;
    bool operator==(const tree&) const = default;
};

// Portable generator: only mt19937_64 itself, whose output the standard fixes, so a seed reproduces everywhere.
struct generator {
    std::mt19937_64 rng;
    bool allow_nan;

    std::size_t upto(std::size_t max) { return static_cast<std::size_t>(rng() % (max + 1)); }
    bool coin() { return (rng() & 1) != 0; }
    std::int64_t i64() {
        switch (upto(3)) {
        case 0: return std::numeric_limits<std::int64_t>::min();
        case 1: return std::numeric_limits<std::int64_t>::max();
        case 2: return static_cast<std::int64_t>(upto(10)) - 5;
        default: return static_cast<std::int64_t>(rng());
        }
    }
    double dbl() {
        double d = std::bit_cast<double>(rng()); // every class: normal, denormal, infinities, -0.0, NaN
        if (upto(4) == 0) d = static_cast<double>(static_cast<std::int64_t>(upto(200)) - 100) / 4;
        if (!allow_nan && std::isnan(d)) d = -0.0;
        return d;
    }
    std::string str() {
        std::string s(upto(12), '\0');
        for (auto& c : s) c = static_cast<char>(rng()); // any byte, NUL included
        return s;
    }
    std::u16string u16() {
        std::u16string s(upto(4), u'\0');
        for (auto& c : s) c = static_cast<char16_t>(rng());
        return s;
    }
    value_t value() {
        switch (upto(2)) {
        case 0: return i64();
        case 1: return str();
        default: {
            std::vector<double> v(upto(5));
            for (auto& d : v) d = dbl();
            return v;
        }
        }
    }
    nested_t nested() {
        nested_t out(upto(4));
        for (auto& m : out) {
            for (std::size_t n = upto(4); n > 0; --n) {
                std::optional<value_t> v;
                if (coin()) v = value();
                m[str()] = std::move(v);
            }
        }
        return out;
    }
    leaf make_leaf() {
        leaf l;
        l.id = static_cast<std::int32_t>(rng());
        l.name = str();
        if (coin()) l.port = static_cast<std::uint16_t>(rng());
        l.on = coin();
        l.c = std::array{color::red, color::green, color::blue}[upto(2)];
        return l;
    }
    branch make_branch() {
        branch b;
        for (std::size_t n = upto(3); n > 0; --n) b.leaves.push_back(make_leaf());
        switch (upto(2)) {
        case 0: break;
        case 1: b.extra = make_leaf(); break;
        default: {
            std::vector<std::int8_t> v(upto(6));
            for (auto& x : v) x = static_cast<std::int8_t>(rng());
            b.extra = v;
        }
        }
        for (std::size_t n = upto(3); n > 0; --n) {
            auto& d = b.index[i64()];
            for (std::size_t k = upto(3); k > 0; --k) d.push_back(str());
        }
        return b;
    }
    tree make_tree() {
        tree t;
        t.left = make_branch();
        if (coin()) t.right = make_branch();
        t.times = {std::chrono::milliseconds{i64()}, std::chrono::milliseconds{i64()}};
        for (std::size_t n = upto(3); n > 0; --n) t.tags.insert(u16());
        std::vector<bool> bits(upto(10));
        for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = coin();
        std::get<0>(t.misc) = dbl();
        std::get<1>(t.misc) = bits;
        std::get<2>(t.misc) = static_cast<std::byte>(rng());
        return t;
    }
};

} // namespace

TEST_CASE("codec: random nested values round-trip exactly (seed 0x5EEDC0DEC0DEC001)", "[codec][property]") {
    generator g{std::mt19937_64(property_seed), false};
    for (int i = 0; i < 3000; ++i) {
        INFO("seed 0x5EEDC0DEC0DEC001, iteration " << i);
        nested_t v = g.nested();
        bytes_t b = encode(v);
        nested_t back = decode<nested_t>(b);
        REQUIRE(back == v);      // no NaN here, so == is exact up to the sign of zero...
        REQUIRE(encode(back) == b); // ...and the bytes are exact, sign of zero included
    }
}

TEST_CASE("codec: random values with any double bit pattern re-encode identically (seed 0x5EEDC0DEC0DEC002)",
          "[codec][property]") {
    generator g{std::mt19937_64(property_seed + 1), true};
    for (int i = 0; i < 3000; ++i) {
        INFO("seed 0x5EEDC0DEC0DEC002, iteration " << i);
        nested_t v = g.nested();
        bytes_t b = encode(v);
        REQUIRE(encode(decode<nested_t>(b)) == b); // NaN != NaN, so compare the bit patterns through the bytes
    }
}

TEST_CASE("codec: random nested aggregates round-trip exactly (seed 0x5EEDC0DEC0DEC003)", "[codec][property]") {
    generator g{std::mt19937_64(property_seed + 2), false};
    for (int i = 0; i < 3000; ++i) {
        INFO("seed 0x5EEDC0DEC0DEC003, iteration " << i);
        tree t = g.make_tree();
        bytes_t b = encode(t);
        tree back = decode<tree>(b);
        REQUIRE(back == t);
        REQUIRE(encode(back) == b);
    }
}

// ---- a reader fed in windows (a large frame still arriving) ----------------------------------------------------

namespace {

// The rest of an input as the worker's channel hands it over: windows of 1 to 13 bytes (seeded), each a fresh
// buffer (the previous window is gone), and long runs read straight into their destination.
class trickle final : public procpool::byte_source {
public:
    trickle(std::span<const std::byte> rest, std::uint64_t seed) : rest_(rest), rng_(seed) {}
    [[nodiscard]] std::size_t pending() const noexcept override { return rest_.size() - at_; }
    std::span<const std::byte> next_window() override {
        auto n = std::min<std::size_t>(pending(), 1 + rng_() % 13);
        window_ = std::make_unique<std::byte[]>(n);
        std::memcpy(window_.get(), rest_.data() + at_, n);
        at_ += n;
        return {window_.get(), n};
    }
    void read_direct(std::byte* dst, std::size_t n) override {
        REQUIRE(n <= pending());
        std::memcpy(dst, rest_.data() + at_, n);
        at_ += n;
        direct += n;
    }
    std::size_t direct = 0; // bytes that went around the window

private:
    std::span<const std::byte> rest_;
    std::size_t at_ = 0;
    std::mt19937_64 rng_;
    std::unique_ptr<std::byte[]> window_;
};

// Decodes `b` with its first `first` bytes in the initial window and the rest trickling in.
template <class T>
T decode_trickled(std::span<const std::byte> b, std::size_t first, std::uint64_t seed, std::size_t* direct = nullptr) {
    trickle rest(b.subspan(first), seed);
    procpool::reader r(b.first(first), rest);
    T v = r.read<T>();
    REQUIRE(r.remaining() == 0);
    REQUIRE(r.offset() == b.size());
    if (direct) *direct = rest.direct;
    return v;
}

template <class T>
std::string trickled_error(std::span<const std::byte> b, std::size_t first, std::uint64_t seed) {
    trickle rest(b.subspan(first), seed);
    procpool::reader r(b.first(first), rest);
    try {
        (void)r.read<T>();
    } catch (const protocol_error& e) {
        return std::string(e.what()) + " @" + std::to_string(e.offset());
    }
    return "no error";
}
template <class T>
std::string whole_error(std::span<const std::byte> b) {
    procpool::reader r(b);
    try {
        (void)r.read<T>();
    } catch (const protocol_error& e) {
        return std::string(e.what()) + " @" + std::to_string(e.offset());
    }
    return "no error";
}

} // namespace

TEST_CASE("codec: a reader fed in windows decodes what a reader of the whole input decodes", "[codec][stream]") {
    generator g{std::mt19937_64(property_seed + 6), true};
    std::mt19937_64 cut(property_seed + 7);
    for (int i = 0; i < 300; ++i) {
        INFO("iteration " << i);
        const bytes_t n = encode(g.nested()), t = encode(g.make_tree());
        REQUIRE(encode(decode_trickled<nested_t>(n, cut() % (n.size() + 1), cut())) == n);
        REQUIRE(encode(decode_trickled<tree>(t, cut() % (t.size() + 1), cut())) == t);
    }
    // Long runs of bytes, characters and numbers: what does not fit the window goes straight to the elements.
    using big_t = std::tuple<std::string, std::vector<std::byte>, std::vector<double>, std::u16string, int>;
    big_t big{std::string(100'000, 's'), bytes_t(70'000), std::vector<double>(20'000), std::u16string(30'000, u'w'), 7};
    for (std::size_t i = 0; i < std::get<1>(big).size(); ++i) std::get<1>(big)[i] = static_cast<std::byte>(i % 251);
    for (std::size_t i = 0; i < std::get<2>(big).size(); ++i) std::get<2>(big)[i] = 0.25 * static_cast<double>(i);
    const bytes_t b = encode(big);
    for (std::size_t first : {std::size_t{0}, std::size_t{5}, std::size_t{50'000}, b.size() - 3, b.size()}) {
        INFO("first window: " << first << " of " << b.size() << " bytes");
        std::size_t direct = 0;
        CHECK(decode_trickled<big_t>(b, first, first, &direct) == big);
        if (first < 50'000) CHECK(direct > 200'000); // not copied through 13-byte windows
    }
}

TEST_CASE("codec: a reader fed in windows refuses bad input with the same message and offset", "[codec][stream]") {
    generator g{std::mt19937_64(property_seed + 8), true};
    std::mt19937_64 cut(property_seed + 9);
    for (int i = 0; i < 10; ++i) {
        const bytes_t full = encode(g.make_tree());
        for (std::size_t len = 0; len < full.size(); ++len) {
            auto prefix = std::span(full).first(len);
            INFO("prefix of " << len << " of " << full.size() << " bytes");
            auto expected = whole_error<tree>(prefix);
            REQUIRE(expected != "no error");
            REQUIRE(trickled_error<tree>(prefix, cut() % (len + 1), cut()) == expected);
        }
    }
    // A count that the input cannot hold is refused before anything is allocated, with the rest still to come.
    bytes_t huge = encode(std::vector<std::byte>(1000));
    huge[5] = std::byte{0x10}; // count 2^40 + 1000
    CHECK(trickled_error<bytes_t>(huge, 3, 1) == whole_error<bytes_t>(huge));
    CHECK(contains(whole_error<bytes_t>(huge).c_str(), "exceeds what the remaining"));
}

namespace {
// A frame whose header claims `claimed` more bytes, of which `real` (zeros) arrive before the channel ends.
class lying_source final : public procpool::byte_source {
public:
    lying_source(std::size_t claimed, std::size_t real) : claimed_(claimed), real_(real) {}
    [[nodiscard]] std::size_t pending() const noexcept override { return claimed_ - at_; }
    std::span<const std::byte> next_window() override {
        if (at_ == real_) throw protocol_error("test: the channel ended", at_);
        auto n = std::min(window_.size(), real_ - at_);
        at_ += n;
        return {window_.data(), n};
    }
    void read_direct(std::byte* dst, std::size_t n) override {
        if (at_ + n > real_) throw protocol_error("test: the channel ended", at_);
        std::memset(dst, 0, n);
        at_ += n;
    }

private:
    std::size_t claimed_, real_, at_ = 0;
    std::array<std::byte, 4096> window_{};
};

std::size_t largest_allocation = 0;
template <class T>
struct watched_allocator : std::allocator<T> {
    watched_allocator() = default;
    template <class U>
    watched_allocator(const watched_allocator<U>&) noexcept {}
    template <class U>
    struct rebind {
        using other = watched_allocator<U>;
    };
    T* allocate(std::size_t n) {
        largest_allocation = std::max(largest_allocation, n * sizeof(T));
        return std::allocator<T>::allocate(n);
    }
};

// Decodes a T whose count says `count`, from a frame claiming room for it but ending after 64 KiB.
template <class T>
std::size_t capacity_after_lie(std::uint64_t count, std::size_t claimed) {
    const bytes_t head = encode(count);
    lying_source rest(claimed, std::size_t{64} << 10);
    procpool::reader r(head, rest);
    T kept;
    try {
        r.read_into(kept);
        FAIL("decoded a value from a channel that ended");
    } catch (const protocol_error& e) {
        INFO(e.what());
        CHECK(contains(e.what(), "the channel ended"));
    }
    return kept.capacity();
}
} // namespace

TEST_CASE("codec: a count the frame claims room for reserves at most a bounded amount before its bytes come", "[codec][stream]") {
    constexpr std::size_t gib = std::size_t{1} << 30;
    constexpr std::size_t bound = procpool::detail::trusted_reserve_bytes + 64; // a library may round capacity up
    // Without the bound, each of these reserves the whole claim (1 GiB, 3 GiB, 2 GiB) for bytes that never come.
    CHECK(capacity_after_lie<std::string>(gib, gib + 16) <= bound);
    CHECK(capacity_after_lie<std::vector<std::uint16_t>>(3 * gib / 2, 3 * gib + 16) * 2 <= bound);
    // A vector of strings is built in a fresh vector (read_into cannot reuse it): its allocator watches.
    largest_allocation = 0;
    (void)capacity_after_lie<std::vector<std::string, watched_allocator<std::string>>>(gib / 16, gib + 16);
    CHECK(largest_allocation > 0);
    CHECK(largest_allocation <= bound);
}

TEST_CASE("codec: read_into reuses the storage of strings and vectors", "[codec][stream]") {
    bytes_t blob(200'000);
    for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<std::byte>(i % 253);
    const bytes_t b = encode(blob);
    SECTION("from a whole input") {
        bytes_t kept;
        kept.reserve(std::size_t{1} << 20);
        const auto* storage = kept.data();
        procpool::reader r(b);
        r.read_into(kept);
        CHECK(kept == blob);
        CHECK(kept.data() == storage);
        CHECK(kept.capacity() == std::size_t{1} << 20);
    }
    SECTION("from a trickle: straight into the kept storage") {
        bytes_t kept(std::size_t{1} << 20, std::byte{0xff});
        const auto* storage = kept.data();
        const std::span<const std::byte> all(b);
        trickle rest(all.subspan(100), 3);
        procpool::reader r(all.first(100), rest);
        r.read_into(kept);
        CHECK(kept == blob);
        CHECK(kept.data() == storage);
        CHECK(rest.direct > 100'000);
    }
    SECTION("numbers, characters, and types without reusable storage") {
        std::vector<double> nums(5000, 1.0), got;
        got.reserve(10'000);
        std::string text(3000, 'q'), kept_text;
        kept_text.reserve(4000);
        std::list<int> list{1, 2, 3}, got_list{9};
        const auto* storage = got.data();
        const auto* text_storage = kept_text.data();
        bytes_t e1 = encode(nums), e2 = encode(text), e3 = encode(list);
        procpool::reader a(e1), c(e2), d(e3);
        a.read_into(got);
        c.read_into(kept_text);
        d.read_into(got_list);
        CHECK(got == nums);
        CHECK(got.data() == storage);
        CHECK(kept_text == text);
        CHECK(kept_text.data() == text_storage);
        CHECK(got_list == list);
    }
}

// ---- hardening ------------------------------------------------------------------------------------------------

namespace {

template <class T>
void every_strict_prefix_fails(const bytes_t& full) {
    for (std::size_t n = 0; n < full.size(); ++n) {
        INFO("prefix of " << n << " of " << full.size() << " bytes");
        auto err = decode_error<T>(std::span(full).first(n));
        REQUIRE(err.has_value());
        REQUIRE(err->offset() <= n);
        REQUIRE((contains(err->what(), "truncated") || contains(err->what(), "element count")));
    }
    REQUIRE_NOTHROW((void)decode<T>(full));
}

} // namespace

TEST_CASE("codec: every strict prefix of a valid encoding is refused", "[codec][hardening]") {
    generator g{std::mt19937_64(property_seed + 3), true};
    for (int i = 0; i < 20; ++i) every_strict_prefix_fails<nested_t>(encode(g.nested()));
    for (int i = 0; i < 20; ++i) every_strict_prefix_fails<tree>(encode(g.make_tree()));
    inner i1{1, "one", 1.0};
    every_strict_prefix_fails<outer>(encode(outer{middle{i1, {i1}, std::string("t")}, {{"k", middle{}}}, {i1, i1}, 3}));
    every_strict_prefix_fails<std::u16string>(encode(std::u16string(u"prefix")));
    every_strict_prefix_fails<std::vector<bool>>(encode(std::vector<bool>{true, false}));
    every_strict_prefix_fails<std::unique_ptr<std::string>>(encode(std::make_unique<std::string>("p")));
    every_strict_prefix_fails<geo::polar>(encode(geo::polar(1, 2)));
    every_strict_prefix_fails<std::chrono::system_clock::time_point>(encode(std::chrono::system_clock::now()));
}

TEST_CASE("codec: trailing bytes are refused", "[codec][hardening]") {
    auto err = decode_error<std::int32_t>(bytes({1, 2, 3, 4, 5}));
    REQUIRE(err.has_value());
    CHECK(err->offset() == 4);
    INFO(err->what());
    CHECK(contains(err->what(), "1 unexpected bytes after the value at byte offset 4"));
    auto err2 = decode_error<std::string>(cat(encode(std::string("ab")), bytes({0, 0})));
    REQUIRE(err2.has_value());
    CHECK(err2->offset() == 10);
    CHECK(!decode_error<std::monostate>(bytes({})).has_value());
    CHECK(decode_error<std::monostate>(bytes({0})).has_value());
}

TEST_CASE("codec: an invalid bool byte is refused with its offset", "[codec][hardening]") {
    auto err = decode_error<bool>(bytes({2}));
    REQUIRE(err.has_value());
    INFO(err->what());
    CHECK(err->offset() == 0);
    CHECK(contains(err->what(), "bool byte 2 (must be 0 or 1)"));
    CHECK(contains(err->what(), "at byte offset 0"));

    // Inside a structure: u32, then a vector<bool> of 2 whose second element is 5.
    auto in = cat(cat(bytes({1, 2, 3, 4}), le64(2)), bytes({1, 5}));
    auto err2 = decode_error<std::pair<std::uint32_t, std::vector<bool>>>(in);
    REQUIRE(err2.has_value());
    INFO(err2->what());
    CHECK(err2->offset() == 13);
    CHECK(contains(err2->what(), "bool byte 5"));
    CHECK(contains(err2->what(), "at byte offset 13"));

    // An enum whose underlying type is bool is held to the same rule.
    auto err3 = decode_error<std::tuple<std::uint8_t, flag>>(bytes({0, 2}));
    REQUIRE(err3.has_value());
    CHECK(err3->offset() == 1);
    CHECK(contains(err3->what(), "bool byte 2"));
}

TEST_CASE("codec: an invalid optional or unique_ptr flag is refused with its offset", "[codec][hardening]") {
    auto err = decode_error<std::tuple<std::uint16_t, std::optional<int>>>(bytes({0, 0, 2, 0, 0, 0, 0}));
    REQUIRE(err.has_value());
    INFO(err->what());
    CHECK(err->offset() == 2);
    CHECK(contains(err->what(), "presence flag 2 (must be 0 or 1)"));
    auto err2 = decode_error<std::unique_ptr<int>>(bytes({0xff, 0, 0, 0, 0}));
    REQUIRE(err2.has_value());
    CHECK(err2->offset() == 0);
    CHECK(contains(err2->what(), "presence flag 255"));
}

TEST_CASE("codec: a variant index out of range is refused with its offset", "[codec][hardening]") {
    using var = std::variant<int, std::string>;
    auto err = decode_error<var>(bytes({2, 0, 0, 0, 0, 0, 0, 0}));
    REQUIRE(err.has_value());
    INFO(err->what());
    CHECK(err->offset() == 0);
    CHECK(contains(err->what(), "variant index 2 (the variant has 2 alternatives)"));
    auto err2 = decode_error<std::vector<var>>(cat(le64(1), bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})));
    REQUIRE(err2.has_value());
    CHECK(err2->offset() == 8);
    CHECK(contains(err2->what(), "variant index 4294967295"));
}

TEST_CASE("codec: a custom decoder's fail_invalid is a protocol_error", "[codec][hardening]") {
    auto err = decode_error<std::pair<std::uint8_t, celsius>>(cat(bytes({1}), encode(-300.0)));
    REQUIRE(err.has_value());
    INFO(err->what());
    CHECK(err->offset() == 9); // where decoding stopped: after the double
    CHECK(contains(err->what(), "corrupt value: temperature below absolute zero at byte offset 9"));
    auto err2 = decode_error<versioned>(bytes({0xef, 0, 0}));
    REQUIRE(err2.has_value());
    CHECK(contains(err2->what(), "versioned: bad marker"));
}

TEST_CASE("codec: a huge element count is refused before anything is allocated", "[codec][hardening]") {
    for (std::uint64_t count : {std::uint64_t{1} << 60, std::uint64_t{1} << 32, ~std::uint64_t{0}, std::uint64_t{5}}) {
        INFO("count " << count);
        auto in = cat(le64(count), bytes({1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0})); // room for 4 ints
        alloc_stats::reset();
        auto err = decode_error<counted_ints>(in);
        REQUIRE(err.has_value());
        INFO(err->what());
        CHECK(err->offset() == 0);
        CHECK(contains(err->what(), "element count " + std::to_string(count)));
        CHECK(alloc_stats::largest <= in.size());
        CHECK(alloc_stats::calls == 0);
    }
    // A count that fits exactly succeeds, and allocates no more than the input holds.
    auto in = cat(le64(4), bytes({1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0}));
    alloc_stats::reset();
    REQUIRE(decode<counted_ints>(in) == counted_ints{1, 2, 3, 4});
    CHECK(alloc_stats::largest <= in.size());
}

TEST_CASE("codec: a huge string length is refused before anything is allocated", "[codec][hardening]") {
    for (std::uint64_t count : {std::uint64_t{1} << 60, std::uint64_t{1} << 40, std::uint64_t{65}}) {
        INFO("count " << count);
        auto in = cat(le64(count), bytes_t(64, std::byte{'x'}));
        alloc_stats::reset();
        auto err = decode_error<counted_string>(in);
        REQUIRE(err.has_value());
        CHECK(err->offset() == 0);
        CHECK(alloc_stats::largest <= in.size());
    }
    auto in = cat(le64(64), bytes_t(64, std::byte{'x'}));
    alloc_stats::reset();
    REQUIRE(decode<counted_string>(in) == counted_string(64, 'x'));
    CHECK(alloc_stats::largest <= 64 + 1 + 15); // the characters, the NUL, and libc++'s rounding to 16 bytes

    // u16string: a count that needs one byte more than remains.
    auto err = decode_error<std::u16string>(cat(le64(3), bytes({1, 0, 2, 0, 3})));
    REQUIRE(err.has_value());
    CHECK(contains(err->what(), "element count 3"));
}

TEST_CASE("codec: nested huge counts are refused before anything is allocated", "[codec][hardening]") {
    using counted_nested = std::vector<counted_ints, counting_allocator<counted_ints>>;
    auto in = cat(cat(le64(1), le64(std::uint64_t{1} << 60)), bytes_t(32, std::byte{0}));
    alloc_stats::reset();
    auto err = decode_error<counted_nested>(in);
    REQUIRE(err.has_value());
    CHECK(err->offset() == 8);
    CHECK(alloc_stats::largest <= in.size());

    using counted_map = std::map<std::int32_t, std::int32_t, std::less<>,
                                 counting_allocator<std::pair<const std::int32_t, std::int32_t>>>;
    auto in2 = cat(le64(3), bytes_t(16, std::byte{0})); // each entry needs 8 bytes
    alloc_stats::reset();
    auto err2 = decode_error<counted_map>(in2);
    REQUIRE(err2.has_value());
    CHECK(alloc_stats::calls == 0);
}

TEST_CASE("codec: try_decode returns nullopt on bad input", "[codec][hardening]") {
    STATIC_REQUIRE(noexcept(procpool::try_decode<int>(std::span<const std::byte>{})));
    CHECK(procpool::try_decode<int>(bytes({1, 0, 0, 0})) == 1);
    CHECK(!procpool::try_decode<int>(bytes({1, 0, 0})).has_value());
    CHECK(!procpool::try_decode<int>(bytes({1, 0, 0, 0, 0})).has_value());
    CHECK(!procpool::try_decode<bool>(bytes({7})).has_value());
    CHECK(!procpool::try_decode<std::vector<int>>(le64(~std::uint64_t{0})).has_value());
    CHECK(!procpool::try_decode<std::variant<int>>(bytes({1, 0, 0, 0, 0, 0, 0, 0})).has_value());
    CHECK(!procpool::try_decode<celsius>(encode(-1000.0)).has_value());
    auto ok = procpool::try_decode<std::string>(encode(std::string("ok")));
    REQUIRE(ok.has_value());
    CHECK(*ok == "ok");
}

namespace {

// Corrupts `b` in one of several ways; returns a description for INFO.
const char* corrupt(bytes_t& b, std::mt19937_64& rng) {
    auto at = [&] { return b.empty() ? std::size_t{0} : static_cast<std::size_t>(rng() % b.size()); };
    switch (rng() % 7) {
    case 0:
        if (!b.empty()) b[at()] ^= static_cast<std::byte>(1u << (rng() % 8));
        return "flip a bit";
    case 1:
        for (int i = 0; i < 4 && !b.empty(); ++i) b[at()] = static_cast<std::byte>(rng());
        return "overwrite bytes";
    case 2: b.resize(at()); return "truncate";
    case 3: {
        auto pos = static_cast<std::ptrdiff_t>(at());
        for (auto n = rng() % 9; n > 0; --n) b.insert(b.begin() + pos, static_cast<std::byte>(rng()));
        return "insert bytes";
    }
    case 4: {
        if (b.size() < 8) return "nothing";
        auto pos = rng() % (b.size() - 7);
        std::uint64_t big = rng() % 2 ? rng() : (std::uint64_t{1} << (rng() % 64));
        for (int i = 0; i < 8; ++i) b[pos + static_cast<std::size_t>(i)] = static_cast<std::byte>(big >> (8 * i));
        return "plant a big count";
    }
    case 5: {
        if (b.empty()) return "nothing";
        auto from = at(), len = static_cast<std::size_t>(rng() % 16);
        len = std::min(len, b.size() - from);
        bytes_t slice(b.begin() + static_cast<std::ptrdiff_t>(from),
                      b.begin() + static_cast<std::ptrdiff_t>(from + len));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at()), slice.begin(), slice.end());
        return "duplicate a slice";
    }
    default:
        if (!b.empty()) b.erase(b.begin() + static_cast<std::ptrdiff_t>(at()));
        return "delete a byte";
    }
}

// Decodes corrupt input: it must succeed or throw protocol_error; a success must re-encode to a value that decodes.
template <class T>
void corruption_round(const bytes_t& valid, std::mt19937_64& rng, std::size_t& decoded, std::size_t& refused) {
    bytes_t b = valid;
    const char* how = corrupt(b, rng);
    if (rng() % 3 == 0) corrupt(b, rng);
    INFO("corruption: " << how << ", " << b.size() << " bytes");
    try {
        T v = decode<T>(b);
        ++decoded;
        auto again = encode(v);
        REQUIRE(encode(decode<T>(again)) == again);
    } catch (const protocol_error& e) {
        ++refused;
        REQUIRE(e.offset() <= b.size());
    }
}

} // namespace

TEST_CASE("codec: corrupt input either decodes or throws protocol_error (seed 0x5EEDC0DEC0DEC004)",
          "[codec][hardening]") {
    std::mt19937_64 rng(property_seed + 4);
    generator g{std::mt19937_64(property_seed + 5), true};
    std::size_t decoded = 0, refused = 0;
    for (int base = 0; base < 40; ++base) {
        INFO("seed 0x5EEDC0DEC0DEC004, base value " << base);
        const bytes_t nested = encode(g.nested());
        const bytes_t tr = encode(g.make_tree());
        for (int i = 0; i < 100; ++i) {
            corruption_round<nested_t>(nested, rng, decoded, refused);
            corruption_round<tree>(tr, rng, decoded, refused);
            corruption_round<std::tuple<std::vector<std::unique_ptr<leaf>>, std::unordered_map<std::string, celsius>,
                                        std::list<std::variant<geo::polar, std::monostate>>>>(tr, rng, decoded,
                                                                                              refused);
        }
    }
    // Every round either decoded or refused (corruption_round lets any other exception out, which fails the test):
    // what is left to check is that the corruptions reached both outcomes.
    INFO("decoded " << decoded << ", refused " << refused);
    CHECK(decoded > 0);
    CHECK(refused > 0);
}

// ---- the serializable concept ---------------------------------------------------------------------------------

TEST_CASE("codec: the serializable concept accepts what the codec supports", "[codec][concept]") {
    using procpool::serializable;
    STATIC_REQUIRE(serializable<int>);
    STATIC_REQUIRE(serializable<const int>);
    STATIC_REQUIRE(serializable<bool>);
    STATIC_REQUIRE(serializable<double>);
    STATIC_REQUIRE(serializable<std::byte>);
    STATIC_REQUIRE(serializable<color>);
    STATIC_REQUIRE(serializable<std::string>);
    STATIC_REQUIRE(serializable<std::u16string>);
    STATIC_REQUIRE(serializable<counted_string>);
    STATIC_REQUIRE(serializable<std::vector<bool>>);
    STATIC_REQUIRE(serializable<nested_t>);
    STATIC_REQUIRE(serializable<std::unordered_map<std::string, std::multiset<std::u32string>>>);
    STATIC_REQUIRE(serializable<std::array<std::monostate, 2>>);
    STATIC_REQUIRE(serializable<std::map<int, std::monostate>>);
    STATIC_REQUIRE(serializable<std::vector<std::optional<std::monostate>>>);
    STATIC_REQUIRE(serializable<std::tuple<>>);
    STATIC_REQUIRE(serializable<std::chrono::system_clock::time_point>);
    STATIC_REQUIRE(serializable<std::unique_ptr<inner>>);
    STATIC_REQUIRE(serializable<inner>);
    STATIC_REQUIRE(serializable<outer>);
    STATIC_REQUIRE(serializable<tree>);
    STATIC_REQUIRE(serializable<empty_aggregate>);
    STATIC_REQUIRE(serializable<celsius>);
    STATIC_REQUIRE(serializable<geo::polar>);
    STATIC_REQUIRE(serializable<versioned>);
    STATIC_REQUIRE(serializable<token>);
    STATIC_REQUIRE(serializable<move_only>);
    STATIC_REQUIRE(serializable<std::vector<token>>);
}

TEST_CASE("codec: the serializable concept refuses what cannot cross a process boundary", "[codec][concept]") {
    using procpool::serializable;
    STATIC_REQUIRE(!serializable<int*>);
    STATIC_REQUIRE(!serializable<const char*>);
    STATIC_REQUIRE(!serializable<int&>);
    STATIC_REQUIRE(!serializable<int inner::*>);
    STATIC_REQUIRE(!serializable<void (*)()>);
    STATIC_REQUIRE(!serializable<int[3]>);
    STATIC_REQUIRE(!serializable<std::mutex>);
    STATIC_REQUIRE(!serializable<std::function<void()>>);
    STATIC_REQUIRE(!serializable<FILE*>);
    STATIC_REQUIRE(!serializable<std::string_view>);
    STATIC_REQUIRE(!serializable<std::span<const int>>);
    STATIC_REQUIRE(!serializable<std::reference_wrapper<int>>);
    STATIC_REQUIRE(!serializable<long double>);
    STATIC_REQUIRE(!serializable<std::optional<long double>>);
    STATIC_REQUIRE(!serializable<std::shared_ptr<int>>);
    STATIC_REQUIRE(!serializable<with_mutex>);
    STATIC_REQUIRE(!serializable<with_pointer>);
    STATIC_REQUIRE(!serializable<with_function>);
    STATIC_REQUIRE(!serializable<with_c_array>);
    STATIC_REQUIRE(!serializable<std::vector<with_c_array>>);
    STATIC_REQUIRE(!serializable<with_nested_bad>);
    STATIC_REQUIRE(!serializable<opaque>);
    STATIC_REQUIRE(!serializable<std::vector<int*>>);
    STATIC_REQUIRE(!serializable<std::map<std::string, void*>>);
    STATIC_REQUIRE(!serializable<std::variant<int, int*>>);
    STATIC_REQUIRE(!serializable<std::tuple<int, std::function<int()>>>);
    STATIC_REQUIRE(!serializable<std::unique_ptr<polymorphic>>);
    STATIC_REQUIRE(!serializable<std::unique_ptr<int[]>>);
    STATIC_REQUIRE(!serializable<std::unique_ptr<int, void (*)(int*)>>);
    // Counted containers of elements that encode to nothing: their count could not be bounded by the input.
    STATIC_REQUIRE(!serializable<std::vector<std::monostate>>);
    STATIC_REQUIRE(!serializable<std::set<empty_aggregate>>);
    STATIC_REQUIRE(!serializable<std::list<std::tuple<>>>);
    STATIC_REQUIRE(!serializable<std::map<std::monostate, std::tuple<>>>);
}

TEST_CASE("paths, system_clock time points, bitsets and complex numbers round-trip", "[codec][std_types]") {
    STATIC_REQUIRE(procpool::serializable<std::filesystem::path>);
    STATIC_REQUIRE(procpool::serializable<std::chrono::system_clock::time_point>);
    STATIC_REQUIRE(procpool::serializable<std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>>);
    STATIC_REQUIRE(procpool::serializable<std::bitset<70>>);
    STATIC_REQUIRE(procpool::serializable<std::complex<double>>);
    STATIC_REQUIRE(procpool::serializable<std::vector<std::filesystem::path>>);
    STATIC_REQUIRE_FALSE(procpool::serializable<std::complex<long double>>);
    STATIC_REQUIRE_FALSE(procpool::serializable<std::vector<std::bitset<0>>>); // encodes to nothing: uncountable

    std::filesystem::path p = std::filesystem::path("dir") / "sub dir" / "f\xc3\xa9.txt";
    CHECK(round_trip(p) == p);
    CHECK(round_trip(std::filesystem::path()) == std::filesystem::path());
    // The generic form (separators '/') as UTF-8: the same bytes on every platform.
    auto wire = encode(std::filesystem::path("a") / "b");
    CHECK(wire.size() == 8 + 3);
    CHECK(static_cast<char>(wire[9]) == '/');

    auto now = std::chrono::system_clock::now();
    CHECK(round_trip(now) == now);

    std::bitset<70> bits;
    bits.set(0).set(9).set(69);
    CHECK(round_trip(bits) == bits);
    CHECK(encode(bits).size() == 9);
    CHECK(round_trip(std::bitset<8>("10100101")) == std::bitset<8>("10100101"));
    // A bit beyond N in the last byte is corrupt input, not silently dropped.
    auto bad = encode(std::bitset<4>("0001"));
    bad[0] = std::byte{0x11};
    CHECK_THROWS_AS(decode<std::bitset<4>>(bad), procpool::protocol_error);

    std::complex<double> z(1.5, -2.25);
    CHECK(round_trip(z) == z);
    CHECK(encode(z).size() == 16);
    CHECK(round_trip(std::complex<float>(3.f, 4.f)) == std::complex<float>(3.f, 4.f));
    CHECK_THROWS_AS(decode<std::complex<double>>(bytes_t(12)), procpool::protocol_error); // truncated
}

#if __has_include(<cereal/archives/portable_binary.hpp>)
#include <procpool/adapters/cereal.hpp>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

namespace cereal_t {
class account { // private members, a serialize member reached through cereal::access: code users already have
public:
    account() = default;
    account(std::string owner, std::vector<int> entries) : owner_(std::move(owner)), entries_(std::move(entries)) {}
    bool operator==(const account&) const = default;

private:
    friend class cereal::access;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(owner_, entries_);
    }
    std::string owner_;
    std::vector<int> entries_;
};
struct versioned { // save/load members
    double value = 0;
    template <class Archive>
    void save(Archive& ar) const {
        ar(value);
    }
    template <class Archive>
    void load(Archive& ar) {
        ar(value);
    }
    bool operator==(const versioned&) const = default;
};
struct holder { // an aggregate with a cereal member: the member goes through cereal, the rest through PFR
    int id;
    account acc;
};
} // namespace cereal_t

TEST_CASE("types with a cereal serialize member (or save/load) cross through the cereal adapter", "[codec][cereal]") {
    STATIC_REQUIRE(procpool::serializable<cereal_t::account>);
    STATIC_REQUIRE(procpool::serializable<cereal_t::versioned>);
    STATIC_REQUIRE(procpool::serializable<std::vector<cereal_t::account>>);
    STATIC_REQUIRE(procpool::serializable<cereal_t::holder>);
    cereal_t::account a("ada", {1, 2, 3});
    CHECK(round_trip(a) == a);
    CHECK(round_trip(cereal_t::versioned{2.5}) == cereal_t::versioned{2.5});
    std::vector<cereal_t::account> many{a, cereal_t::account("bob", {})};
    CHECK(round_trip(many) == many);
    auto h = round_trip(cereal_t::holder{7, a});
    CHECK(h.id == 7);
    CHECK(h.acc == a);
    // Corrupt bytes inside the cereal payload are a protocol_error, not cereal's own exception.
    auto wire = encode(a);
    bytes_t cut(wire.begin(), wire.end() - 3);
    auto len = static_cast<std::uint64_t>(cut.size() - 8);
    for (std::size_t b = 0; b < 8; ++b) cut[b] = static_cast<std::byte>((len >> (8 * b)) & 0xff);
    CHECK_THROWS_AS(decode<cereal_t::account>(cut), procpool::protocol_error);
    try {
        (void)decode<cereal_t::account>(cut);
    } catch (const procpool::protocol_error& e) {
        CHECK(std::string(e.what()).find("cereal could not decode the value at byte offset 0") != std::string::npos);
    }
}
#else
TEST_CASE("types with a cereal serialize member (or save/load) cross through the cereal adapter", "[codec][cereal]") {
    WARN("cereal is not installed (Debian: libcereal-dev): the cereal adapter is not tested");
}
#endif
