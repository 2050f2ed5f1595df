// SPDX-License-Identifier: BSL-1.0
// examples/custom_serialization.cpp: sending your own types. Aggregates need nothing; a class with private state
// gets a procpool_encode / procpool_decode pair, as members or, for a type you cannot change, as free functions
// found by argument-dependent lookup.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

// A class with private members is not an aggregate: it says how to travel.
class histogram {
public:
    histogram() = default;
    histogram(std::string name, std::vector<int> counts) : name_(std::move(name)), counts_(std::move(counts)) {}
    [[nodiscard]] const std::string& name() const { return name_; }
    [[nodiscard]] int total() const {
        int t = 0;
        for (int c : counts_) t += c;
        return t;
    }

    // Write the parts, then read them back in the same order.
    void procpool_encode(procpool::writer& w) const {
        w.write(name_);
        w.write(counts_);
    }
    static histogram procpool_decode(procpool::reader& r) {
        auto name = r.read<std::string>();
        auto counts = r.read<std::vector<int>>();
        return histogram(std::move(name), std::move(counts));
    }

private:
    std::string name_;
    std::vector<int> counts_;
};

// A type from a library you cannot edit: the customization point goes next to it, as two free functions.
namespace vendor {
class rgb {
public:
    rgb(unsigned char r, unsigned char g, unsigned char b) : r_(r), g_(g), b_(b) {}
    [[nodiscard]] unsigned char r() const { return r_; }
    [[nodiscard]] unsigned char g() const { return g_; }
    [[nodiscard]] unsigned char b() const { return b_; }

private:
    unsigned char r_, g_, b_;
};
} // namespace vendor

namespace vendor { // the same namespace as the type, so that lookup finds them
inline void procpool_encode(procpool::writer& w, const rgb& c) {
    w.write(c.r());
    w.write(c.g());
    w.write(c.b());
}
inline rgb procpool_decode(procpool::reader& r, procpool::type_tag<rgb>) {
    auto red = r.read<unsigned char>();
    auto green = r.read<unsigned char>();
    return rgb(red, green, r.read<unsigned char>());
}
} // namespace vendor

histogram merge(histogram a, const histogram& b) {
    std::vector<int> counts{a.total(), b.total()};
    return histogram(a.name() + "+" + b.name(), counts);
}
PROCPOOL_TASK(merge);

vendor::rgb invert(vendor::rgb c) {
    return vendor::rgb(static_cast<unsigned char>(255 - c.r()), static_cast<unsigned char>(255 - c.g()),
                       static_cast<unsigned char>(255 - c.b()));
}
PROCPOOL_TASK(invert);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 2}};

    histogram h = pool.submit<merge>(histogram("monday", {1, 2, 3}), histogram("tuesday", {4, 5})).get();
    std::printf("merged histogram \"%s\", total %d\n", h.name().c_str(), h.total());

    vendor::rgb c = pool.submit<invert>(vendor::rgb(10, 200, 255)).get();
    std::printf("inverted colour: %d %d %d\n", c.r(), c.g(), c.b());
}
