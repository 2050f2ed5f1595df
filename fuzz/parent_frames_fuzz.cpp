// SPDX-License-Identifier: BSL-1.0
// fuzz/parent_frames_fuzz.cpp: libFuzzer target for what the parent does with the bytes a worker sends.
//
// The first 4 input bytes choose the frame limit, the size of the batch a batch_result answers and how the stream
// is cut into chunks (what each read returns); the rest is the worker's byte stream. Each chunk goes through
// detail::frame_reader exactly as process_engine::receive does it (prepare, copy as much as fits, commit, then
// next() until it has no complete frame), and every frame is decoded as process_engine::handle decodes it:
//   hello          hello_msg                     guard_missing   std::string
//   init_failed    exception_record, recreated as an exception_ptr (as initializer_error's cause)
//   bye            std::optional<exception_record>                leak   leak_msg
//   result         u64 id, then value_state<T>::deliver_payload for several T
//   batch_result   u64 id, then batch_state<T>::deliver_payload for several T
//   ready          payload ignored            anything else: "unexpected frame", a protocol_error
// Only procpool::protocol_error may come out (the parent then kills the worker and stops reading it). Anything
// else is a finding: another exception, a crash, a sanitizer report, a hang, or an allocation over libFuzzer's
// -malloc_limit_mb (-rss_limit_mb by default) — e.g. a frame_reader that allocates the length a header claims
// before the bytes arrive. deliver_payload stores its failure in the state: that must be a protocol_error too,
// and a task's recreated exception must be a std::exception (exception records with any kind number decode).
//
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude \
//       fuzz/parent_frames_fuzz.cpp -o parent_frames_fuzz
//   ./parent_frames_fuzz -max_total_time=600 -rss_limit_mb=2048 corpus/
//
// Seed corpus: build without -fsanitize=fuzzer and with -DPROCPOOL_FUZZ_WRITE_SEEDS, then run `./seeds corpus/`.
#include <procpool/codec.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/protocol.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#ifdef PROCPOOL_FUZZ_WRITE_SEEDS
#include <cstdio>
#include <fstream>
#endif

namespace fuzz {

struct point {
    std::int32_t x = 0;
    std::string label;
    std::optional<double> weight;
    std::vector<std::uint8_t> tags;
};

namespace pd = procpool::detail;

[[noreturn]] inline void finding() { __builtin_trap(); }

/// What future::get() would do with a state: a pool-level error must be a protocol_error (deliver_payload
/// failed), a task's error any std::exception recreated from its record.
inline void check_errors(const std::exception_ptr& error, const std::exception_ptr& task_error) {
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const procpool::protocol_error&) {
        } catch (...) {
            finding();
        }
    }
    if (task_error) {
        try {
            std::rethrow_exception(task_error);
        } catch (const std::system_error& e) {
            (void)e.code().message();
        } catch (const procpool::remote_error& e) {
            (void)(std::strlen(e.what()) + e.type_name().size() + e.message().size());
        } catch (const std::exception& e) {
            (void)std::strlen(e.what());
        } catch (...) {
            finding();
        }
    }
}

template <class T>
void result_as(std::span<const std::byte> rest) {
    auto s = std::make_shared<pd::value_state<T>>();
    s->deliver_payload(rest);
    if (!s->done.load()) finding();
    if (!s->error && !s->task_error && !s->value) finding(); // delivered nothing, yet no error
    check_errors(s->error, s->task_error);
}

template <class T>
void batch_as(std::span<const std::byte> rest, std::size_t n) {
    auto s = std::make_shared<pd::batch_state<T>>();
    s->values.resize(n); // as pool::submit_chunks sizes a chunk's state
    s->deliver_payload(rest);
    if (!s->done.load()) finding();
    check_errors(s->error, nullptr);
    if (!s->error)
        for (std::size_t i = 0; i < n; ++i) {
            const std::exception_ptr e = s->errors.empty() ? nullptr : s->errors[i];
            if (!s->values[i] && !e) finding();
            check_errors(nullptr, e);
        }
}

