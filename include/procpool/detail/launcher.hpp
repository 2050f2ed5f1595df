// SPDX-License-Identifier: BSL-1.0
// procpool/detail/launcher.hpp: how a pool starts its workers: spawned (posix_spawn / CreateProcess of the running
// executable), forked by a fork template (a copy of the application taken when the pool was constructed), or forked
// by a forkserver (a spawned, single-threaded server). The launcher starts processes and reports what happened as
// events (a worker started, a worker exited, a start failed, the template is gone); what they mean for the pool
// (replacements, retries, a broken pool) is the engine's decision. A new way to start a worker (a per-task fork of a
// warm template, an MPI rank) is another launcher with the same members.
#ifndef PROCPOOL_DETAIL_LAUNCHER_HPP
#define PROCPOOL_DETAIL_LAUNCHER_HPP

#include <procpool/config.hpp>
#include <procpool/detail/handles.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/detail/worker_loop.hpp>
#include <procpool/error.hpp>
#include <procpool/log.hpp>
#include <procpool/options.hpp>
#include <procpool/platform/platform.hpp>

#include <cerrno>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// A worker process that has just been started: the engine makes a worker_link of it.
struct started_worker {
    platform::pid_type pid = 0;
    platform::native_handle channel = platform::invalid_handle;
    platform::native_handle lifeline = platform::invalid_handle; // spawned workers: close only once reaped
    platform::native_handle proc = platform::invalid_handle;     // readable when it exits, where available
    bool from_template = false;
};

/// What the fork template or forkserver reported.
struct launch_event {
    enum class kind { started, start_failed, template_gone } what;
    started_worker worker{};         // started
    int error = 0;                   // start_failed: an errno
    std::string message;             // start_failed, template_gone
};

/// "Resource temporarily unavailable (errno 11)".
inline std::string errno_text(int err) {
    return std::system_category().message(err) + " (errno " + std::to_string(err) + ")";
}

class launcher {
public:
    explicit launcher(const pool_options& opts) : opts_(opts) {}
    launcher(const launcher&) = delete;
    launcher& operator=(const launcher&) = delete;

    /// fork and forkserver: workers are forked by a template process.
    [[nodiscard]] bool forks() const noexcept {
        return opts_.start == start_method::fork || opts_.start == start_method::forkserver;
    }
    [[nodiscard]] std::string template_name() const {
        return opts_.start == start_method::forkserver ? "forkserver" : "fork template";
    }

    /// Starts the template process where the start method has one. \throws start_error, std::system_error.
    void start() {
        if (!forks()) return;
#if PROCPOOL_WINDOWS
        throw start_error(std::string("procpool: start_method::") +
                          (opts_.start == start_method::fork ? "fork" : "forkserver") +
                          " is not available on Windows, which has no fork(); use start_method::spawn (the "
                          "default), as Python does there.");
#else
        if (opts_.start == start_method::forkserver) start_forkserver();
        else start_fork_template();
#endif
    }

    /// Starts one worker. A spawned one is returned at once; a forked one is asked of the template, and arrives
    /// as a `started` event (pending() counts those). \throws std::system_error when the system refuses (spawn),
    /// start_error when the template is gone.
    std::optional<started_worker> launch() {
        if (forks()) {
            char cmd = 'w';
            if (!platform::write_all(template_fd_, &cmd, 1))
                throw start_error("procpool: the " + template_name() + " process is gone; cannot start a worker");
            ++pending_;
            return std::nullopt;
        }
        started_worker w;
        w.pid = spawn_with_channel(worker_flag, w.channel, w.lifeline);
        // Opened before anything reaps it, so the pid is its own (the pool reaps its spawned workers itself).
        w.proc = platform::open_process_handle(w.pid);
        return w;
    }

    /// Workers asked of the template and not reported yet.
    [[nodiscard]] int pending() const noexcept { return template_fd_ != platform::invalid_handle ? pending_ : 0; }
    /// What to poll for the template's reports (invalid_handle: none).
    [[nodiscard]] platform::native_handle events_handle() const noexcept { return template_fd_; }
    /// Reports read while waiting for an exit status, not yet taken by read(): do not block before read().
    [[nodiscard]] bool has_queued() const noexcept { return !queued_.empty(); }

    /// Appends to `out` what the template has reported (without blocking).
    void read(std::vector<launch_event>& out) {
        while (!queued_.empty()) {
            out.push_back(std::move(queued_.front()));
            queued_.pop_front();
        }
#if PROCPOOL_POSIX
        while (template_fd_ != platform::invalid_handle) {
            std::vector<platform::poll_item> it{{template_fd_, false}};
            platform::wait_any(it, 0);
            if (!it[0].readable && !it[0].hangup) return;
            read_one(out);
        }
#endif
    }

