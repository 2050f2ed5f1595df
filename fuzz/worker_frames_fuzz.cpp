// SPDX-License-Identifier: BSL-1.0
// fuzz/worker_frames_fuzz.cpp: libFuzzer target for the worker loop, detail::serve_channel, fed by a fuzzed parent.
//
// Each input runs the real worker loop in this process on one end of a socketpair. A helper thread plays the
// parent: it writes the input to the other end, then shutdown(SHUT_WR) (so the worker sees end of stream instead
// of waiting for more bytes), and drains whatever the worker writes back until the worker closes its end.
// The first input byte chooses the prologue: odd, a valid setup frame is written first (its other bits pick the
// leak audit and whether an initializer and a finalizer are set), so the fuzzer reaches the task, batch,
// context and retire handling at once; even, the rest of the input is the whole stream (setup decoding too).
// The tasks and the context below are registered in this binary, so task frames reach real invokers.
// The loop runs embedded: a setup frame asking for per-task forks or resource limits is refused, since applying
// them would fork or constrain the fuzzer itself (an address-space limit made the sanitizer's own allocations fail).
// serve_channel must return for every input: a hang (-timeout), a crash, a sanitizer report, or an allocation
// over -malloc_limit_mb (e.g. a frame whose header claims 4 GiB, allocated before its bytes arrive) is a finding.
// Setup and plugins frames name plugin paths, which the worker dlopens (relative ones from the current directory):
// run the fuzzer where no stray shared library lies around (the build tree is fine).
//
// The worker reports a corrupt stream on stderr ("procpool: worker pid N stops: ..."), once per input: unless
// the command line says otherwise this target adds -close_fd_mask=2, with which libFuzzer keeps its own and the
// sanitizers' reports but discards the target's stderr. Pass -close_fd_mask=0 to see the worker's messages.
//
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude \
//       fuzz/worker_frames_fuzz.cpp -o worker_frames_fuzz
//   ./worker_frames_fuzz -max_total_time=600 -rss_limit_mb=2048 corpus/
//
// Seed corpus: build without -fsanitize=fuzzer and with -DPROCPOOL_FUZZ_WRITE_SEEDS, then run `./seeds corpus/`.
#include <procpool/codec.hpp>
#include <procpool/context.hpp>
#include <procpool/error.hpp>
#include <procpool/log.hpp>
#include <procpool/protocol.hpp>
#include <procpool/task.hpp>
#include <procpool/worker.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef PROCPOOL_FUZZ_WRITE_SEEDS
#include <cstdio>
#include <fstream>
#endif

namespace fz {

struct point {
    std::int32_t x = 0;
    std::string label;
    std::optional<double> weight;
};

inline int add(int a, int b) { return static_cast<int>(static_cast<unsigned>(a) + static_cast<unsigned>(b)); }
inline std::string echo(std::string s) { return s; }
inline std::vector<double> twice(std::vector<double> v) {
    for (auto& x : v) x *= 2;
    return v;
}
inline point shift(point p, std::int32_t dx) {
    p.x = static_cast<std::int32_t>(static_cast<std::uint32_t>(p.x) + static_cast<std::uint32_t>(dx));
    return p;
}
// const& strings and byte vectors: decoded into buffers the worker keeps between calls (task.hpp, kept_args).
inline std::uint64_t sizes(const std::vector<std::byte>& b, const std::string& s) { return b.size() * 31 + s.size(); }
struct not_std {};
inline void fail(std::uint8_t how) {
    switch (how % 6) {
    case 0: throw std::out_of_range("fz: out of range");
    case 1: throw std::system_error(EINVAL, std::generic_category(), "fz: system error");
    case 2: throw procpool::protocol_error("fz: protocol", 3);
    case 3: throw not_std{};
    case 4: throw std::bad_alloc();
    default: throw std::runtime_error("fz: runtime");
    }
}

// A context, and a task that changes it without restoring it (the leak audit's case).
inline int level = 0;
inline int get_level() { return level; }
inline void set_level(int v) { level = v; }
inline void bump() { ++level; }

inline int initialized = 0;
inline void init(int v) {
    if (v < 0) throw std::invalid_argument("fz: initializer refuses a negative value");
    initialized = v;
}
inline void fini() { initialized = 0; }

} // namespace fz

