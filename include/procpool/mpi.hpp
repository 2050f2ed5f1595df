// SPDX-License-Identifier: BSL-1.0
// procpool/mpi.hpp: optional. The same pool (submit, map, futures...) over MPI ranks: rank 0 owns the pool, every
// other rank is a node agent that runs the tasks in a local pool of worker processes, so a task that crashes fails
// alone, as on one machine. The only procpool header that includes <mpi.h>; docs/mpi.md describes the design.
//
// Messages (tags below), between the pool (rank 0, or the spawning process) and each node agent:
//   pool -> agent   open (protocol, registry hash, the node's pool_options)   agent -> pool   ready | refused
//   pool -> agent   job (key, timeout, contexts, frame length) + the frame (a wire.hpp task or batch frame)
//   agent -> pool   result (key, outcome kind, ...) [+ the result payload]; heartbeat, while a pool is open
//   pool -> agent   stop   agent -> pool   closed        pool -> agent   exit (the static world's end)
// Every byte payload goes as messages of at most mpi_max_message bytes (MPI counts are ints).
#ifndef PROCPOOL_MPI_HPP
#define PROCPOOL_MPI_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/context.hpp>
#include <procpool/detail/engine.hpp>
#include <procpool/detail/job.hpp>
#include <procpool/detail/process_engine.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/log.hpp>
#include <procpool/options.hpp>
#include <procpool/platform/platform.hpp>
#include <procpool/pool.hpp>
#include <procpool/task.hpp>
#include <procpool/worker.hpp>

#if !__has_include(<mpi.h>)
#error "procpool: procpool/mpi.hpp needs MPI (<mpi.h>; Debian: libopenmpi-dev). Link the CMake target procpool::mpi, or build with mpicxx."
#endif
// The C API only: the C++ bindings (deprecated in MPI-2.2, removed in MPI-3) warn under -Wcast-function-type.
/// \cond INTERNAL
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
/// \endcond
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace mpi {

/// A node agent (an MPI rank serving the pool) stopped answering: its machine or process is gone. Each task it
/// was running fails with this; the pool goes on with the other nodes.
class node_lost : public worker_died {
public:
    /// The message, the task, and the agent's rank, host and process id.
    node_lost(const std::string& what, std::string task, int rank, std::string host, long pid)
        : worker_died(what, std::move(task), pid, -1, 0), rank_(rank), host_(std::move(host)) {}
    /// The MPI rank of the lost agent (in MPI_COMM_WORLD, or among the spawned agents).
    [[nodiscard]] int rank() const noexcept { return rank_; }
    /// The host it ran on (MPI_Get_processor_name).
    [[nodiscard]] const std::string& host() const noexcept { return host_; }

private:
    int rank_;
    std::string host_;
};

/// A node agent refused the pool at the handshake: it runs another build of the program (different task registry)
/// or another protocol version.
class node_refused : public start_error {
public:
    /// The message and the refusing agent's rank and host.
    node_refused(const std::string& what, int rank, std::string host)
        : start_error(what), rank_(rank), host_(std::move(host)) {}
    /// The MPI rank of the agent that refused.
    [[nodiscard]] int rank() const noexcept { return rank_; }
    /// The host it runs on.
    [[nodiscard]] const std::string& host() const noexcept { return host_; }

private:
    int rank_;
    std::string host_;
};

/// Options of a pool over MPI ranks: `procpool::mpi::make_pool({.node = {.workers = 8}})`.
struct cluster_options {
    /// The local pool each node agent runs its tasks in: workers per node (0: the node's hardware_concurrency),
    /// start method (spawn or forkserver), initializer and finalizer (once per worker process), timeout,
    /// max_retries, max_tasks_per_worker, max_memory_per_worker... on_worker_lost is not called for remote workers.
    pool_options node{};
    /// 0: static world: the agents are the other ranks of MPI_COMM_WORLD (`mpirun -n N ./app`, serving after
    /// serve_if_worker_rank). N > 0: dynamic: N agents started with MPI_Comm_spawn of this executable.
    std::size_t spawn = 0;
    /// Dynamic mode: the MPI_Info "host" of MPI_Comm_spawn (comma-separated host names), or empty.
    std::string hosts{};
    /// Dynamic mode: the MPI_Info "hostfile" of MPI_Comm_spawn, or empty.
    std::string hostfile{};
    /// An agent silent for this long (agents send a heartbeat every agent_timeout / 8) is lost: its running tasks
    /// fail with node_lost and no more work goes to it.
    std::chrono::milliseconds agent_timeout{10000};
    /// Jobs (tasks or map chunks) sent to one agent and not yet answered; 0: four per worker, at least 8.
    std::size_t window = 0;
};

} // namespace mpi

