// SPDX-License-Identifier: BSL-1.0
// tests/windows_test.cpp (Windows only; run under wine in CI): what the Windows backend promises beyond the
// portable suite. Workers inherit their channel and nothing else, live in a job object that kills them with
// their parent, report crashes by their NTSTATUS name, and fork is refused with a clear error.
#include "catch.hpp"

#include <procpool/procpool.hpp>

#if PROCPOOL_WINDOWS

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

namespace win_t {

int access_violation(int v) {
    volatile int* volatile p = nullptr; // the compiler cannot see that it is null
    *p = v;
    return v;
}

int deep(int n, volatile char* sink) {
    volatile char frame[4096];
    frame[0] = static_cast<char>(n);
    *sink = frame[0];
    return n < 0 ? 0 : deep(n + 1, frame) + frame[1];
}
int stack_overflow(int n) {
    volatile char sink = 0;
    return deep(n, &sink);
}

/// Whether `handle` (a value from the parent) names an open handle in this worker.
bool has_handle(std::uint64_t handle) {
    DWORD flags = 0;
    return ::GetHandleInformation(reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(handle)), &flags) != 0;
}

int pid_of_worker(int) { return static_cast<int>(::GetCurrentProcessId()); }

/// In a grandchild of the test: says it started, then blocks without ever reading its channel again.
int block_forever(int parent) {
    std::wstring name = L"procpool-test-started-" + std::to_wstring(parent);
    if (HANDLE s = ::OpenSemaphoreW(SEMAPHORE_MODIFY_STATE, FALSE, name.c_str())) {
        ::ReleaseSemaphore(s, 1, nullptr);
        ::CloseHandle(s);
    }
    ::Sleep(INFINITE);
    return 0;
}

} // namespace win_t
PROCPOOL_TASK(win_t::block_forever); // before the task below submits it
namespace win_t {

/// In a worker: starts a pool of one worker (a grandchild of the test), keeps it, has it block in a task, and
/// returns its pid once the task runs. Only the job object can end that grandchild when this worker dies: it
/// never reads its channel again, so it never sees the channel close.
int start_blocked_grandchild(int) {
    auto self = static_cast<int>(::GetCurrentProcessId());
    std::wstring name = L"procpool-test-started-" + std::to_wstring(self);
    HANDLE started = ::CreateSemaphoreW(nullptr, 0, 1, name.c_str());
    static auto* nested = new procpool::pool({.workers = 1});
    static auto* running = new procpool::future<int>(nested->submit<block_forever>(self));
    (void)running;
    bool ran = ::WaitForSingleObject(started, 60000) == WAIT_OBJECT_0;
    ::CloseHandle(started);
    return ran ? static_cast<int>(nested->worker_pids().front()) : -1;
}

} // namespace win_t

PROCPOOL_TASK(win_t::access_violation);
PROCPOOL_TASK(win_t::stack_overflow);
PROCPOOL_TASK(win_t::has_handle);
PROCPOOL_TASK(win_t::pid_of_worker);
PROCPOOL_TASK(win_t::start_blocked_grandchild);

using procpool::pool;

TEST_CASE("windows: start_method::fork is refused with a clear error", "[windows]") {
    try {
        pool p{{.workers = 1, .start = procpool::start_method::fork}};
        FAIL("a fork pool was constructed on Windows");
    } catch (const procpool::start_error& e) {
        CHECK(std::string(e.what()).find("not available on Windows") != std::string::npos);
        CHECK(std::string(e.what()).find("start_method::spawn") != std::string::npos);
    }
}

TEST_CASE("windows: a crash is reported with its NTSTATUS code and name, and the pool goes on", "[windows]") {
    pool p{{.workers = 1}};
    SECTION("access violation") {
        try {
            p.submit<win_t::access_violation>(7).get();
            FAIL("no worker_died");
        } catch (const procpool::worker_died& e) {
            CHECK(static_cast<unsigned>(e.exit_code()) == 0xC0000005u);
            CHECK(std::string(e.what()).find("0xC0000005 (access violation)") != std::string::npos);
            CHECK(std::string(e.what()).find("win_t::access_violation") != std::string::npos);
        }
    }
    SECTION("stack overflow") {
        try {
            p.submit<win_t::stack_overflow>(0).get();
            FAIL("no worker_died");
        } catch (const procpool::worker_died& e) {
            CHECK(static_cast<unsigned>(e.exit_code()) == 0xC00000FDu);
            CHECK(std::string(e.what()).find("stack overflow") != std::string::npos);
        }
    }
    CHECK(p.submit<win_t::pid_of_worker>(0).get() > 0); // the replacement serves
}

TEST_CASE("windows: workers inherit their channel and no other handle", "[windows]") {
    // An inheritable handle the parent holds while the pool starts: CreateProcess with bInheritHandles would
    // hand it to every worker unless the handle list restricts inheritance to the channel.
    SECURITY_ATTRIBUTES sa{sizeof sa, nullptr, TRUE};
    HANDLE read_end = nullptr, write_end = nullptr;
    REQUIRE(::CreatePipe(&read_end, &write_end, &sa, 0));
    {
        pool p{{.workers = 2}};
        auto value = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(write_end));
        CHECK_FALSE(p.submit<win_t::has_handle>(value).get());
        CHECK_FALSE(p.submit<win_t::has_handle>(value).get());
        // Decisive whatever handle values the workers use: once the parent closes its write end, the pipe is
        // broken only if no worker holds a copy.
        ::CloseHandle(write_end);
        DWORD avail = 0;
        CHECK_FALSE(::PeekNamedPipe(read_end, nullptr, 0, nullptr, &avail, nullptr));
        CHECK(::GetLastError() == ERROR_BROKEN_PIPE);
    }
    ::CloseHandle(read_end);
}

