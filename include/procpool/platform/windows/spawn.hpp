// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/spawn.hpp: starting a worker as a fresh copy of the running executable
// (CreateProcessW) that inherits exactly its channel and the standard handles, suspended until it is in the workers'
// job object; and the executable's identity.
#ifndef PROCPOOL_PLATFORM_WINDOWS_SPAWN_HPP
#define PROCPOOL_PLATFORM_WINDOWS_SPAWN_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/windows/win32.hpp>
#include <procpool/platform/windows/channel.hpp>
#include <procpool/platform/windows/errors.hpp>
#include <procpool/platform/windows/lifetime.hpp>
#include <procpool/platform/windows/process.hpp>
#include <procpool/platform/windows/utf8.hpp>

#include <cstdint>
#include <cstdlib>
#include <cwchar>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

inline std::wstring executable_path_w() {
    std::wstring p(MAX_PATH, L'\0');
    for (;;) { // long paths: grow until it fits
        DWORD n = ::GetModuleFileNameW(nullptr, p.data(), static_cast<DWORD>(p.size()));
        if (n == 0) throw_last_error("GetModuleFileName");
        if (n < p.size()) {
            p.resize(n);
            return p;
        }
        p.resize(p.size() * 2);
    }
}

/// Path of the running executable (UTF-8).
inline std::string executable_path() { return narrow(executable_path_w()); }

/// Identity of the executable image (volume, file index, size, last write): a spawned worker compares it with
/// its parent's.
inline std::string executable_identity() {
    HANDLE f = ::CreateFileW(executable_path_w().c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr);
    if (f == INVALID_HANDLE_VALUE) return "unknown";
    BY_HANDLE_FILE_INFORMATION info{};
    BOOL ok = ::GetFileInformationByHandle(f, &info);
    ::CloseHandle(f);
    if (!ok) return "unknown";
    auto u64 = [](DWORD hi, DWORD lo) { return std::to_string((static_cast<unsigned long long>(hi) << 32) | lo); };
    return std::to_string(info.dwVolumeSerialNumber) + ":" + u64(info.nFileIndexHigh, info.nFileIndexLow) + ":" +
           u64(info.nFileSizeHigh, info.nFileSizeLow) + ":" +
           u64(info.ftLastWriteTime.dwHighDateTime, info.ftLastWriteTime.dwLowDateTime);
}

/// What a spawned worker finds its channel as: the inherited handle keeps its value in the child.
inline std::string child_channel_token(native_handle theirs) {
    auto* ch = detail_win::find(theirs);
    return ch ? std::to_string(reinterpret_cast<std::uintptr_t>(ch->pipe)) : std::string("0");
}

/// In a spawned worker: takes over the channel named by `token` (see child_channel_token), uninheritable from
/// now on (processes the tasks start must not hold it open after this worker dies).
inline native_handle adopt_channel(const char* token) {
    if (!token) return invalid_handle;
    auto value = static_cast<std::uintptr_t>(std::strtoull(token, nullptr, 10));
    HANDLE h = reinterpret_cast<HANDLE>(value);
    if (!value || ::GetFileType(h) != FILE_TYPE_PIPE) return invalid_handle;
    ::SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
    return detail_win::add(h);
}

namespace detail_win {
/// argv[i] quoted so that CommandLineToArgvW and the C runtime give it back unchanged.
inline void append_quoted(std::wstring& cmd, const std::wstring& arg) {
    if (!cmd.empty()) cmd += L' ';
    if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
        cmd += arg;
        return;
    }
    cmd += L'"';
    for (auto it = arg.begin();; ++it) {
        std::size_t backslashes = 0;
        while (it != arg.end() && *it == L'\\') {
            ++it;
            ++backslashes;
        }
        if (it == arg.end()) {
            cmd.append(backslashes * 2, L'\\');
            break;
        }
        if (*it == L'"') cmd.append(backslashes * 2 + 1, L'\\');
        else cmd.append(backslashes, L'\\');
        cmd += *it;
    }
    cmd += L'"';
}

/// The parent's environment block with `extra` (NAME=value, UTF-8) added or replacing same-named entries.
inline std::vector<wchar_t> environment_with(const std::vector<std::string>& extra) {
    std::vector<std::wstring> add;
    for (auto& e : extra) add.push_back(widen(e));
    auto name_of = [](const std::wstring& kv) { return kv.substr(0, kv.find(L'=', 1)); };
    auto same_name = [](const std::wstring& a, const std::wstring& b) {
        return ::CompareStringOrdinal(a.c_str(), static_cast<int>(a.size()), b.c_str(), static_cast<int>(b.size()),
                                      TRUE) == CSTR_EQUAL;
    };
    std::vector<wchar_t> block;
    if (wchar_t* env = ::GetEnvironmentStringsW()) {
        for (wchar_t* e = env; *e; e += std::wcslen(e) + 1) {
            std::wstring kv(e);
            bool overridden = false;
            for (auto& a : add) overridden = overridden || same_name(name_of(kv), name_of(a));
            if (!overridden) block.insert(block.end(), kv.c_str(), kv.c_str() + kv.size() + 1);
        }
        ::FreeEnvironmentStringsW(env);
    }
    for (auto& a : add) block.insert(block.end(), a.c_str(), a.c_str() + a.size() + 1);
    block.push_back(L'\0');
    if (block.size() == 1) block.push_back(L'\0');
    return block;
}