namespace detail {

enum mpi_tag : int {
    mpi_tag_open = 0x5050,
    mpi_tag_ready,
    mpi_tag_job,
    mpi_tag_job_body,
    mpi_tag_result,
    mpi_tag_result_body,
    mpi_tag_stop,
    mpi_tag_closed,
    mpi_tag_exit,
    mpi_tag_heartbeat
};

/// The largest single message sent (MPI counts are ints): larger payloads go as several. A variable so that tests
/// can exercise the split without sending 2 GiB; the receiver accepts any split.
inline std::size_t mpi_max_message = std::size_t{1} << 30;

/// A payload up to this size travels inside its head message (one message per job or result instead of two).
inline constexpr std::size_t mpi_inline_bytes = 32 * 1024;

/// How a job ended on its node, as the result message says.
enum class mpi_outcome : std::uint8_t { payload = 0, worker_died, task_timeout, task_cancelled, pool_closed, other };

/// How an agent answers a pool's open message, as its ready message says.
enum class mpi_ready : std::uint8_t {
    open = 0,         // serving: its local pool started
    refused = 1,      // another protocol version or task registry
    start_failed = 2, // its local pool did not start (the message says why)
    init_failed = 3   // a worker's initializer threw (initializer_error)
};

/// What the process knows about MPI: set by serve_if_worker_rank.
struct mpi_process {
    bool we_initialized = false;
    bool finalized = false;
    bool static_busy = false; // a static-world pool is open (the agents serve one pool at a time)
    std::vector<int> lost;    // static-world ranks found dead: nothing is sent to them again
    MPI_Comm world = MPI_COMM_NULL; // our duplicate of MPI_COMM_WORLD: our messages never match the application's
    std::mutex m;
};
inline mpi_process& mpi_state() {
    static mpi_process p;
    return p;
}

inline void mpi_check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw error(std::string("procpool: ") + what + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

inline std::string mpi_host() {
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_Get_processor_name(name, &len);
    return std::string(name, static_cast<std::size_t>(len));
}

/// Initializes MPI if nobody did, asking for MPI_THREAD_SERIALIZED: one thread at a time calls MPI (the pool's
/// own thread on rank 0 while a pool is open). \throws error when MPI provides less.
inline void mpi_ensure_init() {
    auto& st = mpi_state();
    int inited = 0;
    MPI_Initialized(&inited);
    int provided = MPI_THREAD_SINGLE;
    if (!inited) {
        mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
        st.we_initialized = true;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_SERIALIZED)
        throw error("procpool: MPI was initialized with a thread level below MPI_THREAD_SERIALIZED; procpool's pool "
                    "calls MPI from its own thread (one at a time). Initialize with MPI_Init_thread(..., "
                    "MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE, ...)");
    if (st.world == MPI_COMM_NULL) {
        mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &st.world), "MPI_Comm_dup");
        MPI_Comm_set_errhandler(st.world, MPI_ERRORS_RETURN);
    }
}

/// Non-blocking sends whose buffers are kept until they complete.
class mpi_sends {
public:
    /// Sends `head` then `body` (split at mpi_max_message) to `dest`; `body` is kept alive until sent. A body up to
    /// mpi_inline_bytes goes at the end of the head instead (mpi_take_body reads it from either place).
    void post(MPI_Comm comm, int dest, int tag, std::vector<std::byte> head, int body_tag,
              std::shared_ptr<const std::vector<std::byte>> body = nullptr) {
        if (body && body->size() <= mpi_inline_bytes) {
            head.insert(head.end(), body->begin(), body->end());
            body.reset();
        }
        auto h = std::make_shared<std::vector<std::byte>>(std::move(head));
        add(comm, dest, tag, h->data(), h->size(), h);
        if (!body) return;
        for (std::size_t off = 0; off < body->size(); off += mpi_max_message)
            add(comm, dest, body_tag, body->data() + off, std::min(mpi_max_message, body->size() - off), body);
    }
    /// Completes what it can; whether something completed.
    bool progress() {
        if (ops_.empty()) return false;
        bool any = false;
        for (std::size_t i = 0; i < ops_.size();) {
            int done = 0;
            MPI_Test(&ops_[i].req, &done, MPI_STATUS_IGNORE);
            if (done) {
                ops_[i] = std::move(ops_.back());
                ops_.pop_back();
                any = true;
            } else {
                ++i;
            }
        }
        return any;
    }
    /// Forgets the sends to `dest` (a lost agent): MPI would never complete them.
    void drop(int dest) {
        for (std::size_t i = 0; i < ops_.size();) {
            if (ops_[i].dest == dest) {
                ops_[i] = std::move(ops_.back());
                ops_.pop_back();
            } else {
                ++i;
            }
        }
    }
    [[nodiscard]] bool empty() const noexcept { return ops_.empty(); }

private:
    struct op {
        MPI_Request req;
        int dest;
        std::shared_ptr<const void> keep;
    };
    void add(MPI_Comm comm, int dest, int tag, const std::byte* p, std::size_t n, std::shared_ptr<const void> keep) {
        op o{MPI_REQUEST_NULL, dest, std::move(keep)};
        mpi_check(MPI_Isend(p, static_cast<int>(n), MPI_BYTE, dest, tag, comm, &o.req), "MPI_Isend");
        ops_.push_back(std::move(o));
    }
    std::vector<op> ops_;
};

