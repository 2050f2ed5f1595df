// SPDX-License-Identifier: BSL-1.0
// procpool/detail/make_engine.hpp: the engine a pool_options asks for, declared apart from the engines, so that
// pool.hpp does not include them (detail/pool_impl.hpp defines it: inline in header-only mode, once in src.hpp
// with PROCPOOL_SEPARATE_COMPILATION).
#ifndef PROCPOOL_DETAIL_MAKE_ENGINE_HPP
#define PROCPOOL_DETAIL_MAKE_ENGINE_HPP

#include <procpool/config.hpp>
#include <procpool/detail/engine.hpp>
#include <procpool/options.hpp>

#include <memory>

PROCPOOL_BEGIN_NAMESPACE
namespace detail {

/// A new, not yet started engine for `opts`: inline_engine for start_method::in_process, else process_engine.
PROCPOOL_DECL std::shared_ptr<pool_engine> make_engine(pool_options opts);

} // namespace detail
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_MAKE_ENGINE_HPP
