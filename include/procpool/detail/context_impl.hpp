// SPDX-License-Identifier: BSL-1.0
// procpool/detail/context_impl.hpp: the non-template part of context.hpp (the context registry, snapshots): inline
// in header-only mode, compiled once in src.hpp with PROCPOOL_SEPARATE_COMPILATION.
#ifndef PROCPOOL_DETAIL_CONTEXT_IMPL_HPP
#define PROCPOOL_DETAIL_CONTEXT_IMPL_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/context.hpp>
#include <procpool/error.hpp>

#include <algorithm>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

PROCPOOL_DECL bool context_registry::add(std::string name, context_entry e) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(name);
    if (it != entries_.end() && it->second.origin != e.origin)
        conflicts_.push_back("context \"" + name + "\" is registered twice: at " + it->second.origin + " and at " +
                             e.origin);
    else entries_.emplace(std::move(name), std::move(e));
    any_.store(true, std::memory_order_release);
    return true;
}

PROCPOOL_DECL bool context_registry::empty() const {
    return !any_.load(std::memory_order_acquire); // asked on every submit: no lock (entries are never removed)
}

PROCPOOL_DECL void context_registry::verify() const {
    std::lock_guard lock(mutex_);
    if (conflicts_.empty()) return;
    std::string msg = "procpool: ";
    for (const auto& c : conflicts_) msg += c + "; ";
    msg += "give each context its own name.";
    throw registry_error(msg);
}

PROCPOOL_DECL context_snapshot context_registry::capture() const {
    std::lock_guard lock(mutex_);
    context_snapshot out;
    out.reserve(entries_.size());
    for (const auto& [name, e] : entries_) {
        context_value v{name, {}};
        writer w(v.value);
        e.capture(w);
        out.push_back(std::move(v));
    }
    return out;
}

PROCPOOL_DECL void context_registry::apply(const context_snapshot& values) const {
    for (const auto& v : values) {
        const context_entry* e = nullptr;
        {
            std::lock_guard lock(mutex_);
            auto it = entries_.find(v.name);
            if (it != entries_.end()) e = &it->second;
        }
        if (!e)
            throw error("procpool: the parent sent context \"" + v.name +
                        "\", which this worker has not registered. Register it with PROCPOOL_CONTEXT in a "
                        "source file linked into the worker's executable.");
        reader r(v.value);
        e->apply(r);
        if (r.remaining() != 0)
            throw protocol_error("procpool: corrupt value for context \"" + v.name + "\"", r.offset());
    }
}

PROCPOOL_DECL std::vector<std::string> changed_contexts(const context_snapshot& before, const context_snapshot& after) {
    std::vector<std::string> out;
    for (const auto& a : after) {
        auto it = std::find_if(before.begin(), before.end(), [&](const context_value& b) { return b.name == a.name; });
        if (it == before.end() || it->value != a.value) out.push_back(a.name);
    }
    return out;
}

PROCPOOL_DECL context_snapshot context_delta(const context_snapshot* applied, const context_snapshot& now) {
    if (!applied) return now;
    context_snapshot out;
    for (const auto& v : now) {
        auto it = std::find_if(applied->begin(), applied->end(), [&](const context_value& a) { return a.name == v.name; });
        if (it == applied->end() || it->value != v.value) out.push_back(v);
    }
    return out;
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_CONTEXT_IMPL_HPP