/// Receives `n` bytes sent by mpi_sends::post as `tag` messages from `src`, however they were split.
inline void mpi_recv_bytes(MPI_Comm comm, int src, int tag, std::byte* p, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        MPI_Status s;
        mpi_check(MPI_Probe(src, tag, comm, &s), "MPI_Probe");
        int count = 0;
        MPI_Get_count(&s, MPI_BYTE, &count);
        if (count < 0 || static_cast<std::size_t>(count) > n - got)
            throw protocol_error("procpool: an MPI message of " + std::to_string(count) + " bytes overruns its payload", got);
        mpi_check(MPI_Recv(p + got, count, MPI_BYTE, src, tag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
        got += static_cast<std::size_t>(count);
    }
}

/// Reads a body of `n` bytes that mpi_sends::post sent after the head `r` is reading: from the head, or as messages.
inline void mpi_take_body(reader& r, MPI_Comm comm, int src, int tag, std::byte* p, std::size_t n) {
    if (n <= mpi_inline_bytes) r.read_bytes(p, n, "an MPI payload");
    else mpi_recv_bytes(comm, src, tag, p, n);
}

/// Receives one small message (a head) whose arrival `s` announced.
inline std::vector<std::byte> mpi_recv_head(MPI_Comm comm, const MPI_Status& s) {
    int count = 0;
    MPI_Get_count(&s, MPI_BYTE, &count);
    std::vector<std::byte> buf(static_cast<std::size_t>(std::max(count, 0)));
    mpi_check(MPI_Recv(buf.data(), count, MPI_BYTE, s.MPI_SOURCE, s.MPI_TAG, comm, MPI_STATUS_IGNORE), "MPI_Recv");
    return buf;
}

/// Waits between polls when nothing happened: spins first (latency), then yields the core (to the tasks, on a node
/// with as many processes as cores) for about a scheduler tick's worth of polls, then sleeps on `cv`, longer as the
/// quiet lasts, up to `longest`. MPI's own blocking calls would spin at 100 % of a core for as long as they wait.
class mpi_backoff {
public:
    void reset() noexcept { idle_ = 0; }
    template <class Lock, class Pred>
    void pause(std::condition_variable& cv, Lock& lk, Pred wake, std::chrono::microseconds longest) {
        ++idle_;
        if (idle_ < spins) return;
        if (idle_ < yields) {
            lk.unlock();
            std::this_thread::yield();
            lk.lock();
            return;
        }
        auto d = std::min<std::chrono::microseconds>(std::chrono::microseconds(10 * ((idle_ - yields) / 64 + 1)), longest);
        cv.wait_for(lk, d, wake);
    }

private:
    static constexpr std::size_t spins = 64, yields = 16384;
    std::size_t idle_ = 0;
};

inline void write_node_options(writer& w, const pool_options& o) {
    w.write(static_cast<std::uint64_t>(o.workers));
    w.write(static_cast<std::uint8_t>(o.start));
    w.write(static_cast<std::uint64_t>(o.max_tasks_per_worker));
    w.write(o.initializer);
    w.write(o.finalizer);
    w.write(static_cast<std::int64_t>(o.start_timeout.count()));
    w.write(static_cast<std::int64_t>(default_timeout(o).count()));
    w.write(static_cast<std::uint64_t>(o.max_retries));
    w.write(static_cast<std::uint64_t>(o.max_memory_per_worker));
    w.write(static_cast<std::uint8_t>(o.leak_audit));
    w.write(static_cast<std::uint64_t>(o.prefetch));
    w.write(static_cast<std::int64_t>(o.shutdown_timeout.count()));
}

inline pool_options read_node_options(reader& r) {
    pool_options o;
    o.workers = r.read<std::uint64_t>();
    o.start = static_cast<start_method>(r.read<std::uint8_t>());
    o.max_tasks_per_worker = r.read<std::uint64_t>();
    o.initializer = r.read<std::optional<task_call>>();
    o.finalizer = r.read<std::optional<task_call>>();
    o.start_timeout = std::chrono::milliseconds(r.read<std::int64_t>());
    o.timeout = std::chrono::milliseconds(r.read<std::int64_t>());
    o.max_retries = r.read<std::uint64_t>();
    o.max_memory_per_worker = r.read<std::uint64_t>();
    o.leak_audit = static_cast<leak_policy>(r.read<std::uint8_t>());
    o.prefetch = r.read<std::uint64_t>();
    o.shutdown_timeout = std::chrono::milliseconds(r.read<std::int64_t>());
    if (o.start == start_method::in_process || o.start == start_method::fork)
        o.start = start_method::spawn; // an agent is MPI-initialized and threaded: fresh processes only
    return o;
}

/// How a job's failure travels: its kind and fields.
inline void write_failure(writer& w, const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const worker_died& x) {
        w.write(static_cast<std::uint8_t>(mpi_outcome::worker_died));
        w.write(std::string(x.what()));
        w.write(x.task());
        w.write(static_cast<std::int64_t>(x.pid()));
        w.write(static_cast<std::int32_t>(x.exit_code()));
        w.write(static_cast<std::int32_t>(x.signal()));
    } catch (const task_timeout& x) {
        w.write(static_cast<std::uint8_t>(mpi_outcome::task_timeout));
        w.write(std::string(x.what()));
    } catch (const task_cancelled& x) {
        w.write(static_cast<std::uint8_t>(mpi_outcome::task_cancelled));
        w.write(std::string(x.what()));
    } catch (const pool_closed& x) {
        w.write(static_cast<std::uint8_t>(mpi_outcome::pool_closed));
        w.write(std::string(x.what()));
    } catch (const std::exception& x) {
        w.write(static_cast<std::uint8_t>(mpi_outcome::other));
        w.write(std::string(x.what()));
    } catch (...) {
        w.write(static_cast<std::uint8_t>(mpi_outcome::other));
        w.write(std::string("procpool: an exception not derived from std::exception"));
    }
}

inline std::exception_ptr read_failure(reader& r, mpi_outcome kind, const std::string& where) {
    auto what = r.read<std::string>();
    const std::string msg = what + " (" + where + ")";
    switch (kind) {
    case mpi_outcome::worker_died: {
        auto task = r.read<std::string>();
        auto pid = r.read<std::int64_t>();
        auto code = r.read<std::int32_t>();
        auto sig = r.read<std::int32_t>();
        return std::make_exception_ptr(worker_died(msg, std::move(task), static_cast<long>(pid), code, sig));
    }
    case mpi_outcome::task_timeout: return std::make_exception_ptr(task_timeout(msg));
    case mpi_outcome::task_cancelled: return std::make_exception_ptr(task_cancelled(msg));
    case mpi_outcome::pool_closed: return std::make_exception_ptr(pool_closed(msg));
    default: return std::make_exception_ptr(error(msg));
    }
}

// ---- the node agent ---------------------------------------------------------------------------------------

/// A job's state on a node: keeps the result payload as it came, for the pool on rank 0 to decode.
struct mpi_relay_state final : state_base {
    std::vector<std::byte> payload;
    void deliver(reader& r) override {
        payload.resize(r.remaining());
        r.read_bytes(payload.data(), payload.size());
    }
};

/// Serves pools opened by `root` on `comm` until told to exit (or, with `once`, until the first pool closes).
class mpi_agent final : public completion_listener {
public:
    mpi_agent(MPI_Comm comm, int root) : comm_(comm), root_(root), host_(mpi_host()) {}

    /// Returns true when rank 0 said that a rank of the world was lost (see finalize).
    bool run(bool once) {
        std::unique_lock lk(m_);
        mpi_backoff idle;
        for (;;) {
            MPI_Status s;
            int flag = 0;
            lk.unlock();
            mpi_check(MPI_Iprobe(root_, MPI_ANY_TAG, comm_, &flag, &s), "MPI_Iprobe");
            lk.lock();
            if (!flag) {
                idle.pause(cv_, lk, [] { return false; }, std::chrono::milliseconds(5));
                continue;
            }
            idle.reset();
            lk.unlock();
            auto head = mpi_recv_head(comm_, s);
            if (s.MPI_TAG == mpi_tag_exit) return !head.empty() && head[0] != std::byte{0};
            if (s.MPI_TAG == mpi_tag_open) {
                serve_pool(head);
                if (once) return false;
            }
            lk.lock();
        }
    }