    /// The exit status of worker `pid`, which has closed its channel or exited: a spawned worker is reaped (killed
    /// after 2 s); a forked one is the template's child, which reports it (killed after 2 s; not waited for more
    /// than 5 s after that: the status is then unknown, never a hang).
    platform::exit_status collect(platform::pid_type pid, bool from_template) {
        if (!from_template) return platform::reap_or_kill(pid, 2000);
#if PROCPOOL_POSIX // (only POSIX has a template)
        auto deadline = platform::now_ms() + 2000;
        bool killed = false;
        while (template_fd_ != platform::invalid_handle) {
            if (auto it = exits_.find(pid); it != exits_.end()) {
                auto st = it->second;
                exits_.erase(it);
                return st;
            }
            if (killed && platform::now_ms() > deadline + 5000) {
                log(log_level::info, [&] {
                    return "the " + template_name() + " did not report how worker pid " + std::to_string(pid) + " ended";
                });
                break;
            }
            if (!killed && platform::now_ms() > deadline) {
                platform::kill_process(pid);
                killed = true;
            }
            std::vector<platform::poll_item> it{{template_fd_, false}};
            platform::wait_any(it, 100);
            if (it[0].readable || it[0].hangup) {
                std::vector<launch_event> events;
                read_one(events);
                for (auto& e : events) queued_.push_back(std::move(e)); // for the engine's next read()
            }
        }
#endif
        return platform::exit_status{};
    }

    /// Ends the template (its workers die with it) and closes what the launcher holds, the descriptors of workers
    /// reported but not yet taken by read() among them.
    void close() noexcept {
        for (auto& e : queued_)
            if (e.what == launch_event::kind::started) {
                platform::close_handle(e.worker.channel);
                if (e.worker.proc != platform::invalid_handle) platform::close_handle(e.worker.proc);
            }
        queued_.clear();
        if (template_fd_ != platform::invalid_handle) {
            release_handle(template_fd_);
            platform::close_handle(template_fd_);
            template_fd_ = platform::invalid_handle;
        }
        if (template_pid_ > 0) {
            platform::reap_or_kill(template_pid_, 2000);
            template_pid_ = 0;
        }
        platform::drop_lifeline(template_lifeline_);
    }

private:
#if PROCPOOL_POSIX
    /// A fork of this process, taken now: every worker is forked from it, so they never inherit a lock held by a
    /// thread started after the pool, and a replacement sees what the first workers saw.
    void start_fork_template() {
        int threads = platform::thread_count();
        if (threads > 1) {
            std::string msg = "procpool: start_method::fork refused: this process has " + std::to_string(threads) +
                              " threads. fork() copies only the calling thread, so a lock another thread holds "
                              "(in malloc, a logger, any mutex) stays locked forever in the workers and can "
                              "deadlock them. Construct the pool before starting threads, or use "
                              "start_method::spawn or start_method::forkserver; pool_options::on_threads = "
                              "threaded_fork::warn forks anyway.";
            if (opts_.on_threads == threaded_fork::refuse) throw start_error(msg);
            log(log_level::info, [&] { return "warning: " + msg; });
        }
        platform::native_handle mine = platform::invalid_handle, theirs = platform::invalid_handle;
        platform::make_channel(mine, theirs);
        own_handle(mine);
        template_fd_ = mine; // closed by close() if what follows throws
        auto life = platform::make_lifeline();
        template_lifeline_ = life.parent_end;
        auto parent = platform::current_pid();
        platform::pid_type pid = 0;
        try {
            pid = platform::fork_process();
        } catch (...) {
            platform::close_handle(theirs);
            platform::close_handle(life.child_end);
            throw;
        }
        if (pid == 0) {
            platform::close_handle(mine);
            run_fork_template(theirs, parent, false, life.child_end); // the fork handler closed the parent's ends
        }
        platform::close_handle(theirs);
        platform::close_handle(life.child_end);
        template_pid_ = pid;
        log(log_level::debug, [&] { return "fork template started, pid " + std::to_string(pid); });
    }