/// An inheritable duplicate of a standard handle, or null when there is none.
inline HANDLE inheritable_std_handle(DWORD which) {
    HANDLE h = ::GetStdHandle(which);
    if (!h || h == INVALID_HANDLE_VALUE) return nullptr;
    HANDLE dup = nullptr;
    if (!::DuplicateHandle(::GetCurrentProcess(), h, ::GetCurrentProcess(), &dup, 0, TRUE, DUPLICATE_SAME_ACCESS))
        return nullptr;
    return dup;
}
} // namespace detail_win

/// Starts the running executable with `args` (argv[1...]) and `extra_env` added to the environment. The child
/// inherits `channel` and the standard handles and nothing else, starts suspended until it is in the workers'
/// job object (so it dies with this process), and is then resumed.
inline pid_type spawn_self(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                           native_handle channel, native_handle /*lifeline: none on Windows*/ = invalid_handle) {
    auto* ch = detail_win::find(channel);
    if (!ch) throw std::runtime_error("procpool: spawn_self: not a channel");
    std::wstring exe = executable_path_w();
    std::wstring cmd;
    detail_win::append_quoted(cmd, exe);
    for (auto& a : args) detail_win::append_quoted(cmd, widen(a));
    auto env = detail_win::environment_with(extra_env);

    HANDLE std_handles[3] = {detail_win::inheritable_std_handle(STD_INPUT_HANDLE),
                             detail_win::inheritable_std_handle(STD_OUTPUT_HANDLE),
                             detail_win::inheritable_std_handle(STD_ERROR_HANDLE)};
    std::vector<HANDLE> inherit{ch->pipe};
    for (HANDLE h : std_handles)
        if (h) inherit.push_back(h);
    struct cleanup {
        HANDLE* hs;
        HANDLE pipe;
        LPPROC_THREAD_ATTRIBUTE_LIST list = nullptr;
        ~cleanup() {
            for (int i = 0; i < 3; ++i)
                if (hs[i]) ::CloseHandle(hs[i]);
            ::SetHandleInformation(pipe, HANDLE_FLAG_INHERIT, 0);
            if (list) ::DeleteProcThreadAttributeList(list);
        }
    } guard{std_handles, ch->pipe};
    // The handle list only takes inheritable handles; the flag is cleared again right after CreateProcess.
    ::SetHandleInformation(ch->pipe, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);

    SIZE_T size = 0;
    ::InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
    std::vector<unsigned char> storage(size);
    auto list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage.data());
    if (!::InitializeProcThreadAttributeList(list, 1, 0, &size)) throw_last_error("InitializeProcThreadAttributeList");
    guard.list = list;
    if (!::UpdateProcThreadAttribute(list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherit.data(),
                                     inherit.size() * sizeof(HANDLE), nullptr, nullptr))
        throw_last_error("UpdateProcThreadAttribute(PROC_THREAD_ATTRIBUTE_HANDLE_LIST)");

    STARTUPINFOEXW si{};
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = std_handles[0];
    si.StartupInfo.hStdOutput = std_handles[1];
    si.StartupInfo.hStdError = std_handles[2];
    si.lpAttributeList = list;
    PROCESS_INFORMATION pi{};
    // wine (seen with 8.0) fails a start now and then with ERROR_INTERNAL_ERROR and succeeds when asked again.
    for (int attempt = 1;; ++attempt) {
        if (::CreateProcessW(exe.c_str(), cmd.data(), nullptr, nullptr, TRUE,
                             CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT, env.data(),
                             nullptr, &si.StartupInfo, &pi))
            break;
        if (::GetLastError() != ERROR_INTERNAL_ERROR || attempt == 3)
            throw_last_error("CreateProcess of the running executable");
        ::Sleep(static_cast<DWORD>(attempt)); // not synchronisation: a short pause before trying again
    }
    HANDLE job = detail_win::worker_job();
    if (!job || !::AssignProcessToJobObject(job, pi.hProcess)) {
        // Without the job a worker could outlive this process: refuse rather than leak processes.
        DWORD e = ::GetLastError();
        ::TerminateProcess(pi.hProcess, terminated_code);
        ::CloseHandle(pi.hThread);
        ::CloseHandle(pi.hProcess);
        ::SetLastError(e);
        throw_last_error("AssignProcessToJobObject (workers must die with their parent)");
    }
    ::ResumeThread(pi.hThread);
    ::CloseHandle(pi.hThread);
    {
        auto& t = detail_win::processes();
        std::lock_guard lock(t.mutex);
        t.handles[static_cast<pid_type>(pi.dwProcessId)] = pi.hProcess;
    }
    return static_cast<pid_type>(pi.dwProcessId);
}

inline native_handle adopt_lifeline(const char*) noexcept { return invalid_handle; }
inline std::string child_lifeline_token(native_handle) { return "-1"; }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_SPAWN_HPP