    void completed(std::size_t tag) noexcept override {
        std::lock_guard lk(m_);
        done_.push_back(tag);
        cv_.notify_all();
    }

private:
    void reply_ready(mpi_ready status, const std::string& message, std::size_t workers) {
        std::vector<std::byte> b;
        writer w(b);
        w.write(protocol_version);
        w.write(registry::instance().hash());
        w.write(static_cast<std::uint8_t>(status));
        w.write(host_);
        w.write(static_cast<std::int64_t>(platform::current_pid()));
        w.write(static_cast<std::uint64_t>(workers));
        w.write(message);
        mpi_check(MPI_Send(b.data(), static_cast<int>(b.size()), MPI_BYTE, root_, mpi_tag_ready, comm_), "MPI_Send");
    }

    void serve_pool(const std::vector<std::byte>& open) {
        reader r(open);
        const auto protocol = r.read<std::uint32_t>();
        const auto hash = r.read<std::uint64_t>();
        if (protocol != protocol_version || hash != registry::instance().hash()) {
            reply_ready(mpi_ready::refused, "", 0);
            return;
        }
        const auto heartbeat = std::chrono::milliseconds(r.read<std::int64_t>());
        auto opts = read_node_options(r);
        if (opts.workers == 0) opts.workers = std::max(1u, std::thread::hardware_concurrency());
        auto engine = std::make_shared<process_engine>(opts);
        try {
            engine->start();
        } catch (const initializer_error& e) {
            reply_ready(mpi_ready::init_failed, e.what(), 0);
            return;
        } catch (const std::exception& e) {
            reply_ready(mpi_ready::start_failed, e.what(), 0);
            return;
        }
        reply_ready(mpi_ready::open, "", opts.workers);

        // One thread drives the local pool (it blocks on the workers' channels); this one talks MPI.
        signal_state stop;
        bool cancel = false;
        std::atomic<bool> finished{false};
        std::thread driver([&] {
            engine->wait(stop, std::nullopt);
            try {
                engine->shutdown(cancel);
            } catch (...) {
            }
            run_pending_callbacks();
            std::lock_guard lk(m_);
            finished = true;
            cv_.notify_all();
        });

        mpi_sends sends;
        mpi_backoff idle;
        auto last_beat = std::chrono::steady_clock::now();
        bool stopping = false;
        std::unique_lock lk(m_);
        for (;;) {
            bool did = false;
            // Finished jobs: their outcomes to the pool.
            while (!done_.empty()) {
                auto slot = done_.front();
                done_.pop_front();
                auto st = std::move(running_[slot]);
                free_.push_back(slot);
                lk.unlock();
                std::vector<std::byte> head;
                writer w(head);
                w.write(st->id);
                std::shared_ptr<std::vector<std::byte>> body;
                if (st->error) {
                    write_failure(w, st->error);
                } else {
                    w.write(static_cast<std::uint8_t>(mpi_outcome::payload));
                    w.write(static_cast<std::uint64_t>(st->payload.size()));
                    body = std::make_shared<std::vector<std::byte>>(std::move(st->payload));
                }
                sends.post(comm_, root_, mpi_tag_result, std::move(head), mpi_tag_result_body, std::move(body));
                lk.lock();
                did = true;
            }
            if (stopping && finished && done_.empty()) break;
            lk.unlock();
            did |= sends.progress();
            const auto now = std::chrono::steady_clock::now();
            if (now - last_beat >= heartbeat) {
                sends.post(comm_, root_, mpi_tag_heartbeat, {}, 0);
                last_beat = now;
            }
            MPI_Status s;
            int flag = 0;
            mpi_check(MPI_Iprobe(root_, MPI_ANY_TAG, comm_, &flag, &s), "MPI_Iprobe");
            if (flag) {
                did = true;
                auto head = mpi_recv_head(comm_, s);
                if (s.MPI_TAG == mpi_tag_job) {
                    take_job(*engine, head, sends);
                } else if (s.MPI_TAG == mpi_tag_stop) {
                    cancel = reader(head).read<bool>();
                    stopping = true;
                    stop.done.store(true, std::memory_order_release);
                    engine->interrupt();
                }
            }
            lk.lock();
            if (did) idle.reset();
            else idle.pause(cv_, lk, [&] { return !done_.empty() || (stopping && finished); }, std::chrono::microseconds(500));
        }
        lk.unlock();
        driver.join();
        while (!sends.empty()) sends.progress();
        running_.clear();
        free_.clear();
        const std::uint8_t bye = 0;
        mpi_check(MPI_Send(&bye, 1, MPI_BYTE, root_, mpi_tag_closed, comm_), "MPI_Send");
    }

    void take_job(process_engine& engine, const std::vector<std::byte>& head, mpi_sends& sends) {
        reader r(head);
        auto st = std::make_shared<mpi_relay_state>();
        st->id = r.read<std::uint64_t>();
        const auto timeout = r.read<std::int64_t>();
        std::shared_ptr<const context_snapshot> contexts;
        if (r.read<bool>()) contexts = std::make_shared<const context_snapshot>(r.read<context_snapshot>());
        const auto bytes = r.read<std::uint64_t>();
        // A large frame goes into a buffer whose pages the local pool already touched: faulting in 64 MiB of
        // fresh pages costs several times the transfer.
        std::vector<std::byte> frame = engine.take_frame_buffer(bytes);
        frame.resize(bytes);
        mpi_take_body(r, comm_, root_, mpi_tag_job_body, frame.data(), frame.size());
        try {
            if (frame.size() < frame_header_size) throw protocol_error("procpool: a job frame without a header", 0);
            reader fr(std::span<const std::byte>(frame).subspan(frame_header_size));
            st->task = read_job_head(fr).task;
            std::size_t slot;
            {
                std::lock_guard lk(m_);
                slot = detail::take_slot(running_, free_);
                running_[slot] = st;
            }
            st->listen(this, slot);
            engine.submit(job{st, std::move(frame), timeout, std::move(contexts)});
        } catch (...) {
            // Refused here (corrupt frame, closed pool): the job fails alone. A listened state gets there itself.
            if (st->done.load(std::memory_order_acquire)) return;
            bool listened = false;
            {
                std::lock_guard lk(m_);
                for (auto& x : running_) listened |= x == st;
            }
            if (listened) {
                st->fail(std::current_exception());
                return;
            }
            std::vector<std::byte> out;
            writer w(out);
            w.write(st->id);
            write_failure(w, std::current_exception());
            sends.post(comm_, root_, mpi_tag_result, std::move(out), 0);
        }
    }

