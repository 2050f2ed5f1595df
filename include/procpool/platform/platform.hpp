// SPDX-License-Identifier: BSL-1.0
// procpool/platform/platform.hpp: picks the OS layer (the only headers that include OS headers) and states its
// contract: every name below is all that the rest of procpool calls, and each is checked here, at compile time,
// for the signature the callers use. A third platform provides platform/<os>/… with the same names, includes
// them from platform/<os>.hpp, and is picked below; these checks then say what it lacks.
//
// Where each mechanism lives: platform/posix/<mechanism>.hpp and platform/windows/<mechanism>.hpp (errors, pid,
// clock, env, channel, process, spawn, lifetime, shm, library; POSIX adds fork and fd_passing, Windows win32 and utf8).
// Shared types: platform/types.hpp. Memory hints: platform/memory.hpp (one file with its own fallbacks; the codec
// includes it alone).
//
// Conventions. A handle (native_handle) is a channel end or another descriptor; invalid_handle means none, and
// close_handle ignores it. A pid_type names a child this process started (or this process). Functions marked
// noexcept below must be noexcept: the callers use them in destructors, in forked children and in the worker's
// exit paths. Timeouts are in milliseconds, -1 meaning forever. Blocking calls resume after signals (EINTR).
// Both layers also have try_reap, sleep_for_ms, set_cloexec and flush_stdio, which only the layer itself uses: a new
// platform need not provide them.
#ifndef PROCPOOL_PLATFORM_PLATFORM_HPP
#define PROCPOOL_PLATFORM_PLATFORM_HPP

#include <procpool/config.hpp>
#include <procpool/platform/memory.hpp>
#include <procpool/platform/types.hpp>

#if PROCPOOL_WINDOWS
#include <procpool/platform/windows.hpp>
#else
#include <procpool/platform/posix.hpp>
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <span>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {
namespace detail_contract {

// A platform may promise more (noexcept where the contract does not ask for it), never less, and never other
// parameter types: a function pointer converts only by dropping noexcept.
#define PROCPOOL_DETAIL_PLATFORM_PROVIDES(name, ...)                                                                   \
    static_assert(std::is_convertible_v<decltype(&platform::name), std::add_pointer_t<__VA_ARGS__>>,                \
                  "procpool: platform::" #name " does not have the signature the library calls: " #__VA_ARGS__     \
                  ". See the contract in procpool/platform/platform.hpp.")

// ---- types (types.hpp) ------------------------------------------------------------------------------------------
// native_handle, invalid_handle, pid_type; poll_item {fd, want_write → readable, writable, hangup}; exit_status
// {code, signal}. lifeline_pair {parent_end, child_end} (lifetime.hpp).
static_assert(std::is_same_v<decltype(platform::invalid_handle), const native_handle>);
static_assert(std::is_same_v<decltype(lifeline_pair::parent_end), native_handle> &&
              std::is_same_v<decltype(lifeline_pair::child_end), native_handle>);

// ---- this process (pid.hpp, clock.hpp, env.hpp) -----------------------------------------------------------------
// current_pid: this process's id.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(current_pid, pid_type() noexcept);
// cached_pid: the same without a system call per use; right in a forked child too.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(cached_pid, pid_type() noexcept);
// now_ms: milliseconds on a monotonic clock.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(now_ms, std::int64_t() noexcept);
// get_env: an environment variable's value, or null.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(get_env, const char*(const char*) noexcept);
// unset_env: removes a variable, for this process and the children it starts later.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(unset_env, void(const char*) noexcept);
// stderr_is_terminal: whether standard error is a terminal or console (a progress bar draws only then).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(stderr_is_terminal, bool() noexcept);

// ---- channels: a duplex byte stream between the parent and one worker (channel.hpp) -----------------------------
// make_channel(a, b): a connected pair of ends, neither inherited by processes started later; b is the worker's.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(make_channel, void(native_handle&, native_handle&));
// close_handle: closes a channel end (or any handle this layer returned); invalid_handle is ignored.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(close_handle, void(native_handle) noexcept);
// set_nonblocking: makes read_some/write_some return at once (may be a no-op where they never block).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(set_nonblocking, void(native_handle, bool));
// enlarge_buffers: a hint to buffer about this many bytes each way.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(enlarge_buffers, void(native_handle, int) noexcept);
// write_some: takes what fits now; bytes taken, 0 when it would block, -1 when the peer is gone.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(write_some, long(native_handle, const void*, std::size_t) noexcept);
// read_some: what is there now; bytes read, 0 when it would block, -1 at end of stream or on error.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(read_some, long(native_handle, void*, std::size_t) noexcept);
// read_some_blocking: waits for at least one byte, reads at most n; -1 at end of stream or on error.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(read_some_blocking, long(native_handle, void*, std::size_t) noexcept);
// write_all: blocks until all n bytes are written; false when the peer is gone.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(write_all, bool(native_handle, const void*, std::size_t) noexcept);
// read_all: blocks until exactly n bytes are read; false at end of stream or on error.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(read_all, bool(native_handle, void*, std::size_t) noexcept);
// wait_any(items, timeout_ms): until one item is readable, writable (if asked) or hung up, or the timeout passes.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(wait_any, void(std::span<poll_item>, int));
// peer_closed: whether the other end has closed (false where that cannot be known without reading).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(peer_closed, bool(native_handle) noexcept);

// ---- processes seen from the parent (process.hpp) ---------------------------------------------------------------
// kill_process: ends a child at once (SIGKILL, TerminateProcess).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(kill_process, void(pid_type) noexcept);
// reap_or_kill(pid, grace_ms): waits that long for the child to exit, kills it if it has not, reaps it.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(reap_or_kill, exit_status(pid_type, int) noexcept);
// open_process_handle: a handle that turns readable (wait_any) when the child ends, or invalid_handle.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(open_process_handle, native_handle(pid_type) noexcept);
// describe_exit: "exited with code 3", "was killed by SIGSEGV"; signal_name: a signal's name.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(describe_exit, std::string(const exit_status&));
PROCPOOL_DETAIL_PLATFORM_PROVIDES(signal_name, std::string(int));
// resident_bytes: a process's resident memory, 0 when unknown; thread_count: this process's threads, -1 when unknown.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(resident_bytes, std::size_t(pid_type) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(thread_count, int() noexcept);
// quick_exit_process: flushes stdio and ends this process now, with no atexit handlers or static destructors.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(quick_exit_process, void(int) noexcept);

// ---- starting a worker as a fresh copy of this executable (spawn.hpp) -------------------------------------------
// spawn_self(args, extra_env, channel, lifeline = invalid_handle): starts it with argv[1...] = args, the environment
// plus extra_env ("NAME=value"), inheriting the channel end (and the lifeline), nothing else; returns its pid.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(spawn_self, pid_type(const std::vector<std::string>&, const std::vector<std::string>&,
                                                       native_handle, native_handle));