/// One frame, decoded as process_engine::handle decodes it. \throws protocol_error.
inline void handle(pd::frame_type type, std::span<const std::byte> payload, std::size_t batch_n) {
    using F = pd::frame_type;
    switch (type) {
    case F::hello: {
        auto h = procpool::decode<pd::hello_msg>(payload);
        (void)(h.executable.size() + std::to_string(h.registry_hash).size());
        return;
    }
    case F::guard_missing: (void)procpool::decode<std::string>(payload); return;
    case F::ready: return;
    case F::init_failed: {
        auto rec = procpool::decode<pd::exception_record>(payload);
        auto cause = pd::exception_from_record(rec);
        check_errors(nullptr, cause);
        procpool::initializer_error e("procpool: the initializer threw: " + rec.type + ": " + rec.what, cause);
        (void)e.what();
        return;
    }
    case F::bye: {
        auto err = procpool::decode<std::optional<pd::exception_record>>(payload);
        if (err) (void)(err->type + ": " + err->what);
        return;
    }
    case F::leak: {
        auto leak = procpool::decode<pd::leak_msg>(payload);
        std::string list;
        for (const auto& c : leak.contexts) list += (list.empty() ? "\"" : ", \"") + c + "\"";
        return;
    }
    case F::result:
    case F::batch_result: {
        procpool::reader r(payload);
        (void)r.read<std::uint64_t>(); // the id (the parent compares it with the job it expects)
        auto rest = payload.subspan(r.offset());
        if (type == F::result) {
            result_as<void>(rest);
            result_as<int>(rest);
            result_as<std::string>(rest);
            result_as<std::vector<double>>(rest);
            result_as<point>(rest);
        } else {
            batch_as<void>(rest, batch_n);
            batch_as<int>(rest, batch_n);
            batch_as<std::string>(rest, batch_n);
            batch_as<std::vector<double>>(rest, batch_n);
            batch_as<point>(rest, batch_n);
        }
        return;
    }
    default: break;
    }
    throw procpool::protocol_error(std::string("procpool: unexpected ") + pd::frame_type_name(type) + " frame", 0);
}

/// Runs one stream: `in` is the worker's bytes; the rest are the parent's parameters.
inline void receive_stream(std::span<const std::uint8_t> in, std::size_t limit, std::size_t batch_n,
                           std::uint8_t chunking) {
    procpool::detail::frame_reader reader;
    std::uint64_t rng = 0x9e3779b97f4a7c15ull * (chunking + 1u);
    auto next_chunk = [&]() -> std::size_t { // what one read_some() returned
        if (chunking == 0) return in.size(); // everything at once
        if (chunking == 1) return 1;         // byte by byte
        rng ^= rng << 13; // xorshift64
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return 1 + rng % (chunking < 128 ? 16u : 600u);
    };
    try {
        std::size_t pos = 0;
        while (pos < in.size()) {
            auto chunk = std::min(next_chunk(), in.size() - pos);
            std::size_t done = 0;
            while (done < chunk) { // as process_engine::receive: prepare, read what fits, commit, cut frames
                auto space = reader.prepare();
                if (space.size() < 64 * 1024) finding(); // prepare(min) offers at least min bytes
                auto n = std::min(space.size(), chunk - done);
                std::memcpy(space.data(), in.data() + pos + done, n);
                reader.commit(n);
                done += n;
                while (auto f = reader.next(limit)) {
                    if (f->second.size() > limit) finding();
                    handle(f->first, f->second, batch_n);
                }
            }
            pos += chunk;
        }
    } catch (const procpool::protocol_error&) {
        // A corrupt frame: the parent kills the worker and stops reading its channel.
    }
}

} // namespace fuzz

