// SPDX-License-Identifier: BSL-1.0
// procpool/detail/error_impl.hpp: the non-template part of error.hpp (exceptions to and from their records): inline
// in header-only mode, compiled once in src.hpp with PROCPOOL_SEPARATE_COMPILATION.
#ifndef PROCPOOL_DETAIL_ERROR_IMPL_HPP
#define PROCPOOL_DETAIL_ERROR_IMPL_HPP

#include <procpool/config.hpp>
#include <procpool/error.hpp>

#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <typeinfo>
#include <variant>
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#include <cstdlib>
#define PROCPOOL_DETAIL_HAS_CXXABI 1
#else
#define PROCPOOL_DETAIL_HAS_CXXABI 0
#endif

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

PROCPOOL_DECL std::string demangle(const char* name) {
#if PROCPOOL_DETAIL_HAS_CXXABI
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (status == 0 && out) {
        std::string s(out);
        std::free(out);
        return s;
    }
#endif
    return name;
}

PROCPOOL_DECL exception_record capture_exception(std::exception_ptr ep) {
    exception_record rec;
    try {
        std::rethrow_exception(ep);
    } catch (const std::exception& e) {
        rec.type = demangle(typeid(e).name());
        rec.what = e.what();
        auto same = [&](const std::type_info& t) { return typeid(e) == t; };
        using K = exception_kind;
        if (same(typeid(std::logic_error))) rec.kind = K::logic_error;
        else if (same(typeid(std::invalid_argument))) rec.kind = K::invalid_argument;
        else if (same(typeid(std::domain_error))) rec.kind = K::domain_error;
        else if (same(typeid(std::length_error))) rec.kind = K::length_error;
        else if (same(typeid(std::out_of_range))) rec.kind = K::out_of_range;
        else if (same(typeid(std::runtime_error))) rec.kind = K::runtime_error;
        else if (same(typeid(std::range_error))) rec.kind = K::range_error;
        else if (same(typeid(std::overflow_error))) rec.kind = K::overflow_error;
        else if (same(typeid(std::underflow_error))) rec.kind = K::underflow_error;
        else if (same(typeid(std::bad_alloc))) rec.kind = K::bad_alloc;
        else if (same(typeid(std::bad_optional_access))) rec.kind = K::bad_optional_access;
        else if (same(typeid(std::bad_variant_access))) rec.kind = K::bad_variant_access;
        else if (same(typeid(std::exception))) rec.kind = K::exception;
        else if (same(typeid(unknown_task))) rec.kind = K::unknown_task;
        else if (same(typeid(error))) rec.kind = K::error;
        else if (auto* le = dynamic_cast<const limit_exceeded*>(&e); le && same(typeid(limit_exceeded))) {
            rec.kind = K::limit_exceeded; // through a nested pool
            rec.type = le->resource();
        }
        else if (auto* pe = dynamic_cast<const protocol_error*>(&e); pe && same(typeid(protocol_error))) {
            rec.kind = K::protocol_error;
            rec.code = static_cast<std::int64_t>(pe->offset());
        } else if (auto* se = dynamic_cast<const std::system_error*>(&e); se && same(typeid(std::system_error)) &&
                   (se->code().category() == std::generic_category() ||
                    se->code().category() == std::system_category())) {
            rec.kind = K::system_error;
            rec.code = se->code().value();
            // what() is "<message>: <code text>"; keep only the message so the rebuilt one is not doubled.
            std::string suffix = se->code().message();
            if (rec.what == suffix) rec.what.clear();
            else if (rec.what.size() > suffix.size() + 2 && rec.what.ends_with(": " + suffix))
                rec.what.resize(rec.what.size() - suffix.size() - 2);
            rec.type = se->code().category() == std::generic_category() ? "generic" : "system";
        } else if (auto* re = dynamic_cast<const remote_error*>(&e)) {
            // A remote_error passing through a nested pool keeps the original type name.
            rec.type = re->type_name();
            rec.what = re->message();
        }
    } catch (...) {
#if PROCPOOL_DETAIL_HAS_CXXABI
        if (auto* t = abi::__cxa_current_exception_type()) rec.type = demangle(t->name());
        else
#endif
            rec.type = "a non-std::exception object";
        rec.what = "(no message: the task threw something not derived from std::exception)";
    }
    return rec;
}

PROCPOOL_DECL void throw_exception_record(const exception_record& r) {
    using K = exception_kind;
    switch (r.kind) {
    case K::logic_error: throw std::logic_error(r.what);
    case K::invalid_argument: throw std::invalid_argument(r.what);
    case K::domain_error: throw std::domain_error(r.what);
    case K::length_error: throw std::length_error(r.what);
    case K::out_of_range: throw std::out_of_range(r.what);
    case K::runtime_error: throw std::runtime_error(r.what);
    case K::range_error: throw std::range_error(r.what);
    case K::overflow_error: throw std::overflow_error(r.what);
    case K::underflow_error: throw std::underflow_error(r.what);
    case K::bad_alloc: throw std::bad_alloc();
    case K::bad_optional_access: throw std::bad_optional_access();
    case K::bad_variant_access: throw std::bad_variant_access();
    case K::unknown_task: throw unknown_task(r.what);
    case K::protocol_error: throw protocol_error(r.what, static_cast<std::size_t>(r.code));
    case K::error: throw error(r.what);
    case K::state_leak: throw state_leak(r.what);
    case K::limit_exceeded: throw limit_exceeded(r.what, r.type);
    case K::system_error: {
        const auto& cat = r.type == "generic" ? std::generic_category() : std::system_category();
        // system_error's what() already holds the code's message; keep the original text verbatim.
        throw std::system_error(std::error_code(static_cast<int>(r.code), cat), r.what);
    }
    case K::exception: throw remote_error("std::exception", r.what);
    case K::other: break;
    }
    throw remote_error(r.type, r.what);
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_ERROR_IMPL_HPP