    MPI_Comm comm_;
    int root_;
    std::string host_;
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::size_t> done_;                               // slots whose state completed
    std::vector<std::shared_ptr<mpi_relay_state>> running_;      // by slot
    std::vector<std::size_t> free_;
};

// ---- the pool's end: rank 0 -------------------------------------------------------------------------------

/// Runs jobs on node agents over MPI: one thread here talks MPI; submit and the waiting threads meet it under m_.
class mpi_engine final : public pool_engine, public std::enable_shared_from_this<mpi_engine> {
public:
    mpi_engine(MPI_Comm comm, std::vector<int> ranks, bool spawned, mpi::cluster_options opts)
        : comm_(comm), spawned_(spawned), opts_(std::move(opts)) {
        for (int r : ranks) agents_.push_back(agent{r});
    }
    ~mpi_engine() override {
        try {
            shutdown(false);
        } catch (...) {
        }
    }

    void start() override {
        registry::instance().verify();
        context_registry::instance().verify();
        std::vector<std::byte> open;
        writer w(open);
        w.write(protocol_version);
        w.write(registry::instance().hash());
        w.write(static_cast<std::int64_t>(std::max<std::int64_t>(1, opts_.agent_timeout.count() / 8)));
        write_node_options(w, opts_.node);
        for (auto& a : agents_)
            mpi_check(MPI_Send(open.data(), static_cast<int>(open.size()), MPI_BYTE, a.rank, mpi_tag_open, comm_),
                      "MPI_Send");
        std::exception_ptr first;
        for (auto& a : agents_) {
            MPI_Status s;
            mpi_check(MPI_Probe(a.rank, mpi_tag_ready, comm_, &s), "MPI_Probe");
            auto buf = mpi_recv_head(comm_, s);
            reader r(buf);
            const auto protocol = r.read<std::uint32_t>();
            const auto hash = r.read<std::uint64_t>();
            const auto status = static_cast<mpi_ready>(r.read<std::uint8_t>());
            a.host = r.read<std::string>();
            a.pid = static_cast<long>(r.read<std::int64_t>());
            a.workers = r.read<std::uint64_t>();
            const auto message = r.read<std::string>();
            a.last_heard = std::chrono::steady_clock::now();
            if (status == mpi_ready::open) {
                a.open = true;
                continue;
            }
            const auto where = "MPI rank " + std::to_string(a.rank) + " (host " + a.host + ", pid " + std::to_string(a.pid) + ")";
            std::exception_ptr e;
            if (status == mpi_ready::refused)
                e = std::make_exception_ptr(mpi::node_refused(
                    "procpool: " + where + " refused the pool: it runs " +
                        (protocol != protocol_version
                             ? "protocol version " + std::to_string(protocol) + ", expected " + std::to_string(protocol_version)
                             : "a different task registry (hash " + std::to_string(hash) + ", expected " +
                                   std::to_string(registry::instance().hash()) + "): it is another build of the program"),
                    a.rank, a.host));
            else if (status == mpi_ready::init_failed)
                e = std::make_exception_ptr(initializer_error("procpool: on " + where + ": " + message, nullptr));
            else
                e = std::make_exception_ptr(start_error("procpool: on " + where + ": " + message));
            if (!first) first = e;
        }
        if (first) {
            for (auto& a : agents_)
                if (a.open) close_agent(a, true);
            std::rethrow_exception(first);
        }
        for (auto& a : agents_) total_workers_ += a.workers;
        thread_ = std::thread([this] { drive(); });
    }

    void submit(job j) override {
        std::lock_guard lk(m_);
        if (closed_) throw pool_closed("procpool: submit on a pool that was shut down");
        if (broken_) std::rethrow_exception(broken_);
        if (!j.shared().empty()) // copies_shared(): the pool wrote their contents; a handle would mean nothing there
            throw std::logic_error("procpool: a shared buffer reached an MPI pool as a handle to this machine's memory");
        j.state->owner = weak_from_this();
        take_lent(j);
        queue_.push_back(std::move(j));
        driver_cv_.notify_one();
    }

    bool wait(state_base& s, std::optional<std::chrono::steady_clock::time_point> deadline) override {
        // A short task's answer comes within a few scheduler slices: yielding until then saves the wake-up of a
        // thread blocked on the condition (tens of microseconds on a loaded node).
        for (int i = 0; i < 256 && !s.done.load(std::memory_order_acquire); ++i) std::this_thread::yield();
        std::unique_lock lk(m_);
        auto done = [&] { return s.done.load(std::memory_order_acquire); };
        if (deadline) return cv_.wait_until(lk, *deadline, done);
        cv_.wait(lk, done);
        return true;
    }
    std::size_t wait_any(std::span<state_base* const> states) override {
        std::unique_lock lk(m_);
        std::size_t found = 0;
        cv_.wait(lk, [&] {
            for (std::size_t i = 0; i < states.size(); ++i)
                if (states[i]->done.load(std::memory_order_acquire)) return found = i, true;
            return false;
        });
        return found;
    }
    bool cancel(state_base& s) override {
        std::unique_lock lk(m_);
        if (!cancel_queued(queue_, s)) return false;
        cv_.notify_all();
        return true;
    }
    void interrupt() override {
        std::lock_guard lk(m_);
        cv_.notify_all();
    }