// Input: 4 parameter bytes, then the worker's byte stream.
//   [0] % 4: the frame limit passed to next(): PROCPOOL_MAX_FRAME_BYTES, 4096, [3], or [3] * 4099
//   [1] % 9: the number of items of the batch a batch_result answers
//   [2]: how the stream arrives: 0 at once, 1 byte by byte, else pseudo-random chunks (seeded by [2])
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return 0;
    std::size_t limit = PROCPOOL_MAX_FRAME_BYTES;
    switch (data[0] % 4) {
    case 0: break;
    case 1: limit = 4096; break;
    case 2: limit = data[3]; break;
    default: limit = std::size_t{data[3]} * 4099; break;
    }
    fuzz::receive_stream(std::span(data + 4, size - 4), limit, data[1] % 9, data[2]);
    return 0;
}

#ifdef PROCPOOL_FUZZ_WRITE_SEEDS
// Writes valid worker sessions into the directory argv[1].
int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s corpus_dir\n", argv[0]);
        return 2;
    }
    namespace pd = procpool::detail;
    using procpool::encode;
    int n = 0;
    auto put = [&](std::initializer_list<std::uint8_t> params, std::initializer_list<std::vector<std::byte>> frames) {
        std::ofstream out(std::string(argv[1]) + "/seed_" + std::to_string(n++), std::ios::binary);
        for (auto p : params) out.put(static_cast<char>(p));
        for (const auto& f : frames) out.write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
    };
    auto raw = [](pd::frame_type type, std::initializer_list<std::vector<std::byte>> parts) {
        std::vector<std::byte> f;
        pd::begin_frame(f);
        for (const auto& p : parts) f.insert(f.end(), p.begin(), p.end());
        pd::finish_frame(f, type);
        return f;
    };
    auto rec = [](pd::exception_kind k, std::string type, std::string what, std::int64_t code = 0) {
        return pd::exception_record{k, std::move(type), std::move(what), code};
    };
    pd::hello_msg hello;
    hello.executable = "1:2:3:4";
    hello.pid = 42;
    auto ready = pd::make_empty_frame(pd::frame_type::ready);
    using F = pd::frame_type;
    put({0, 0, 0, 0}, {pd::make_frame(F::hello, hello), ready, raw(F::result, {encode(std::uint64_t{1}), encode(true), encode(7)})});
    put({1, 0, 1, 0}, {raw(F::result, {encode(std::uint64_t{2}), encode(true), encode(std::string("str"))}),
                       raw(F::result, {encode(std::uint64_t{3}), encode(true), encode(std::vector<double>{1.5, -0.0})})});
    put({0, 0, 7, 0}, {raw(F::result, {encode(std::uint64_t{4}), encode(true),
                                       encode(fuzz::point{-3, "p", 2.5, {1, 2}})})});
    put({3, 2, 200, 9}, {raw(F::batch_result, {encode(std::uint64_t{5}), encode(std::uint64_t{2}), encode(true), encode(1),
                                               encode(false), encode(rec(pd::exception_kind::out_of_range, "std::out_of_range", "oops"))})});
    put({0, 1, 3, 0}, {raw(F::result, {encode(std::uint64_t{6}), encode(false),
                                       encode(rec(pd::exception_kind::system_error, "generic", "open", 2))}),
                       raw(F::result, {encode(std::uint64_t{7}), encode(false),
                                       encode(rec(pd::exception_kind::protocol_error, "procpool::protocol_error", "bad", 5))}),
                       raw(F::result, {encode(std::uint64_t{8}), encode(false), encode(rec(pd::exception_kind::other, "my::error", "x"))})});
    put({0, 0, 0, 0}, {pd::make_frame(F::hello, hello),
                       pd::make_frame(F::init_failed, rec(pd::exception_kind::invalid_argument, "std::invalid_argument", "no"))});
    put({1, 0, 5, 0}, {pd::make_frame(F::leak, pd::leak_msg{"t", {"a", "b"}}),
                       pd::make_frame(F::bye, std::optional<pd::exception_record>(rec(pd::exception_kind::bad_alloc, "std::bad_alloc", "")))});
    put({2, 0, 0, 64}, {pd::make_frame(F::guard_missing, std::string("procpool: a pool was constructed in a spawned worker"))});
    return 0;
}
#endif
