// Commands through the C ABI (moat/exec.h): the blocking helper on a
// sandbox handle, and exec handles with push (callbacks) or pull (read)
// output.
#include <csignal>

#include "capi/handles.h"

using namespace moat::capi;

namespace {

moat::Result<moat::ExecOptions> exec_options_of(const moat_exec_options* given) {
  MOAT_ASSIGN_OR_RETURN(moat_exec_options o, read_struct(given, "moat_exec_options"));
  moat::ExecOptions x;
  x.argv = string_list(o.argv);
  if (x.argv.empty()) return moat::make_error("exec: no command given (argv is empty)", EINVAL);
  x.env = string_list(o.env);
  x.cwd = text_or_empty(o.cwd);
  x.user = text_or_empty(o.user);
  x.tty = o.tty != 0;
  if (o.rows) x.rows = o.rows;
  if (o.cols) x.cols = o.cols;
  x.stdin_open = o.stdin_open != 0;
  if (o.timeout_ms < 0) return moat::make_error("exec: timeout_ms must not be negative", EINVAL);
  x.timeout = millis(o.timeout_ms);
  MOAT_TRY(moat::check_exec_options(x));
  return x;
}

// The callbacks copied whole, so they outlive the caller's structure.
moat::Result<moat_exec_callbacks> callbacks_of(const moat_exec_callbacks* given) {
  return read_struct(given, "moat_exec_callbacks");
}

moat::ExecCallbacks exec_callbacks(const moat_exec_callbacks& c) {
  moat::ExecCallbacks cb;
  if (c.on_stdout) cb.on_stdout = [c](std::string_view s) { c.on_stdout(c.user_data, s.data(), s.size()); };
  if (c.on_stderr) cb.on_stderr = [c](std::string_view s) { c.on_stderr(c.user_data, s.data(), s.size()); };
  if (c.on_started) cb.on_started = [c](int pid) { c.on_started(c.user_data, pid); };
  return cb;
}

void set_status(const moat::ExitStatus& s, moat_exit_status* out) {
  if (out == nullptr) return;
  out->code = s.code;
  out->signal = s.signal;
  out->timed_out = s.timed_out ? 1 : 0;
}

std::optional<moat::Duration> wait_limit(int64_t timeout_ms) {
  if (timeout_ms < 0) return std::nullopt;
  return millis(timeout_ms);
}

}  // namespace

extern "C" {

int moat_sandbox_exec(moat_sandbox* sandbox, const moat_exec_options* options, const moat_exec_callbacks* callbacks,
                      int stdin_fd, moat_exit_status* status, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr) return fail(EINVAL, "exec: no sandbox handle", err);
    auto x = exec_options_of(options);
    if (!x) return fail(x.error(), err);
    auto c = callbacks_of(callbacks);
    if (!c) return fail(c.error(), err);
    moat::ExecCallbacks cb = exec_callbacks(*c);
    moat::ExecIo io;
    io.stdin_fd = stdin_fd;
    io.on_stdout = cb.on_stdout;
    io.on_stderr = cb.on_stderr;
    io.on_started = cb.on_started;
    auto st = sandbox->sandbox.exec(*x, io);
    if (!st) return fail(st.error(), err);
    set_status(*st, status);
    return 0;
  });
}

int moat_exec_start(moat_sandbox* sandbox, const moat_exec_options* options, const moat_exec_callbacks* callbacks,
                    moat_exec** out, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr || out == nullptr) return fail(EINVAL, "exec start: a sandbox handle and a place for the exec handle are required", err);
    *out = nullptr;
    auto x = exec_options_of(options);
    if (!x) return fail(x.error(), err);
    auto c = callbacks_of(callbacks);
    if (!c) return fail(c.error(), err);
    auto ex = sandbox->sandbox.start_exec(*x, exec_callbacks(*c));
    if (!ex) return fail(ex.error(), err);
    *out = new moat_exec{std::move(*ex)};
    return 0;
  });
}

void moat_exec_free(moat_exec* exec) {
  guarded(nullptr, [&] {
    delete exec;
    return 0;
  });
}

int moat_exec_pid(const moat_exec* exec) { return exec ? exec->exec.pid() : 0; }

int moat_exec_write_stdin(moat_exec* exec, const char* data, size_t length, moat_error** err) {
  return guarded(err, [&] {
    if (exec == nullptr || (data == nullptr && length != 0)) return fail(EINVAL, "write stdin: no exec handle or data", err);
    return done(exec->exec.write_stdin(std::string_view(data ? data : "", length)), err);
  });
}

int moat_exec_close_stdin(moat_exec* exec, moat_error** err) {
  return guarded(err, [&] {
    if (exec == nullptr) return fail(EINVAL, "close stdin: no exec handle", err);
    return done(exec->exec.close_stdin(), err);
  });
}

int moat_exec_signal(moat_exec* exec, int signal, moat_error** err) {
  return guarded(err, [&] {
    if (exec == nullptr) return fail(EINVAL, "signal: no exec handle", err);
    return done(exec->exec.signal(signal), err);
  });
}

int moat_exec_kill(moat_exec* exec, moat_error** err) {
  return guarded(err, [&] {
    if (exec == nullptr) return fail(EINVAL, "kill: no exec handle", err);
    return done(exec->exec.kill(), err);
  });
}

int moat_exec_resize(moat_exec* exec, uint16_t rows, uint16_t cols, moat_error** err) {
  return guarded(err, [&] {
    if (exec == nullptr) return fail(EINVAL, "resize: no exec handle", err);
    return done(exec->exec.resize(rows, cols), err);
  });
}

void moat_exec_cancel(moat_exec* exec) {
  if (exec == nullptr) return;
  guarded(nullptr, [&] {
    exec->exec.cancel();
    return 0;
  });
}

int moat_exec_wait(moat_exec* exec, int64_t timeout_ms, int* ended, moat_exit_status* status, moat_error** err) {
  return guarded(err, [&] {
    if (exec == nullptr) return fail(EINVAL, "wait: no exec handle", err);
    if (ended) *ended = 0;
    auto r = exec->exec.wait(wait_limit(timeout_ms));
    if (!r) return fail(r.error(), err);
    if (r->has_value()) {
      if (ended) *ended = 1;
      set_status(**r, status);
    }
    return 0;
  });
}

int moat_exec_read(moat_exec* exec, int64_t timeout_ms, moat_exec_output* out, moat_error** err) {
  return guarded(err, [&] {
    if (exec == nullptr || out == nullptr) return fail(EINVAL, "read: an exec handle and a place for the output are required", err);
    *out = moat_exec_output{};
    auto r = exec->exec.read(wait_limit(timeout_ms));
    if (!r) return fail(r.error(), err);
    if (!r->has_value()) return 0;
    const moat::ExecOutput& piece = **r;
    switch (piece.kind) {
      case moat::ExecOutput::Kind::kStdout: out->kind = MOAT_OUTPUT_STDOUT; break;
      case moat::ExecOutput::Kind::kStderr: out->kind = MOAT_OUTPUT_STDERR; break;
      case moat::ExecOutput::Kind::kExit:
        out->kind = MOAT_OUTPUT_EXIT;
        set_status(piece.status, &out->status);
        return 0;
    }
    out->data = copy_out(piece.data);
    if (out->data == nullptr) return fail(ENOMEM, "out of memory", err);
    out->length = piece.data.size();
    return 0;
  });
}

}  // extern "C"
