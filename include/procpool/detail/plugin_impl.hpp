// SPDX-License-Identifier: BSL-1.0
// procpool/detail/plugin_impl.hpp: the non-template part of plugin.hpp (loading a plugin): inline in header-only mode,
// compiled once in src.hpp with PROCPOOL_SEPARATE_COMPILATION. Here, not in plugin.hpp, because it needs <filesystem>.
#ifndef PROCPOOL_DETAIL_PLUGIN_IMPL_HPP
#define PROCPOOL_DETAIL_PLUGIN_IMPL_HPP

#include <procpool/config.hpp>
#include <procpool/plugin.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

PROCPOOL_DECL void load_plugin(const std::string& path) {
    std::error_code ec;
    auto abs = std::filesystem::canonical(path, ec);
    if (ec) throw plugin_error("procpool: cannot load plugin \"" + path + "\": " + ec.message());
    std::string where = abs.string();
    auto& list = detail::plugins();
    std::lock_guard lock(list.mutex);
    if (std::find(list.paths.begin(), list.paths.end(), where) != list.paths.end()) return;
    auto& reg = detail::registry::instance();
    std::string err;
    reg.set_loading(where); // tasks that register into our registry while it loads are the plugin's
    void* lib = platform::load_library(where, err);
    reg.set_loading("");
    if (!lib) throw plugin_error("procpool: cannot load plugin \"" + where + "\": " + err);
    void* sym = platform::find_symbol(lib, detail::plugin_entry_name);
    if (!sym)
        throw plugin_error("procpool: \"" + where + "\" is not a procpool plugin: it exports no " +
                           detail::plugin_entry_name + ". Add PROCPOOL_PLUGIN(); to one of its source files.");
    detail::plugin_entry_fn entry = nullptr;
    static_assert(sizeof entry == sizeof sym);
    std::memcpy(&entry, &sym, sizeof entry); // object to function pointer: what dlsym returns
    struct ctx_t {
        std::string plugin;
    } ctx{where};
    int rc = entry(PROCPOOL_VERSION, &ctx, [](void* c, const detail::plugin_task* t) {
        detail::registry::instance().add(
            detail::task_entry{t->name, t->signature, t->invoke, t->origin, static_cast<ctx_t*>(c)->plugin});
    });
    if (rc != 0)
        throw plugin_error("procpool: plugin \"" + where + "\" was built with procpool version " + std::to_string(rc) +
                           ", this program with " + std::to_string(PROCPOOL_VERSION) + ". Rebuild the plugin.");
    list.paths.push_back(where);
    list.count.store(list.paths.size(), std::memory_order_release);
    reg.verify();
}

PROCPOOL_DECL std::vector<std::string> loaded_plugins() {
    auto& list = detail::plugins();
    std::lock_guard lock(list.mutex);
    return list.paths;
}

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_PLUGIN_IMPL_HPP
