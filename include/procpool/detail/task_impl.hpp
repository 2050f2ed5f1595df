// SPDX-License-Identifier: BSL-1.0
// procpool/detail/task_impl.hpp: the non-template part of task.hpp (the task registry): inline in header-only mode,
// compiled once in src.hpp with PROCPOOL_SEPARATE_COMPILATION.
#ifndef PROCPOOL_DETAIL_TASK_IMPL_HPP
#define PROCPOOL_DETAIL_TASK_IMPL_HPP

#include <procpool/config.hpp>
#include <procpool/error.hpp>
#include <procpool/task.hpp>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

PROCPOOL_DECL bool register_task_entry(std::string_view name, const char* signature, invoker_fn invoke,
                                       const char* file, int line) {
    return registry::instance().add(
        task_entry{std::string(strip_name(name)), signature, invoke, std::string(file) + ":" + std::to_string(line), {}});
}

PROCPOOL_DECL bool registry::add(task_entry e) {
    std::lock_guard lock(mutex_);
    if (e.plugin.empty()) e.plugin = loading_;
    auto it = tasks_.find(e.name);
    if (it == tasks_.end()) {
        tasks_.emplace(e.name, std::move(e));
    } else if (it->second.origin != e.origin || it->second.signature != e.signature) {
        conflicts_.push_back("task name \"" + e.name + "\" is registered twice: at " + it->second.origin +
                             " and at " + e.origin);
    }
    return true;
}

PROCPOOL_DECL const task_entry* registry::find(std::string_view name) const {
    std::lock_guard lock(mutex_);
    auto it = tasks_.find(std::string(name));
    return it == tasks_.end() ? nullptr : &it->second;
}

PROCPOOL_DECL void registry::verify() const {
    std::lock_guard lock(mutex_);
    if (conflicts_.empty()) return;
    std::string msg = "procpool: ";
    for (const auto& c : conflicts_) msg += c + "; ";
    msg += "give one of them a distinct name with PROCPOOL_TASK_AS(\"name\", fn).";
    throw registry_error(msg);
}

PROCPOOL_DECL std::uint64_t registry::hash() const {
    std::lock_guard lock(mutex_);
    std::uint64_t h = 14695981039346656037ull;
    for (const auto& [name, e] : tasks_) { // std::map: sorted, so the order of registration does not matter
        if (!e.plugin.empty()) continue;
        h = fnv1a(h, name);
        h = fnv1a(h, std::string_view("\0", 1));
        h = fnv1a(h, e.signature);
        h = fnv1a(h, std::string_view("\0", 1));
    }
    return h;
}

PROCPOOL_DECL void registry::set_loading(std::string plugin) {
    std::lock_guard lock(mutex_);
    loading_ = std::move(plugin);
}

PROCPOOL_DECL std::vector<std::string> registry::names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& kv : tasks_) out.push_back(kv.first);
    return out;
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_TASK_IMPL_HPP