PROCPOOL_TASK(fz::add);
PROCPOOL_TASK(fz::echo);
PROCPOOL_TASK(fz::twice);
PROCPOOL_TASK(fz::shift);
PROCPOOL_TASK(fz::sizes);
PROCPOOL_TASK(fz::fail);
PROCPOOL_TASK(fz::bump);
PROCPOOL_TASK(fz::init);
PROCPOOL_TASK(fz::fini);
PROCPOOL_CONTEXT("fz.level", fz::get_level, fz::set_level);

namespace fz {

namespace pd = procpool::detail;

/// The valid setup frame a parent sends after the hello, picked by the first input byte.
inline std::vector<std::byte> setup_frame(std::uint8_t selector) {
    pd::setup_msg s;
    s.worker_index = 1;
    s.leak_audit = static_cast<std::uint8_t>((selector >> 1) & 3); // off, log, retire, fail
    if (selector & 8) s.initializer = procpool::task_call{"fz::init", procpool::encode(std::tuple<int>{(selector & 16) ? -1 : 7})};
    if (selector & 32) s.finalizer = procpool::task_call{"fz::fini", {}};
    return pd::make_frame(pd::frame_type::setup, s);
}

/// The parent's side: writes `in`, shuts down writing, reads until the worker closes its end.
inline void play_parent(int fd, const std::vector<std::byte>& in) {
    std::size_t sent = 0;
    bool shut = false;
    char sink[16384];
    for (;;) {
        if (!shut && sent == in.size()) {
            ::shutdown(fd, SHUT_WR);
            shut = true;
        }
        pollfd p{fd, static_cast<short>(POLLIN | (shut ? 0 : POLLOUT)), 0};
        if (::poll(&p, 1, -1) < 0) {
            if (errno == EINTR) continue;
            std::abort();
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            auto r = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
            if (r == 0) return; // the worker closed its end
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
        }
        if (!shut && (p.revents & POLLOUT)) {
            auto r = ::send(fd, in.data() + sent, in.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r > 0) sent += static_cast<std::size_t>(r);
            else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) shut = true; // worker gone
        }
    }
}

inline int run(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::vector<std::byte> stream;
    if (data[0] & 1) stream = setup_frame(data[0]);
    stream.insert(stream.end(), reinterpret_cast<const std::byte*>(data) + 1, reinterpret_cast<const std::byte*>(data) + size);

    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    std::thread parent(play_parent, sv[1], std::cref(stream));
    int code = pd::serve_channel(sv[0], pd::serve_host::embedded); // per-task forks and limits: refused
    ::close(sv[0]); // the parent thread sees end of stream
    parent.join();
    ::close(sv[1]);
    if (code != 0 && code != 4 && code != 5) __builtin_trap();
    // Reset what one session leaves in this process, so inputs stay independent.
    procpool::set_log_level(procpool::log_level::off);
    level = 0;
    initialized = 0;
    return 0;
}

} // namespace fz

#ifndef PROCPOOL_FUZZ_WRITE_SEEDS

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    // Add -close_fd_mask=2 unless given: the worker's own stderr line per corrupt input would swamp the output.
    for (int i = 1; i < *argc; ++i)
        if (std::strncmp((*argv)[i], "-close_fd_mask=", 15) == 0) return 0;
    static std::vector<char*> args;
    static char flag[] = "-close_fd_mask=2";
    args.assign(*argv, *argv + *argc);
    args.insert(args.begin() + 1, flag);
    args.push_back(nullptr);
    *argc += 1;
    *argv = args.data();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { return fz::run(data, size); }