static_assert(requires(const std::vector<std::string>& v, native_handle h) { platform::spawn_self(v, v, h); });
// child_channel_token / adopt_channel: how the child finds its channel end (a string passed in its environment),
// and, in the child, the end itself (invalid_handle if the token names none).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(child_channel_token, std::string(native_handle));
PROCPOOL_DETAIL_PLATFORM_PROVIDES(adopt_channel, native_handle(const char*));
// child_lifeline_token / adopt_lifeline: the same for the lifeline.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(child_lifeline_token, std::string(native_handle));
PROCPOOL_DETAIL_PLATFORM_PROVIDES(adopt_lifeline, native_handle(const char*) noexcept);
// executable_path: the running executable; executable_identity: a string that changes when that file is replaced.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(executable_path, std::string());
PROCPOOL_DETAIL_PLATFORM_PROVIDES(executable_identity, std::string());

// ---- a worker dies with its parent (lifetime.hpp) ---------------------------------------------------------------
// make_lifeline: a pair whose child_end goes to one child, which dies when parent_end closes (both invalid where
// the platform ties lifetimes otherwise); drop_lifeline: closes parent_end and sets it to invalid_handle.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(make_lifeline, lifeline_pair());
PROCPOOL_DETAIL_PLATFORM_PROVIDES(drop_lifeline, void(native_handle&) noexcept);
// bind_lifetime_to_parent(parent, lifeline = invalid_handle): in the child, arms its death with the parent's;
// whether the parent is still there.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(bind_lifetime_to_parent, bool(pid_type, native_handle) noexcept);
static_assert(requires(pid_type p) { platform::bind_lifetime_to_parent(p); });
// ignore_terminal_signals: Ctrl-C and the like are the application's to act on, not procpool's processes'.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(ignore_terminal_signals, void() noexcept);

// ---- the result ring's shared memory (shm.hpp) ------------------------------------------------------------------
// has_result_ring: whether the rest exists (else they return invalid_handle/null and do nothing); the memory is
// ring_control_bytes of control page, then the data.
static_assert(std::is_same_v<decltype(platform::has_result_ring), const bool>);
static_assert(std::is_same_v<decltype(platform::ring_control_bytes), const std::size_t>);
// create_ring_memory(bytes): memory to share with a worker, as a handle; map_ring(handle, bytes): maps it with the
// data twice in a row (null if it is not such memory of that size); unmap_ring(base, bytes).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(create_ring_memory, native_handle(std::size_t) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(map_ring, void*(native_handle, std::size_t) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(unmap_ring, void(void*, std::size_t) noexcept);
// wait_on_shared(word, expected, timeout_ms): sleeps while word == expected (may wake early); wake_shared: wakes one.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(wait_on_shared, void(std::atomic<std::uint32_t>&, std::uint32_t, int) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(wake_shared, void(std::atomic<std::uint32_t>&) noexcept);