    void shutdown(bool cancel_pending) override {
        std::unique_lock lk(m_);
        closed_ = true;
        if (cancel_pending) {
            cancel_all_queued(queue_);
            cv_.notify_all();
        }
        stopping_ = true;
        cancel_ = cancel_pending;
        driver_cv_.notify_all();
        cv_.wait(lk, [&] { return stopped_ || !thread_.joinable(); });
        lk.unlock();
        if (thread_.joinable()) thread_.join();
        run_pending_callbacks();
        lk.lock();
        auto closed = std::make_exception_ptr(pool_closed("procpool: the pool was shut down"));
        for (auto& j : queue_) j.state->fail(closed);
        queue_.clear();
        cv_.notify_all();
        if (spawned_ && comm_ != MPI_COMM_NULL) {
            bool lost = false;
            for (auto& a : agents_) lost |= a.lost;
            // Disconnecting waits for every agent; a lost one would never answer.
            if (lost) MPI_Comm_free(&comm_);
            else MPI_Comm_disconnect(&comm_);
            comm_ = MPI_COMM_NULL;
        }
        if (!spawned_ && !released_) {
            released_ = true;
            std::lock_guard g(mpi_state().m);
            mpi_state().static_busy = false;
        }
    }

    /// The last large frame once MPI is done with it (its pages are touched: no page faults to fill it again).
    [[nodiscard]] std::vector<std::byte> take_frame_buffer(std::size_t bytes) override {
        std::lock_guard lk(m_);
        if (!spare_ || spare_.use_count() != 1 || spare_->capacity() < bytes) return {};
        std::vector<std::byte> b = std::move(const_cast<std::vector<std::byte>&>(*spare_));
        spare_.reset();
        b.clear();
        return b;
    }

    [[nodiscard]] std::size_t size() const noexcept override { return total_workers_; }
    [[nodiscard]] bool copies_shared() const noexcept override { return true; } // the memory is on this machine
    /// The process ids of the node agents that are not lost.
    [[nodiscard]] std::vector<long> pids() const override {
        std::lock_guard lk(m_);
        std::vector<long> out;
        for (auto& a : agents_)
            if (!a.lost) out.push_back(a.pid);
        return out;
    }

    bool static_claimed = false;

private:
    struct agent {
        int rank = 0;
        std::string host{};
        long pid = 0;
        std::size_t workers = 1;
        bool open = false;
        bool lost = false;
        std::unordered_map<std::uint64_t, job> running{}; // sent, not answered; by job id
        std::chrono::steady_clock::time_point last_heard{};
    };

    [[nodiscard]] std::string where(const agent& a) const {
        return "on MPI rank " + std::to_string(a.rank) + ", host " + a.host;
    }

    std::size_t window(const agent& a) const {
        return opts_.window ? opts_.window : std::max<std::size_t>(8, 4 * a.workers);
    }

    /// Tells an agent to close its local pool and waits for it (start's failure path: no driver thread yet).
    void close_agent(agent& a, bool cancel) {
        const std::uint8_t c = cancel ? 1 : 0;
        MPI_Send(&c, 1, MPI_BYTE, a.rank, mpi_tag_stop, comm_);
        for (;;) {
            MPI_Status s;
            MPI_Probe(a.rank, MPI_ANY_TAG, comm_, &s);
            auto buf = mpi_recv_head(comm_, s);
            if (s.MPI_TAG == mpi_tag_closed) break;
        }
        a.open = false;
    }

    /// Fails the jobs of an agent that stopped answering, and stops sending to it.
    void lose(agent& a, mpi_sends& sends) {
        a.lost = true;
        sends.drop(a.rank);
        for (auto& [id, j] : a.running) {
            j.state->fail(std::make_exception_ptr(mpi::node_lost(
                "procpool: the node agent on MPI rank " + std::to_string(a.rank) + " (host " + a.host + ", pid " +
                    std::to_string(a.pid) + ") stopped answering for " + std::to_string(opts_.agent_timeout.count()) +
                    " ms while running task \"" + j.state->task + "\": its process or machine is gone",
                j.state->task, a.rank, a.host, a.pid)));
        }
        a.running.clear();
        if (!spawned_) {
            std::lock_guard g(mpi_state().m);
            mpi_state().lost.push_back(a.rank);
        }
        log(log_level::info, [&] { return "node agent on MPI rank " + std::to_string(a.rank) + " lost"; });
        if (std::all_of(agents_.begin(), agents_.end(), [](const agent& x) { return x.lost; })) {
            broken_ = std::make_exception_ptr(mpi::node_lost("procpool: every node agent of the pool was lost", "",
                                                             a.rank, a.host, a.pid));
            for (auto& j : queue_) j.state->fail(broken_);
            queue_.clear();
        }
        cv_.notify_all();
    }