#else
// Writes valid sessions (after the setup frame the prologue adds) into the directory argv[1].
int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s corpus_dir\n", argv[0]);
        return 2;
    }
    namespace pd = procpool::detail;
    int n = 0;
    auto put = [&](std::uint8_t selector, const std::vector<std::byte>& bytes) {
        std::ofstream out(std::string(argv[1]) + "/seed_" + std::to_string(n++), std::ios::binary);
        out.put(static_cast<char>(selector));
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    };
    auto task = [](std::uint64_t id, const std::string& name, const std::vector<std::byte>& args) {
        std::vector<std::byte> f;
        pd::begin_frame(f);
        procpool::writer w(f);
        w.write(id);
        w.write(name);
        f.insert(f.end(), args.begin(), args.end());
        pd::finish_frame(f, pd::frame_type::task);
        return f;
    };
    auto batch = [](std::uint64_t id, const std::string& name, const std::vector<std::vector<std::byte>>& items) {
        std::vector<std::byte> f;
        pd::begin_frame(f);
        procpool::writer w(f);
        w.write(id);
        w.write(name);
        w.write(items);
        pd::finish_frame(f, pd::frame_type::batch);
        return f;
    };
    auto cat = [](std::initializer_list<std::vector<std::byte>> parts) {
        std::vector<std::byte> out;
        for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
        return out;
    };
    using procpool::encode;
    auto retire = pd::make_empty_frame(pd::frame_type::retire);
    pd::context_snapshot ctx{{"fz.level", encode(5)}};
    put(1, cat({task(1, "fz::add", encode(std::tuple<int, int>{2, 3})), task(2, "fz::echo", encode(std::string("hi"))),
                retire}));
    put(1 | 2 | 8 | 32, cat({pd::make_frame(pd::frame_type::context, ctx), task(3, "fz::bump", {}),
                             task(4, "fz::fail", encode(std::uint8_t{3})), retire}));
    put(1 | 6, cat({task(5, "fz::twice", encode(std::vector<double>{1.5, -2})), task(6, "fz::bump", {}),
                    batch(7, "fz::add", {encode(std::tuple<int, int>{1, 2}), encode(std::tuple<int, int>{3, 4})}),
                    retire}));
    put(1 | 4 | 8 | 16, cat({task(8, "fz::add", encode(std::tuple<int, int>{1, 1}))}));
    put(1, cat({batch(9, "fz::shift", {encode(std::tuple<fz::point, std::int32_t>{fz::point{1, "p", 0.5}, 2})}),
                task(10, "nope", {}), pd::make_frame(pd::frame_type::context, pd::context_snapshot{{"zz", {}}}),
                task(11, "fz::echo", encode(std::string("x")))}));
    // Task frames over the worker's 64 KiB read buffer: streamed into the arguments, into kept buffers the second
    // time, and a third whose string count claims more than the frame holds.
    using blob_args = std::tuple<std::vector<std::byte>, std::string>;
    auto big = task(13, "fz::sizes", encode(blob_args{std::vector<std::byte>(70000, std::byte{1}), "s"}));
    auto bigger = task(14, "fz::sizes", encode(blob_args{std::vector<std::byte>(3), std::string(80000, 'x')}));
    auto lying = bigger;
    lying[lying.size() - 80000 - 2] = std::byte{0x7f}; // a high byte of the string's 8-byte count
    put(1, cat({big, bigger, lying, task(15, "fz::echo", encode(std::string("after"))), retire}));
    procpool::detail::setup_msg s;
    s.finalizer = procpool::task_call{"fz::fini", {}};
    put(0, cat({pd::make_frame(pd::frame_type::setup, s), task(12, "fz::fail", encode(std::uint8_t{1})), retire}));
    // Setups the embedded loop refuses: applied, a 64 MiB address-space limit or per-task forks would act on the
    // fuzzer's own process.
    pd::setup_msg limited;
    limited.limit_address_space = std::uint64_t{64} << 20;
    limited.limit_cpu_seconds = 1;
    put(0, cat({pd::make_frame(pd::frame_type::setup, limited), task(16, "fz::echo", encode(std::string("x")))}));
    pd::setup_msg forking;
    forking.per_task = true;
    put(0, cat({pd::make_frame(pd::frame_type::setup, forking), task(17, "fz::bump", {}), retire}));
    return 0;
}
#endif