// ---- plugins (library.hpp) and memory hints (memory.hpp) --------------------------------------------------------
// load_library(path, err): a loaded shared library, or null with err set; find_symbol: an exported symbol or null.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(load_library, void*(const std::string&, std::string&) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(find_symbol, void*(void*, const char*) noexcept);
// advise_huge_pages(p, bytes): a hint before first touch; a no-op where unsupported.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(advise_huge_pages, void(void*, std::size_t) noexcept);

// ---- an event loop's handle on a pool (event_set.hpp) -----------------------------------------------------------
// event_set {fd, timer, watched}; has_event_set: whether open_event_set works here (else it throws). open_event_set:
// an empty set whose fd turns readable when a watched item is ready; watch_event_set(set, items, timeout_ms): watch
// exactly these items, and turn readable after timeout_ms (-1: never); close_event_set closes the set's own handles.
static_assert(std::is_same_v<decltype(platform::has_event_set), const bool>);
static_assert(std::is_same_v<decltype(event_set::fd), native_handle>);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(open_event_set, void(event_set&));
PROCPOOL_DETAIL_PLATFORM_PROVIDES(watch_event_set, void(event_set&, const std::vector<poll_item>&, int));
PROCPOOL_DETAIL_PLATFORM_PROVIDES(close_event_set, void(event_set&) noexcept);

#if PROCPOOL_POSIX
// ---- POSIX only: the library calls these under #if PROCPOOL_POSIX (or !PROCPOOL_WINDOWS) ------------------------
// parent_pid: the parent's id (pid.hpp).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(parent_pid, pid_type() noexcept);
// fork_process: flushes stdio, then fork() (throws on failure); fork_process_noexcept: -1 and err instead (fork.hpp).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(fork_process, pid_type());
PROCPOOL_DETAIL_PLATFORM_PROVIDES(fork_process_noexcept, pid_type(int&) noexcept);
// child_exit_events: a handle readable whenever a child ends; drain empties it; reset_child_exit_events undoes it
// in a forked child (fork.hpp).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(child_exit_events, native_handle());
PROCPOOL_DETAIL_PLATFORM_PROVIDES(drain, void(native_handle) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(reset_child_exit_events, void(native_handle) noexcept);
// reap_any: one ended child and how it ended, or nothing (process.hpp).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(reap_any, std::optional<std::pair<pid_type, exit_status>>() noexcept);
// send_handles(sock, fds, count ≤ 4, data, n) / send_handle: handles and a payload over a channel; recv_handles(sock,
// fds, max, data, n, dropped = nullptr) / recv_handle: exactly n bytes and the handles that came (fd_passing.hpp).
PROCPOOL_DETAIL_PLATFORM_PROVIDES(send_handles, bool(native_handle, const native_handle*, std::size_t, const void*,
                                                     std::size_t) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(send_handle, bool(native_handle, native_handle, const void*, std::size_t) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(recv_handles,
                                  bool(native_handle, native_handle*, std::size_t, void*, std::size_t, int*) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(recv_handle, bool(native_handle, native_handle&, void*, std::size_t) noexcept);
static_assert(requires(native_handle* fds, void* data) { platform::recv_handles(0, fds, 1, data, 1); });
// child_channel_fd: the descriptor a spawned worker finds its channel on (spawn.hpp; the tests use it).
static_assert(std::is_same_v<decltype(platform::child_channel_fd), const native_handle>);
// Per-task isolation and limits (zygote.hpp): shared_word, a counter shared with the processes forked later;
// wait_child, a blocking waitpid; descriptor_table_full, EMFILE now.
PROCPOOL_DETAIL_PLATFORM_PROVIDES(shared_word, std::atomic<std::uint64_t>*());
PROCPOOL_DETAIL_PLATFORM_PROVIDES(wait_child, exit_status(pid_type) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(descriptor_table_full, bool() noexcept);
#endif
// Every platform (zygote.hpp): process_limits, has_process_limits (false: the pool refuses limits); apply_limits
// (setrlimit, a job object; "" or what failed); memory_limit_name / cpu_limit_name, the limits in messages;
// inherit_ring makes a result ring's mapping inherited by fork; cpu_limit_signal: an exit status is RLIMIT_CPU's.
static_assert(std::is_same_v<decltype(platform::has_process_limits), const bool>);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(apply_limits, std::string(const process_limits&) noexcept);
static_assert(std::is_convertible_v<decltype(platform::memory_limit_name), const char*> &&
              std::is_convertible_v<decltype(platform::cpu_limit_name), const char*>);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(inherit_ring, void(void*, std::size_t) noexcept);
PROCPOOL_DETAIL_PLATFORM_PROVIDES(cpu_limit_signal, bool(const exit_status&) noexcept);

#undef PROCPOOL_DETAIL_PLATFORM_PROVIDES

} // namespace detail_contract
} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_PLATFORM_HPP