    /// The MPI thread: sends queued jobs to agents with room, receives outcomes, watches heartbeats.
    void drive() {
        mpi_sends sends;
        mpi_backoff idle;
        std::unique_lock lk(m_);
        for (;;) {
            bool did = false;
            // Dispatch: each job to the open agent with the most room.
            while (!queue_.empty()) {
                agent* best = nullptr;
                for (auto& a : agents_) {
                    if (a.lost || !a.open || a.running.size() >= window(a)) continue;
                    if (!best || a.running.size() * best->workers < best->running.size() * a.workers) best = &a;
                }
                if (!best) break;
                job j = std::move(queue_.front());
                queue_.pop_front();
                auto body = std::make_shared<const std::vector<std::byte>>(std::move(j.frame));
                j.frame = {};
                std::vector<std::byte> head;
                writer w(head);
                w.write(j.state->id);
                w.write(j.timeout_ms);
                w.write(static_cast<bool>(j.contexts));
                if (j.contexts) w.write(*j.contexts);
                w.write(static_cast<std::uint64_t>(body->size()));
                const int dest = best->rank;
                if (body->size() >= large_buffer_bytes) spare_ = body; // its pages, for the next large frame
                best->running.emplace(j.state->id, std::move(j));
                lk.unlock();
                sends.post(comm_, dest, mpi_tag_job, std::move(head), mpi_tag_job_body, std::move(body));
                lk.lock();
                did = true;
            }
            const bool busy = std::any_of(agents_.begin(), agents_.end(), [](const agent& a) { return !a.running.empty(); });
            if (stopping_ && queue_.empty() && !busy) break;
            lk.unlock();
            did |= sends.progress();
            MPI_Status s;
            int flag = 0;
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &s);
            if (flag) {
                did = true;
                receive(s);
            }
            lk.lock();
            check_heartbeats(sends);
            if (did) {
                idle.reset();
                continue;
            }
            idle.pause(driver_cv_, lk, [&] { return !queue_.empty() && has_room(); }, std::chrono::microseconds(1000));
        }
        // Everything answered: close the agents' pools (their finalizers run), then say so.
        const std::uint8_t c = cancel_ ? 1 : 0;
        for (auto& a : agents_)
            if (!a.lost && a.open) sends.post(comm_, a.rank, mpi_tag_stop, {std::byte{c}}, 0);
        for (;;) {
            bool open = false;
            for (auto& a : agents_) open |= a.open && !a.lost;
            if (!open) break;
            lk.unlock();
            sends.progress();
            MPI_Status s;
            int flag = 0;
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &s);
            if (flag) receive(s);
            lk.lock();
            check_heartbeats(sends);
            if (!flag) idle.pause(driver_cv_, lk, [] { return false; }, std::chrono::microseconds(1000));
        }
        lk.unlock();
        while (!sends.empty()) sends.progress();
        lk.lock();
        stopped_ = true;
        cv_.notify_all();
    }

    bool has_room() const {
        return std::any_of(agents_.begin(), agents_.end(),
                           [&](const agent& a) { return !a.lost && a.open && a.running.size() < window(a); });
    }

    agent* find_agent(int rank) {
        for (auto& a : agents_)
            if (a.rank == rank) return &a;
        return nullptr;
    }

    /// One message whose arrival `s` announced (called without m_).
    void receive(const MPI_Status& s) {
        auto head = mpi_recv_head(comm_, s);
        std::unique_lock lk(m_);
        agent* a = find_agent(s.MPI_SOURCE);
        if (!a) return;
        a->last_heard = std::chrono::steady_clock::now();
        if (s.MPI_TAG == mpi_tag_closed) {
            a->open = false;
            return;
        }
        if (s.MPI_TAG != mpi_tag_result) return; // a heartbeat
        reader r(head);
        const auto id = r.read<std::uint64_t>();
        const auto kind = static_cast<mpi_outcome>(r.read<std::uint8_t>());
        std::vector<std::byte> payload;
        if (kind == mpi_outcome::payload) {
            payload.resize(r.read<std::uint64_t>());
            lk.unlock();
            mpi_take_body(r, comm_, s.MPI_SOURCE, mpi_tag_result_body, payload.data(), payload.size());
            lk.lock();
        }
        auto it = a->running.find(id);
        if (it == a->running.end()) return; // already failed (lost, then heard again)
        auto st = std::move(it->second.state);
        a->running.erase(it);
        if (kind == mpi_outcome::payload) st->deliver_payload(payload);
        else st->fail(read_failure(r, kind, where(*a)));
        cv_.notify_all();
        driver_cv_.notify_all();
        lk.unlock();
        run_pending_callbacks(); // done-callbacks run on this thread, without the lock
        lk.lock();
    }

    void check_heartbeats(mpi_sends& sends) {
        const auto now = std::chrono::steady_clock::now();
        for (auto& a : agents_)
            if (!a.lost && a.open && now - a.last_heard > opts_.agent_timeout) lose(a, sends);
    }

    MPI_Comm comm_;
    bool spawned_;
    mpi::cluster_options opts_;
    mutable std::mutex m_;
    std::condition_variable cv_;        // waiters: a state completed
    std::condition_variable driver_cv_; // the MPI thread: a job was queued, or shutdown
    std::deque<job> queue_;
    std::vector<agent> agents_;
    std::size_t total_workers_ = 0;
    std::thread thread_;
    bool closed_ = false, stopping_ = false, stopped_ = false, cancel_ = false, released_ = false;
    std::exception_ptr broken_;
    std::shared_ptr<const std::vector<std::byte>> spare_; // see take_frame_buffer
};

} // namespace detail

namespace mpi {

/// Tells the serving ranks of the static world to exit, and finalizes MPI if serve_if_worker_rank initialized it.
/// Runs at exit on its own; call it yourself before your own MPI_Finalize when your program initialized MPI. Every
/// pool over MPI must be gone (shut down) by then. Idempotent.
inline void finalize() {
    auto& st = detail::mpi_state();
    std::lock_guard lk(st.m);
    if (st.finalized || st.world == MPI_COMM_NULL) return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin) return;
    st.finalized = true;
    int rank = 0, size = 1;
    MPI_Comm_rank(st.world, &rank);
    MPI_Comm_size(st.world, &size);
    // A rank found dead never joins MPI_Finalize's closing fence, which Open MPI runs over every process of the job:
    // with one lost, the survivors would wait there for ever. They end without it (mpirun --enable-recovery, the
    // only way a job outlives a rank, accepts that), and rank 0 tells the agents so.
    const bool lost = !st.lost.empty();
    if (rank == 0) {
        const std::uint8_t b = lost ? 1 : 0;
        for (int r = 1; r < size; ++r)
            if (std::find(st.lost.begin(), st.lost.end(), r) == st.lost.end())
                MPI_Send(&b, 1, MPI_BYTE, r, detail::mpi_tag_exit, st.world);
    }
    MPI_Comm_free(&st.world);
    st.world = MPI_COMM_NULL;
    if (st.we_initialized && !lost) MPI_Finalize();
}