    /// Spawns the forkserver and waits for it to say it is serving (or that main() has no serve_if_worker).
    void start_forkserver() {
        platform::native_handle mine = platform::invalid_handle;
        template_pid_ = spawn_with_channel(forkserver_flag, mine, template_lifeline_);
        own_handle(mine);
        template_fd_ = mine;
        std::string why;
        std::vector<platform::poll_item> it{{mine, false}};
        platform::wait_any(it, static_cast<int>(opts_.start_timeout.count()));
        if (!it[0].readable && !it[0].hangup) {
            why = "did not start within " + std::to_string(opts_.start_timeout.count()) +
                  " ms (it runs static initialization and main() up to serve_if_worker; is main() blocked before it?)";
        } else {
            worker_channel chan(mine);
            frame_type type{};
            std::span<const std::byte> payload;
            try {
                if (!chan.receive(type, payload)) why = "ended before it was ready";
                else if (type == frame_type::guard_missing) why = decode<std::string>(payload);
                else if (type != frame_type::ready) why = std::string("sent an unexpected ") + frame_type_name(type) + " frame";
            } catch (const std::exception& e) {
                why = std::string("sent a corrupt frame: ") + e.what();
            }
        }
        if (why.empty()) {
            log(log_level::debug, [&] { return "forkserver started, pid " + std::to_string(template_pid_); });
            return;
        }
        release_handle(template_fd_);
        platform::close_handle(template_fd_);
        template_fd_ = platform::invalid_handle;
        auto st = platform::reap_or_kill(template_pid_, 1000);
        template_pid_ = 0;
        if (why.rfind("procpool: ", 0) == 0) throw start_error(why); // the guard message speaks for itself
        throw start_error("procpool: the forkserver process " + why + " (it " + platform::describe_exit(st) +
                          "). A spawned forkserver must reach procpool::serve_if_worker(argc, argv), the first "
                          "line of main().");
    }

    /// Reads one record of the template (it is readable).
    void read_one(std::vector<launch_event>& out) {
        template_record rec{};
        platform::native_handle fds[2];
        int dropped = 0;
        if (!platform::recv_handles(template_fd_, fds, 2, &rec, sizeof rec, &dropped)) {
            release_handle(template_fd_);
            platform::close_handle(template_fd_);
            template_fd_ = platform::invalid_handle;
            if (template_pid_ > 0) {
                auto st = platform::reap_or_kill(template_pid_, 1000);
                template_pid_ = 0;
                out.push_back({launch_event::kind::template_gone, {}, 0,
                               "procpool: the " + template_name() + " process " + platform::describe_exit(st) +
                                   "; no more workers can be started"});
            }
            return;
        }
        if (rec.kind == template_event::exited) {
            for (auto fd : fds)
                if (fd >= 0) platform::close_handle(fd);
            exits_[rec.pid] = platform::exit_status{rec.code, rec.signal};
            return;
        }
        --pending_;
        if (rec.kind == template_event::started && fds[0] >= 0) {
            out.push_back({launch_event::kind::started, {rec.pid, fds[0], platform::invalid_handle, fds[1], true}, 0, {}});
            return;
        }
        for (auto fd : fds)
            if (fd >= 0) platform::close_handle(fd);
        // The worker it forked has no channel here (its end was dropped): it reads end of stream and exits.
        const bool received = rec.kind == template_event::started;
        const int err = received ? (dropped ? dropped : EMFILE) : rec.code;
        out.push_back({launch_event::kind::start_failed, {}, err,
                       "procpool: the " + template_name() + " could not start a worker: " + errno_text(err) +
                           (received ? " (receiving its channel)" : "")});
    }
#endif

    /// Spawns the executable as `flag` (a worker or the forkserver); `mine` is our end of its channel, `lifeline`
    /// our end of its lifeline (platform::make_lifeline), to close once it has been reaped.
    static platform::pid_type spawn_with_channel(const char* flag, platform::native_handle& mine,
                                                 platform::native_handle& lifeline) {
        platform::native_handle theirs = platform::invalid_handle;
        platform::make_channel(mine, theirs);
        platform::lifeline_pair life;
        platform::pid_type pid = 0;
        try {
            life = platform::make_lifeline();
            pid = platform::spawn_self(
                {flag, std::to_string(platform::current_pid()), platform::child_lifeline_token(life.child_end)},
                {std::string(worker_env) + "=" + platform::child_channel_token(theirs)}, theirs, life.child_end);
        } catch (...) {
            platform::close_handle(mine);
            platform::close_handle(theirs);
            if (life.child_end != platform::invalid_handle) platform::close_handle(life.child_end);
            platform::drop_lifeline(life.parent_end);
            throw;
        }
        platform::close_handle(theirs);
        if (life.child_end != platform::invalid_handle) platform::close_handle(life.child_end);
        lifeline = life.parent_end;
        return pid;
    }

    const pool_options& opts_;
    platform::pid_type template_pid_ = 0;
    platform::native_handle template_fd_ = platform::invalid_handle;
    platform::native_handle template_lifeline_ = platform::invalid_handle;
    int pending_ = 0;
    std::map<platform::pid_type, platform::exit_status> exits_; // reported by the template, not collected yet
    std::deque<launch_event> queued_;                           // read by collect(), for read()
};

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_LAUNCHER_HPP
