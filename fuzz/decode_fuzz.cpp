// SPDX-License-Identifier: BSL-1.0
// fuzz/decode_fuzz.cpp: libFuzzer target for the value decoder of procpool/codec.hpp.
//
// The first input byte picks a type and the rest is decoded as that type. Decoding must either succeed or throw
// procpool::protocol_error. Anything else is a finding: another exception, a crash, a sanitizer report, a hang,
// or an allocation over libFuzzer's -malloc_limit_mb. A value that decodes must also re-encode to bytes that decode
// again to the same value (compared byte for byte, so NaN payloads and the sign of zero count).
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude fuzz/decode_fuzz.cpp -o decode_fuzz
//   ./decode_fuzz -max_total_time=60 corpus/
//
// Seed corpus: build without -fsanitize=fuzzer and with -DPROCPOOL_FUZZ_WRITE_SEEDS, then run `./seeds corpus/`.
#include <procpool/codec.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#ifdef PROCPOOL_FUZZ_WRITE_SEEDS
#include <cstdio>
#include <fstream>
#endif

namespace fuzz {

enum class flag : bool { off, on };
enum class level : std::int16_t { low = -1, high = 1 };

// Three levels of aggregates, reflected through Boost.PFR.
struct leaf {
    std::int32_t id = 0;
    std::string name;
    std::optional<std::uint16_t> port;
    bool on = false;
    level lv = level::low;
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

// Member customization point whose decoder enforces an invariant.
class celsius {
public:
    explicit celsius(double v) : v_(v) {}
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

// ADL customization point.
struct polar {
    double r = 0, theta = 0;
    bool operator==(const polar&) const = default;
};
inline void procpool_encode(procpool::writer& w, const polar& p) {
    w.write(p.r);
    w.write(std::string("polar"));
    w.write(p.theta);
}
inline polar procpool_decode(procpool::reader& r, procpool::type_tag<polar>) {
    polar p;
    p.r = r.read<double>();
    if (r.read<std::string>() != "polar") r.fail_invalid("polar: bad tag");
    p.theta = r.read<double>();
    return p;
}

using value_t = std::variant<std::int64_t, std::string, std::vector<double>>;
using nested_t = std::vector<std::map<std::string, std::optional<value_t>>>;
using scalars_t = std::tuple<bool, std::byte, char16_t, float, std::u16string, std::deque<std::list<std::int16_t>>,
                             flag, std::optional<std::optional<bool>>>;
using unordered_t = std::pair<std::unordered_map<std::string, std::multiset<std::int32_t>>,
                              std::unordered_multimap<std::int8_t, std::u32string>>;
using variant_t = std::variant<std::monostate, std::array<std::uint8_t, 3>, std::pair<bool, double>,
                               std::unique_ptr<leaf>, std::optional<std::optional<bool>>>;
using misc_t = std::tuple<std::vector<bool>, std::chrono::system_clock::time_point, std::chrono::duration<double>,
                          std::set<std::string>, std::multimap<std::int8_t, std::u32string>, std::unique_ptr<tree>>;
using custom_t = std::vector<std::pair<celsius, polar>>;
using strings_t = std::map<std::string, std::vector<std::optional<std::string>>>;

enum class compare { bytes, values }; // unordered containers may iterate in another order after a round trip

template <class T, compare How = compare::bytes>
void check(std::span<const std::byte> in) {
    std::optional<T> v;
    try {
        v.emplace(procpool::decode<T>(in));
    } catch (const procpool::protocol_error&) {
        return; // corrupt input, refused: fine
    }
    // Accepted input: what it decoded to must survive a round trip. Errors here are findings, so nothing is caught.
    const std::vector<std::byte> once = procpool::encode(*v);
    T back = procpool::decode<T>(once);
    if constexpr (How == compare::bytes) {
        if (procpool::encode(back) != once) __builtin_trap();
    } else {
        if (!(back == *v)) __builtin_trap();
    }
}

inline constexpr std::size_t type_count = 10;

inline void decode_as(std::uint8_t selector, std::span<const std::byte> in) {
    switch (selector % type_count) {
    case 0: check<nested_t>(in); break;
    case 1: check<tree>(in); break;
    case 2: check<scalars_t>(in); break;
    case 3: check<unordered_t, compare::values>(in); break;
    case 4: check<variant_t>(in); break;
    case 5: check<misc_t>(in); break;
    case 6: check<custom_t>(in); break;
    case 7: check<std::string>(in); break;
    case 8: check<std::vector<std::int32_t>>(in); break;
    default: check<strings_t>(in); break;
    }
}

} // namespace fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    fuzz::decode_as(data[0], std::span(reinterpret_cast<const std::byte*>(data) + 1, size - 1));
    return 0;
}

#ifdef PROCPOOL_FUZZ_WRITE_SEEDS
// Writes one valid encoding of each type, prefixed with its selector byte, into the directory argv[1].
int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s corpus_dir\n", argv[0]);
        return 2;
    }
    using namespace fuzz;
    int n = 0;
    auto put = [&](std::uint8_t selector, const auto& value) {
        auto bytes = procpool::encode(value);
        std::ofstream out(std::string(argv[1]) + "/seed_" + std::to_string(n++), std::ios::binary);
        out.put(static_cast<char>(selector));
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    };
    leaf l{7, std::string("le\0af", 5), std::uint16_t{80}, true, level::high};
    branch b{{l, leaf{}}, l, {{-1, {"a", ""}}, {5, {}}}};
    tree t{b, branch{{}, std::vector<std::int8_t>{1, -1}, {}}, {}, {u"tag", u""}, {-0.0, {true, false}, std::byte{9}}};
    put(0, nested_t{{{"k", value_t{std::int64_t{1}}}, {"", std::nullopt}}, {{"v", value_t{std::vector<double>{1.5}}}}});
    put(0, nested_t{{{"s", value_t{std::string("str")}}}});
    put(1, t);
    put(2, scalars_t{true, std::byte{1}, u'x', 2.5f, u"u16", {{1, 2}, {}}, flag::on, std::optional<bool>{false}});
    put(3, unordered_t{{{"a", {1, 1, 2}}, {"b", {}}}, {{1, U"x"}, {1, U"y"}}});
    put(4, variant_t{std::make_unique<leaf>(l)});
    put(4, variant_t{std::array<std::uint8_t, 3>{1, 2, 3}});
    misc_t misc;
    std::get<0>(misc) = {true, true, false};
    std::get<2>(misc) = std::chrono::duration<double>{0.5};
    std::get<3>(misc) = {"x", "y"};
    std::get<4>(misc) = {{2, U"z"}};
    std::get<5>(misc) = std::make_unique<tree>(t);
    put(5, misc);
    put(6, custom_t{{celsius(20), polar{1, 2}}, {celsius(-5), polar{}}});
    put(7, std::string("hello"));
    put(8, std::vector<std::int32_t>{1, -2, 3});
    put(9, strings_t{{"k", {std::nullopt, std::string("v")}}});
    return 0;
}
#endif