TEST_CASE("windows: a busy worker dies with its parent (job object, kill on close)", "[windows]") {
    pool p{{.workers = 1}};
    int grandchild = p.submit<win_t::start_blocked_grandchild>(0).get();
    REQUIRE(grandchild > 0);
    HANDLE g = ::OpenProcess(SYNCHRONIZE, FALSE, static_cast<DWORD>(grandchild));
    REQUIRE(g != nullptr); // alive now, and its pid cannot be reused while we hold the handle
    CHECK(::WaitForSingleObject(g, 0) == WAIT_TIMEOUT);
    // Kill its parent the hard way: no destructor, no finalizer runs there.
    auto worker = static_cast<DWORD>(p.worker_pids().front());
    HANDLE w = ::OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, worker);
    REQUIRE(w != nullptr);
    REQUIRE(::TerminateProcess(w, 1));
    CHECK(::WaitForSingleObject(w, 60000) == WAIT_OBJECT_0);
    ::CloseHandle(w);
    // The worker held the only handle to its job: closing it killed the grandchild, which was blocked in a task.
    CHECK(::WaitForSingleObject(g, 60000) == WAIT_OBJECT_0);
    ::CloseHandle(g);
}

TEST_CASE("windows: a pool waits on more channels than WaitForMultipleObjects takes at once", "[windows]") {
    // 70 workers: 70 read events plus the wake-up channel's, over the 64 one wait takes. Every result must
    // still arrive, whichever worker's channel is beyond the first 64.
    pool p{{.workers = 70}};
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 700; ++i) fs.push_back(p.submit<win_t::pid_of_worker>(i));
    std::set<int> pids;
    for (auto& f : fs) pids.insert(f.get());
    CHECK(pids.size() > 1);
    CHECK(p.worker_pids().size() == 70);
}

TEST_CASE("windows: channel I/O started by a thread that then ends still completes", "[windows]") {
    // Windows (and wine) cancel the overlapped I/O a thread started when that thread exits. The pool's driving
    // thread is whichever thread submits or waits, and it may end right after: a frame's last write was lost
    // that way and its worker waited forever (docs/windows.md). Here a thread hands 2 MiB to a channel whose
    // pipe holds 1 MiB, with nobody reading, and ends with the last write still pending; every byte it handed
    // over must arrive.
    namespace pf = procpool::platform;
    pf::native_handle a = pf::invalid_handle, b = pf::invalid_handle;
    pf::make_channel(a, b);
    std::vector<char> data(std::size_t{2} << 20);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
    std::size_t handed = 0;
    bool failed = false;
    std::thread([&] {
        while (handed < data.size()) {
            auto k = pf::write_some(a, data.data() + handed, data.size() - handed);
            if (k < 0) failed = true;
            if (k <= 0) break; // a write is pending: nothing reads until this thread has ended
            handed += static_cast<std::size_t>(k);
        }
    }).join();
    REQUIRE_FALSE(failed);
    REQUIRE(handed > (std::size_t{1} << 20)); // more than the pipe holds: a write was pending when it ended
    std::vector<char> got(handed);
    std::size_t read = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (read < got.size() && std::chrono::steady_clock::now() < deadline) {
        auto k = pf::read_some(b, got.data() + read, got.size() - read);
        if (k < 0) break;
        if (k > 0) {
            read += static_cast<std::size_t>(k);
            continue;
        }
        std::vector<pf::poll_item> items{{b, false}};
        pf::wait_any(items, 100);
    }
    pf::close_handle(a);
    pf::close_handle(b);
    REQUIRE(read == got.size());
    CHECK(std::equal(got.begin(), got.end(), data.begin()));
}

TEST_CASE("windows: a program in a folder with a non-ASCII name starts its workers", "[windows]") {
    // The worker is CreateProcessW'd from GetModuleFileNameW: no conversion through the ANSI code page.
    std::wstring self(32768, L'\0');
    self.resize(::GetModuleFileNameW(nullptr, self.data(), static_cast<DWORD>(self.size())));
    REQUIRE(!self.empty());
    wchar_t tmp[MAX_PATH + 1];
    REQUIRE(::GetTempPathW(MAX_PATH + 1, tmp) > 0);
    std::wstring dir = std::wstring(tmp) + L"procpool-\u00fcn\u00efc\u00f8d\u00e9-\u6c60-" + std::to_wstring(::GetCurrentProcessId());
    REQUIRE(::CreateDirectoryW(dir.c_str(), nullptr));
    std::wstring copy = dir + L"\\t\u00e9sts.exe";
    REQUIRE(::CopyFileW(self.c_str(), copy.c_str(), TRUE));
    std::wstring cmd = L"\"" + copy + L"\" --warn NoTests \"windows: workers inherit their channel and no other handle\"";
    STARTUPINFOW si{};
    si.cb = sizeof si;
    PROCESS_INFORMATION pi{};
    REQUIRE(::CreateProcessW(copy.c_str(), cmd.data(), nullptr, nullptr, FALSE, 0, nullptr, nullptr, &si, &pi));
    CHECK(::WaitForSingleObject(pi.hProcess, 120000) == WAIT_OBJECT_0);
    DWORD code = 1;
    ::GetExitCodeProcess(pi.hProcess, &code);
    CHECK(code == 0); // Catch's exit code: the test ran and passed (a spawned worker serves from the same path)
    ::CloseHandle(pi.hThread);
    ::CloseHandle(pi.hProcess);
    ::DeleteFileW(copy.c_str());
    ::RemoveDirectoryW(dir.c_str());
}

#endif // PROCPOOL_WINDOWS