/// Call first in main(). Serves as a local worker process (serve_if_worker), or as a node agent: on every rank of
/// MPI_COMM_WORLD but 0 (`mpirun -n N ./app`) it serves the pools rank 0 opens until rank 0 ends; in a process
/// started by a dynamic pool's MPI_Comm_spawn it serves that pool. Agents then finalize MPI and exit(0). On rank 0
/// (or a program started on its own) it initializes MPI when nobody did (MPI_THREAD_SERIALIZED) and returns.
/// \code
/// int main(int argc, char** argv) {
///     procpool::mpi::serve_if_worker_rank(argc, argv);
///     auto pool = procpool::mpi::make_pool();
///     ...
/// }
/// \endcode
inline void serve_if_worker_rank(int argc, char** argv) {
    serve_if_worker(argc, argv); // a local worker of a node agent re-runs main(): it never touches MPI
    detail::mpi_ensure_init();
    auto& st = detail::mpi_state();
    MPI_Comm parent = MPI_COMM_NULL;
    MPI_Comm_get_parent(&parent);
    int rank = 0;
    MPI_Comm_rank(st.world, &rank);
    if (parent == MPI_COMM_NULL && rank == 0) {
        static const bool registered = [] { return std::atexit([] { finalize(); }) == 0; }();
        (void)registered;
        return;
    }
    bool lost = false; // a rank of the static world died: MPI_Finalize's fence would wait for it (see finalize)
    try {
        if (parent != MPI_COMM_NULL) {
            MPI_Comm_set_errhandler(parent, MPI_ERRORS_RETURN);
            detail::mpi_agent(parent, 0).run(true);
            MPI_Comm_disconnect(&parent);
        } else {
            lost = detail::mpi_agent(st.world, 0).run(false);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "procpool: node agent on MPI rank %d: %s\n", rank, e.what());
        std::fflush(stderr);
        std::_Exit(1);
    }
    MPI_Comm_free(&st.world);
    st.world = MPI_COMM_NULL;
    st.finalized = true;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin && !lost) MPI_Finalize(); // an agent ends here: nobody else would finalize (whoever initialized MPI)
    std::exit(0);
}

/// Number of ranks serving in the static world: MPI_COMM_WORLD's size minus one (0 in a program started on its own).
[[nodiscard]] inline std::size_t serving_ranks() {
    detail::mpi_ensure_init();
    int size = 1;
    MPI_Comm_size(detail::mpi_state().world, &size);
    return static_cast<std::size_t>(size - 1);
}

/// A pool whose workers are node agents: the serving ranks of the static world, or `opts.spawn` agents started with
/// MPI_Comm_spawn. Each agent runs the tasks in a local pool (`opts.node`). Used exactly like procpool::pool.
/// \throws start_error when there is no agent (a static world of one rank), or the static world's agents serve
/// another pool; node_refused when an agent runs another build; initializer_error when a node's initializer threw.
[[nodiscard]] inline pool make_pool(cluster_options opts = {}) {
    detail::mpi_ensure_init();
    auto& st = detail::mpi_state();
    std::vector<int> ranks;
    std::shared_ptr<detail::mpi_engine> engine;
    if (opts.spawn > 0) {
        MPI_Info info;
        MPI_Info_create(&info);
        if (!opts.hosts.empty()) MPI_Info_set(info, "host", opts.hosts.c_str());
        if (!opts.hostfile.empty()) MPI_Info_set(info, "hostfile", opts.hostfile.c_str());
        // The real file: "/proc/self/exe" would name the MPI launcher's daemon in the process that runs it.
        std::error_code ec;
        std::string exe = std::filesystem::canonical(platform::executable_path(), ec).string();
        if (ec) exe = platform::executable_path();
        char flag[] = "--procpool-mpi-agent";
        char* args[] = {flag, nullptr};
        MPI_Comm inter = MPI_COMM_NULL;
        std::vector<int> codes(opts.spawn, MPI_SUCCESS);
        MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
        const int rc = MPI_Comm_spawn(exe.c_str(), args, static_cast<int>(opts.spawn), info, 0, MPI_COMM_SELF, &inter,
                                      codes.data());
        MPI_Info_free(&info);
        if (rc != MPI_SUCCESS || std::any_of(codes.begin(), codes.end(), [](int c) { return c != MPI_SUCCESS; }))
            throw start_error("procpool: MPI_Comm_spawn of " + std::to_string(opts.spawn) + " node agents (" + exe +
                              ") failed");
        MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
        for (int r = 0; r < static_cast<int>(opts.spawn); ++r) ranks.push_back(r);
        engine = std::make_shared<detail::mpi_engine>(inter, std::move(ranks), true, std::move(opts));
    } else {
        int rank = 0, size = 1;
        MPI_Comm_rank(st.world, &rank);
        MPI_Comm_size(st.world, &size);
        if (rank != 0)
            throw start_error("procpool: a pool over MPI is made on rank 0; call procpool::mpi::serve_if_worker_rank "
                              "first in main(), so that the other ranks serve it");
        if (size < 2)
            throw start_error("procpool: no MPI rank serves this pool: run it with `mpirun -n N` (N >= 2: rank 0 "
                              "owns the pool, the others serve), or set cluster_options::spawn");
        {
            std::lock_guard lk(st.m);
            if (st.static_busy)
                throw start_error("procpool: the serving ranks already serve another pool: shut it down first (the "
                                  "static world's agents serve one pool at a time)");
            for (int r = 1; r < size; ++r)
                if (std::find(st.lost.begin(), st.lost.end(), r) == st.lost.end()) ranks.push_back(r);
            if (ranks.empty()) throw start_error("procpool: every serving MPI rank was lost");
            st.static_busy = true;
        }
        engine = std::make_shared<detail::mpi_engine>(st.world, std::move(ranks), false, std::move(opts));
    }
    const start_method method = start_method::spawn;
    try {
        return pool(detail::engine_tag{}, engine, method);
    } catch (...) {
        engine->shutdown(true);
        throw;
    }
}

} // namespace mpi

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_MPI_HPP
