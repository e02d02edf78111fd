// The Node SDK's native half: an N-API addon over libmoat's C ABI
// (include/moat/moat.h). Every libmoat call blocks, so each runs on libuv's
// worker pool as async work and settles a Promise; the JavaScript half
// (lib/index.js) gives it the SDK's shape. N-API is Node's stable ABI: the
// addon built once runs on any Node from 18 on.
//
// Output of spawned commands reaches JavaScript through a threadsafe
// function with a bounded queue: when JavaScript falls behind, the worker
// thread waiting on the command blocks, the guest stops being granted
// window, and the command is held back. Host memory stays bounded.
#define NAPI_VERSION 8
#include <node_api.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moat/moat.h"

namespace {

using Json = nlohmann::json;

// ---- small N-API helpers ----

#define CHECK(env, call)                                              \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error((env), "EMOATNAPI", "N-API call failed: " #call); \
      return nullptr;                                                 \
    }                                                                 \
  } while (0)

napi_value undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value string_value(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.data(), s.size(), &v);
  return v;
}

napi_value buffer_value(napi_env env, const std::string& bytes) {
  napi_value v;
  void* data = nullptr;
  napi_create_buffer_copy(env, bytes.size(), bytes.data(), &data, &v);
  return v;
}

napi_value int_value(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

bool get_string(napi_env env, napi_value v, std::string* out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out->resize(len);
  return napi_get_value_string_utf8(env, v, out->data(), len + 1, &len) == napi_ok;
}

bool get_int64(napi_env env, napi_value v, int64_t* out) { return napi_get_value_int64(env, v, out) == napi_ok; }

// Bytes from a Buffer, or a string's UTF-8.
bool get_bytes(napi_env env, napi_value v, std::string* out) {
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (!is_buffer) return get_string(env, v, out);
  void* data = nullptr;
  size_t len = 0;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return false;
  out->assign(static_cast<const char*>(data), len);
  return true;
}

std::vector<napi_value> args_of(napi_env env, napi_callback_info info, size_t want) {
  std::vector<napi_value> args(want);
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, args.data(), nullptr, nullptr);
  for (size_t i = argc; i < want; ++i) args[i] = undefined(env);
  return args;
}

// ---- handles ----

struct SandboxHandle {
  moat_sandbox* sandbox = nullptr;
};

struct ExecHandle {
  moat_exec* exec = nullptr;
  napi_threadsafe_function output = nullptr;  // null: pull interface
};

template <class T>
T* unwrap(napi_env env, napi_value v) {
  void* p = nullptr;
  if (napi_get_value_external(env, v, &p) != napi_ok) return nullptr;
  return static_cast<T*>(p);
}

void free_sandbox(napi_env, void* data, void*) {
  auto* h = static_cast<SandboxHandle*>(data);
  moat_sandbox_close(h->sandbox);
  delete h;
}

void free_exec(napi_env, void* data, void*) {
  auto* h = static_cast<ExecHandle*>(data);
  moat_exec_free(h->exec);
  if (h->output) napi_release_threadsafe_function(h->output, napi_tsfn_abort);
  delete h;
}

// ---- async work: run on a worker thread, settle a Promise ----

// What a call produced: an error (code, kind, message) or a value made on
// the main thread.
struct Outcome {
  int rc = 0;
  int code = 0;
  std::string kind, message;
  std::function<napi_value(napi_env)> make;

  void fail_with(int result, moat_error* err) {
    rc = result;
    code = err ? moat_error_code(err) : result;
    kind = err ? moat_error_kind(err) : "unknown";
    message = err ? moat_error_message(err) : "libmoat call failed";
    moat_error_free(err);
  }
  void fail_with(int c, const std::string& k, const std::string& m) {
    rc = c ? c : -1;
    code = c;
    kind = k;
    message = m;
  }
};

struct Work {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<napi_ref> keep;  // handles the call uses stay alive until it settles
  std::function<Outcome()> run;
  Outcome outcome;
};

napi_value make_error(napi_env env, const Outcome& o) {
  napi_value msg = string_value(env, o.message), err;
  napi_create_error(env, nullptr, msg, &err);
  napi_set_named_property(env, err, "kind", string_value(env, o.kind));
  napi_set_named_property(env, err, "errno", int_value(env, o.code));
  return err;
}

napi_value start(napi_env env, std::function<Outcome()> run, std::vector<napi_value> keep = {}) {
  auto* w = new Work;
  w->run = std::move(run);
  napi_value promise, name;
  napi_create_promise(env, &w->deferred, &promise);
  for (napi_value v : keep) {
    napi_ref r;
    napi_create_reference(env, v, 1, &r);
    w->keep.push_back(r);
  }
  napi_create_string_utf8(env, "moat", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(
      env, nullptr, name,
      [](napi_env, void* data) {
        auto* w = static_cast<Work*>(data);
        try {
          w->outcome = w->run();
        } catch (const std::exception& e) {
          w->outcome.fail_with(EIO, "io", std::string("internal error: ") + e.what());
        }
      },
      [](napi_env env, napi_status, void* data) {
        auto* w = static_cast<Work*>(data);
        if (w->outcome.rc != 0) {
          napi_reject_deferred(env, w->deferred, make_error(env, w->outcome));
        } else {
          napi_value v = w->outcome.make ? w->outcome.make(env) : undefined(env);
          napi_resolve_deferred(env, w->deferred, v);
        }
        for (napi_ref r : w->keep) napi_delete_reference(env, r);
        napi_delete_async_work(env, w->work);
        delete w;
      },
      w, &w->work);
  napi_queue_async_work(env, w->work);
  return promise;
}

napi_value rejected(napi_env env, int code, const std::string& message) {
  napi_deferred d;
  napi_value promise;
  napi_create_promise(env, &d, &promise);
  Outcome o;
  o.fail_with(code, "invalid_argument", message);
  napi_reject_deferred(env, d, make_error(env, o));
  return promise;
}

// Runs a libmoat call that returns a char** result (JSON), resolving to the text.
Outcome string_call(const std::function<int(char**, moat_error**)>& call) {
  Outcome o;
  char* out = nullptr;
  moat_error* err = nullptr;
  int rc = call(&out, &err);
  if (rc != 0) {
    o.fail_with(rc, err);
    return o;
  }
  std::string text = out ? out : "";
  moat_string_free(out);
  o.make = [text](napi_env env) { return string_value(env, text); };
  return o;
}

Outcome status_call(const std::function<int(moat_error**)>& call) {
  Outcome o;
  moat_error* err = nullptr;
  int rc = call(&err);
  if (rc != 0) o.fail_with(rc, err);
  return o;
}

// ---- options from JSON (the JavaScript half checks types first) ----

// Strings a call's C structure points into, kept with it.
struct Strings {
  std::vector<std::unique_ptr<std::string>> text;
  std::vector<std::unique_ptr<std::vector<const char*>>> lists;

  const char* add(const Json& j, const char* key) {
    if (!j.contains(key) || j[key].is_null()) return nullptr;
    text.push_back(std::make_unique<std::string>(j[key].get<std::string>()));
    return text.back()->c_str();
  }
  const char* const* list(const Json& j, const char* key) {
    if (!j.contains(key) || j[key].is_null()) return nullptr;
    auto l = std::make_unique<std::vector<const char*>>();
    for (const auto& item : j[key]) {
      text.push_back(std::make_unique<std::string>(item.get<std::string>()));
      l->push_back(text.back()->c_str());
    }
    l->push_back(nullptr);
    lists.push_back(std::move(l));
    return lists.back()->data();
  }
};

template <class T>
T number(const Json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<T>() : T{};
}

void fill_sandbox_options(const Json& j, Strings& s, moat_sandbox_options* o) {
  std::memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->image = s.add(j, "image");
  o->pull = static_cast<moat_pull_policy>(number<int>(j, "pull"));
  o->insecure_registry = number<int>(j, "insecureRegistry");
  o->platform = s.add(j, "platform");
  o->name = s.add(j, "name");
  o->labels = s.list(j, "labels");
  o->command = s.list(j, "command");
  if (j.contains("entrypoint") && !j["entrypoint"].is_null()) {
    o->entrypoint = s.list(j, "entrypoint");
    o->has_entrypoint = 1;
  }
  o->volumes = s.list(j, "volumes");
  o->tmpfs = s.list(j, "tmpfs");
  o->network_json = s.add(j, "network");
  o->cpus = number<int>(j, "cpus");
  o->cpu_weight = number<uint32_t>(j, "cpuWeight");
  o->io_weight = number<uint32_t>(j, "ioWeight");
  o->memory_mib = number<int>(j, "memoryMib");
  o->disk_size_mib = number<uint64_t>(j, "diskSizeMib");
  o->accel = static_cast<moat_accel>(number<int>(j, "accel"));
  o->hostname = s.add(j, "hostname");
  o->idle_timeout_ms = number<int64_t>(j, "idleTimeoutMs");
  o->max_duration_ms = number<int64_t>(j, "maxDurationMs");
  o->boot_timeout_ms = number<int64_t>(j, "bootTimeoutMs");
  o->stop_timeout_ms = number<int64_t>(j, "stopTimeoutMs");
  o->auto_remove = number<int>(j, "autoRemove");
  o->ephemeral = number<int>(j, "ephemeral");
  o->rootfs_dir = s.add(j, "rootfsDir");
  o->rootfs_image = s.add(j, "rootfsImage");
  o->writable_root = number<int>(j, "writableRoot");
  o->from_snapshot = s.add(j, "fromSnapshot");
  o->cold = number<int>(j, "cold");
  o->log_max_bytes = number<uint64_t>(j, "logMaxBytes");
  o->secrets = s.list(j, "secrets");
  o->secret_values = s.list(j, "secretValues");
  o->stop_on_secret_violation = number<int>(j, "stopOnSecretViolation");
}

void fill_exec_options(const Json& j, Strings& s, moat_exec_options* o) {
  std::memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->argv = s.list(j, "argv");
  o->env = s.list(j, "env");
  o->cwd = s.add(j, "cwd");
  o->user = s.add(j, "user");
  o->tty = number<int>(j, "tty");
  o->rows = number<uint16_t>(j, "rows");
  o->cols = number<uint16_t>(j, "cols");
  o->stdin_open = number<int>(j, "stdin");
  o->timeout_ms = number<int64_t>(j, "timeoutMs");
}

// Fills a C options structure from its JSON, or `out` with the reason.
template <class Fill, class Options>
bool options_from(const Json& j, Strings& s, Options* o, Fill fill, const char* what, Outcome& out) {
  try {
    fill(j, s, o);
    return true;
  } catch (const std::exception& e) {
    out.fail_with(EINVAL, "invalid_argument", std::string(what) + ": bad option: " + e.what());
    return false;
  }
}

bool parse_json(napi_env env, napi_value v, Json* out) {
  std::string text;
  if (!get_string(env, v, &text)) return false;
  *out = Json::parse(text, nullptr, false);
  return !out->is_discarded() && out->is_object();
}

// ---- sandboxes ----

napi_value wrap_sandbox(napi_env env, moat_sandbox* sb) {
  auto* h = new SandboxHandle{sb};
  napi_value v;
  napi_create_external(env, h, free_sandbox, nullptr, &v);
  return v;
}

napi_value Create(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 1);
  auto j = std::make_shared<Json>();
  if (!parse_json(env, a[0], j.get())) return rejected(env, EINVAL, "create: options must be a JSON object");
  return start(env, [j] {
    Strings s;
    moat_sandbox_options o;
    Outcome out;
    if (!options_from(*j, s, &o, fill_sandbox_options, "create", out)) return out;
    moat_sandbox* sb = nullptr;
    moat_error* err = nullptr;
    int rc = moat_sandbox_create(&o, &sb, &err);
    if (rc != 0) {
      out.fail_with(rc, err);
      return out;
    }
    out.make = [sb](napi_env env) { return wrap_sandbox(env, sb); };
    return out;
  });
}

napi_value Open(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 1);
  std::string id;
  if (!get_string(env, a[0], &id)) return rejected(env, EINVAL, "open: the sandbox's id or name must be a string");
  return start(env, [id] {
    Outcome out;
    moat_sandbox* sb = nullptr;
    moat_error* err = nullptr;
    int rc = moat_sandbox_open(id.c_str(), &sb, &err);
    if (rc != 0) {
      out.fail_with(rc, err);
      return out;
    }
    out.make = [sb](napi_env env) { return wrap_sandbox(env, sb); };
    return out;
  });
}

// The handle of a call's first argument, or a rejected promise in *bad.
SandboxHandle* sandbox_arg(napi_env env, napi_value v, napi_value* bad) {
  auto* h = unwrap<SandboxHandle>(env, v);
  if (h == nullptr || h->sandbox == nullptr) {
    *bad = rejected(env, ENOTCONN, "the sandbox handle is closed");
    return nullptr;
  }
  return h;
}

// The boilerplate of a call on a sandbox: its arguments, the open handle in
// the first (else a rejected promise), then `call`.
template <class Call>
napi_value with_sandbox(napi_env env, napi_callback_info info, size_t nargs, Call call) {
  auto a = args_of(env, info, nargs);
  napi_value bad;
  auto* h = sandbox_arg(env, a[0], &bad);
  if (!h) return bad;
  return call(a, h->sandbox);
}

napi_value SandboxId(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 1);
  auto* h = unwrap<SandboxHandle>(env, a[0]);
  return string_value(env, h && h->sandbox ? moat_sandbox_id(h->sandbox) : "");
}

// Closes now (synchronously: a handle close does not wait on the VM).
napi_value Close(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 1);
  auto* h = unwrap<SandboxHandle>(env, a[0]);
  if (h && h->sandbox) {
    moat_sandbox_close(h->sandbox);
    h->sandbox = nullptr;
  }
  return undefined(env);
}

// A call on a sandbox whose result is JSON text.
napi_value sandbox_text_call(napi_env env, napi_callback_info info, int (*call)(moat_sandbox*, char**, moat_error**)) {
  return with_sandbox(env, info, 1, [&](const std::vector<napi_value>& a, moat_sandbox* sb) {
    return start(env, [sb, call] { return string_call([&](char** out, moat_error** err) { return call(sb, out, err); }); },
                 {a[0]});
  });
}

napi_value Info(napi_env env, napi_callback_info info) { return sandbox_text_call(env, info, moat_sandbox_info); }
napi_value Stats(napi_env env, napi_callback_info info) { return sandbox_text_call(env, info, moat_sandbox_stats); }

napi_value Stop(napi_env env, napi_callback_info info) {
  return with_sandbox(env, info, 2, [&](const std::vector<napi_value>& a, moat_sandbox* sb) -> napi_value {
    int64_t ms = 0;
    get_int64(env, a[1], &ms);
    return start(env, [sb, ms] { return status_call([&](moat_error** err) { return moat_sandbox_stop(sb, ms, err); }); },
                 {a[0]});
  });
}

// pause(h, toDisk) / resume(h): through the handle, so that a resume that
// restores a sandbox paused to disk connects the handle to it again.
napi_value Pause(napi_env env, napi_callback_info info) {
  return with_sandbox(env, info, 2, [&](const std::vector<napi_value>& a, moat_sandbox* sb) -> napi_value {
    int64_t to_disk = 0;
    get_int64(env, a[1], &to_disk);
    return start(
        env, [sb, to_disk] {
          return status_call([&](moat_error** err) { return moat_sandbox_pause(sb, to_disk != 0, err); });
        },
        {a[0]});
  });
}

napi_value Resume(napi_env env, napi_callback_info info) {
  return with_sandbox(env, info, 1, [&](const std::vector<napi_value>& a, moat_sandbox* sb) -> napi_value {
    return start(env, [sb] { return status_call([&](moat_error** err) { return moat_sandbox_resume(sb, err); }); },
                 {a[0]});
  });
}

napi_value UpdateNetwork(napi_env env, napi_callback_info info) {
  return with_sandbox(env, info, 2, [&](const std::vector<napi_value>& a, moat_sandbox* sb) -> napi_value {
    std::string policy;
    if (!get_string(env, a[1], &policy)) return rejected(env, EINVAL, "updateNetwork: the policy must be JSON text");
    return start(env, [sb, policy] {
      return status_call([&](moat_error** err) { return moat_sandbox_update_network(sb, policy.c_str(), err); });
    }, {a[0]});
  });
}

// ---- exec ----

struct Collected {
  std::string out, err;
};

napi_value status_object(napi_env env, const moat_exit_status& st) {
  napi_value o;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "code", int_value(env, st.code));
  napi_set_named_property(env, o, "signal", int_value(env, st.signal));
  napi_value t;
  napi_get_boolean(env, st.timed_out != 0, &t);
  napi_set_named_property(env, o, "timedOut", t);
  return o;
}

// exec(handle, optionsJson, stdin|undefined) -> {code, signal, timedOut, stdout, stderr}
napi_value Exec(napi_env env, napi_callback_info info) {
  return with_sandbox(env, info, 3, [&](const std::vector<napi_value>& a, moat_sandbox* sb) -> napi_value {
    auto j = std::make_shared<Json>();
    if (!parse_json(env, a[1], j.get())) return rejected(env, EINVAL, "exec: options must be a JSON object");
    napi_valuetype t;
    napi_typeof(env, a[2], &t);
    auto input = std::make_shared<std::string>();
    bool has_input = t != napi_undefined && t != napi_null;
    if (has_input && !get_bytes(env, a[2], input.get())) return rejected(env, EINVAL, "exec: stdin must be a Buffer or string");
    return start(env, [sb, j, input, has_input] {
      Outcome out;
      Strings s;
      moat_exec_options o;
      if (!options_from(*j, s, &o, fill_exec_options, "exec", out)) return out;
      auto got = std::make_shared<Collected>();
      moat_exec_callbacks cb;
      std::memset(&cb, 0, sizeof cb);
      cb.struct_size = sizeof cb;
      cb.user_data = got.get();
      cb.on_stdout = [](void* u, const char* d, size_t n) { static_cast<Collected*>(u)->out.append(d, n); };
      cb.on_stderr = [](void* u, const char* d, size_t n) { static_cast<Collected*>(u)->err.append(d, n); };
      moat_exit_status st{};
      moat_error* err = nullptr;
      int rc;
      if (!has_input) {
        rc = moat_sandbox_exec(sb, &o, &cb, -1, &st, &err);
      } else {
        // Stdin through an exec handle: written while its output is read.
        moat_exec* ex = nullptr;
        o.stdin_open = 1;
        rc = moat_exec_start(sb, &o, &cb, &ex, &err);
        if (rc == 0) rc = moat_exec_write_stdin(ex, input->data(), input->size(), &err);
        if (rc == 0) rc = moat_exec_close_stdin(ex, &err);
        int ended = 0;
        if (rc == 0) rc = moat_exec_wait(ex, -1, &ended, &st, &err);
        moat_exec_free(ex);
      }
      if (rc != 0) {
        out.fail_with(rc, err);
        return out;
      }
      out.make = [st, got](napi_env env) {
        napi_value o = status_object(env, st);
        napi_set_named_property(env, o, "stdout", buffer_value(env, got->out));
        napi_set_named_property(env, o, "stderr", buffer_value(env, got->err));
        return o;
      };
      return out;
    }, {a[0]});
  });
}

// One piece of a spawned command's output on its way to JavaScript.
struct Piece {
  int kind;  // 1 stdout, 2 stderr
  std::string data;
};

void deliver_output(napi_env env, napi_value js_callback, void*, void* data) {
  std::unique_ptr<Piece> p(static_cast<Piece*>(data));
  if (env == nullptr || js_callback == nullptr) return;  // tearing down
  napi_value args[2] = {int_value(env, p->kind), buffer_value(env, p->data)};
  napi_value result;
  napi_call_function(env, undefined(env), js_callback, 2, args, &result);
}

void push_output(ExecHandle* h, int kind, const char* d, size_t n) {
  // Blocking: a full queue (JavaScript behind) holds this worker, and with
  // it the command, back.
  napi_call_threadsafe_function(h->output, new Piece{kind, std::string(d, n)}, napi_tsfn_blocking);
}

// spawnHandle(sandbox, unused, onOutput|undefined) -> a process handle, not
// started yet (startSpawned starts it): made first so the JavaScript half
// holds it while the start runs.
napi_value SpawnHandle(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 3);
  napi_value bad;
  auto* h = sandbox_arg(env, a[0], &bad);
  if (!h) return bad;
  auto* eh = new ExecHandle;
  napi_valuetype t;
  napi_typeof(env, a[2], &t);
  if (t == napi_function) {
    napi_value name = string_value(env, "moat-output");
    if (napi_create_threadsafe_function(env, a[2], nullptr, name, 64, 1, nullptr, nullptr, nullptr, deliver_output,
                                        &eh->output) != napi_ok) {
      delete eh;
      napi_throw_error(env, "EIO", "spawn: cannot make the output channel");
      return nullptr;
    }
    napi_unref_threadsafe_function(env, eh->output);
  }
  napi_value ext;
  napi_create_external(env, eh, free_exec, nullptr, &ext);
  return ext;
}

ExecHandle* exec_arg(napi_env env, napi_value v, napi_value* bad) {
  auto* h = unwrap<ExecHandle>(env, v);
  if (h == nullptr) {
    *bad = rejected(env, EINVAL, "not a process handle");
    return nullptr;
  }
  return h;
}

// startSpawned(sandbox, execHandle, optionsJson) -> Promise<void>
napi_value StartSpawned(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 3);
  napi_value bad;
  auto* h = sandbox_arg(env, a[0], &bad);
  if (!h) return bad;
  auto* eh = exec_arg(env, a[1], &bad);
  if (!eh) return bad;
  auto j = std::make_shared<Json>();
  if (!parse_json(env, a[2], j.get())) return rejected(env, EINVAL, "spawn: options must be a JSON object");
  moat_sandbox* sb = h->sandbox;
  return start(env, [sb, j, eh] {
    Outcome out;
    Strings s;
    moat_exec_options o;
    if (!options_from(*j, s, &o, fill_exec_options, "spawn", out)) return out;
    moat_exec_callbacks cb;
    std::memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.user_data = eh;
    cb.on_stdout = [](void* u, const char* d, size_t n) { push_output(static_cast<ExecHandle*>(u), 1, d, n); };
    cb.on_stderr = [](void* u, const char* d, size_t n) { push_output(static_cast<ExecHandle*>(u), 2, d, n); };
    moat_error* err = nullptr;
    int rc = moat_exec_start(sb, &o, eh->output ? &cb : nullptr, &eh->exec, &err);
    if (rc != 0) out.fail_with(rc, err);
    return out;
  }, {a[0], a[1]});
}

ExecHandle* running_exec(napi_env env, napi_value v, napi_value* bad) {
  auto* h = exec_arg(env, v, bad);
  if (h && h->exec == nullptr) {
    *bad = rejected(env, ENOTCONN, "the process handle is closed");
    return nullptr;
  }
  return h;
}

// The same for a call on a started process.
template <class Call>
napi_value with_exec(napi_env env, napi_callback_info info, size_t nargs, Call call) {
  auto a = args_of(env, info, nargs);
  napi_value bad;
  auto* h = running_exec(env, a[0], &bad);
  if (!h) return bad;
  return call(a, h->exec);
}

napi_value WriteStdin(napi_env env, napi_callback_info info) {
  return with_exec(env, info, 2, [&](const std::vector<napi_value>& a, moat_exec* ex) -> napi_value {
    auto data = std::make_shared<std::string>();
    if (!get_bytes(env, a[1], data.get())) return rejected(env, EINVAL, "writeStdin: a Buffer or string is required");
    return start(env, [ex, data] {
      return status_call([&](moat_error** err) { return moat_exec_write_stdin(ex, data->data(), data->size(), err); });
    }, {a[0]});
  });
}

napi_value CloseStdin(napi_env env, napi_callback_info info) {
  return with_exec(env, info, 1, [&](const std::vector<napi_value>& a, moat_exec* ex) -> napi_value {
    return start(env, [ex] { return status_call([&](moat_error** err) { return moat_exec_close_stdin(ex, err); }); }, {a[0]});
  });
}

napi_value Signal(napi_env env, napi_callback_info info) {
  return with_exec(env, info, 2, [&](const std::vector<napi_value>& a, moat_exec* ex) -> napi_value {
    int64_t sig = 0;
    get_int64(env, a[1], &sig);
    return start(env, [ex, sig] {
      return status_call([&](moat_error** err) { return moat_exec_signal(ex, static_cast<int>(sig), err); });
    }, {a[0]});
  });
}

napi_value Resize(napi_env env, napi_callback_info info) {
  return with_exec(env, info, 3, [&](const std::vector<napi_value>& a, moat_exec* ex) -> napi_value {
    int64_t rows = 0, cols = 0;
    get_int64(env, a[1], &rows);
    get_int64(env, a[2], &cols);
    return start(env, [ex, rows, cols] {
      return status_call([&](moat_error** err) {
        return moat_exec_resize(ex, static_cast<uint16_t>(rows), static_cast<uint16_t>(cols), err);
      });
    }, {a[0]});
  });
}

// Synchronous and non-blocking: stops a wait in progress (its promise
// rejects with EINTR) and kills the command.
napi_value Cancel(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 1);
  auto* h = unwrap<ExecHandle>(env, a[0]);
  if (h && h->exec) moat_exec_cancel(h->exec);
  return undefined(env);
}

napi_value Pid(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 1);
  auto* h = unwrap<ExecHandle>(env, a[0]);
  return int_value(env, h && h->exec ? moat_exec_pid(h->exec) : 0);
}

// wait(exec, timeoutMs) -> status | null
napi_value Wait(napi_env env, napi_callback_info info) {
  return with_exec(env, info, 2, [&](const std::vector<napi_value>& a, moat_exec* ex) -> napi_value {
    int64_t ms = -1;
    get_int64(env, a[1], &ms);
    return start(env, [ex, ms] {
      Outcome out;
      int ended = 0;
      moat_exit_status st{};
      moat_error* err = nullptr;
      int rc = moat_exec_wait(ex, ms, &ended, &st, &err);
      if (rc != 0) {
        out.fail_with(rc, err);
        return out;
      }
      out.make = [ended, st](napi_env env) {
        if (!ended) {
          napi_value n;
          napi_get_null(env, &n);
          return n;
        }
        return status_object(env, st);
      };
      return out;
    }, {a[0]});
  });
}

// read(exec, timeoutMs) -> {kind: "stdout"|"stderr", data} | {kind: "exit", ...status} | null
napi_value Read(napi_env env, napi_callback_info info) {
  return with_exec(env, info, 2, [&](const std::vector<napi_value>& a, moat_exec* ex) -> napi_value {
    int64_t ms = -1;
    get_int64(env, a[1], &ms);
    return start(env, [ex, ms] {
      Outcome out;
      moat_exec_output piece{};
      moat_error* err = nullptr;
      int rc = moat_exec_read(ex, ms, &piece, &err);
      if (rc != 0) {
        out.fail_with(rc, err);
        return out;
      }
      std::string data = piece.data ? std::string(piece.data, piece.length) : std::string();
      moat_string_free(piece.data);
      int kind = piece.kind;
      moat_exit_status st = piece.status;
      out.make = [kind, data, st](napi_env env) {
        if (kind == MOAT_OUTPUT_NONE) {
          napi_value n;
          napi_get_null(env, &n);
          return n;
        }
        napi_value o;
        if (kind == MOAT_OUTPUT_EXIT) {
          o = status_object(env, st);
          napi_set_named_property(env, o, "kind", string_value(env, "exit"));
          return o;
        }
        napi_create_object(env, &o);
        napi_set_named_property(env, o, "kind", string_value(env, kind == MOAT_OUTPUT_STDOUT ? "stdout" : "stderr"));
        napi_set_named_property(env, o, "data", buffer_value(env, data));
        return o;
      };
      return out;
    }, {a[0]});
  });
}

// Frees the command now (killing it if it runs); later calls get ENOTCONN.
napi_value FreeExec(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 1);
  auto* h = unwrap<ExecHandle>(env, a[0]);
  if (h && h->exec) {
    moat_exec_free(h->exec);
    h->exec = nullptr;
  }
  return undefined(env);
}

// ---- files ----

napi_value ReadFile(napi_env env, napi_callback_info info) {
  return with_sandbox(env, info, 2, [&](const std::vector<napi_value>& a, moat_sandbox* sb) -> napi_value {
    std::string path;
    if (!get_string(env, a[1], &path)) return rejected(env, EINVAL, "readFile: the path must be a string");
    return start(env, [sb, path] {
      Outcome out;
      auto data = std::make_shared<std::string>();
      moat_error* err = nullptr;
      int rc = moat_sandbox_read_file(
          sb, path.c_str(),
          [](void* u, const char* d, size_t n) {
            static_cast<std::string*>(u)->append(d, n);
            return 0;
          },
          data.get(), &err);
      if (rc != 0) {
        out.fail_with(rc, err);
        return out;
      }
      out.make = [data](napi_env env) { return buffer_value(env, *data); };
      return out;
    }, {a[0]});
  });
}

// writeFile(handle, path, data, optionsJson)
napi_value WriteFile(napi_env env, napi_callback_info info) {
  return with_sandbox(env, info, 4, [&](const std::vector<napi_value>& a, moat_sandbox* sb) -> napi_value {
    std::string path;
    auto data = std::make_shared<std::string>();
    Json j;
    if (!get_string(env, a[1], &path) || !get_bytes(env, a[2], data.get()) || !parse_json(env, a[3], &j))
      return rejected(env, EINVAL, "writeFile: a path, a Buffer or string, and options are required");
    moat_write_file_options o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.mode = number<uint32_t>(j, "mode");
    o.uid = j.contains("uid") ? number<int64_t>(j, "uid") : -1;
    o.gid = j.contains("gid") ? number<int64_t>(j, "gid") : -1;
    o.append = number<int>(j, "append");
    o.exclusive = number<int>(j, "exclusive");
    return start(env, [sb, path, data, o] {
      return status_call([&](moat_error** err) {
        return moat_sandbox_write_file(sb, path.c_str(), data->data(), data->size(), &o, err);
      });
    }, {a[0]});
  });
}

// fileOp(handle, op, a, b, flag, mode): the small file calls by name.
napi_value FileOp(napi_env env, napi_callback_info info) {
  return with_sandbox(env, info, 6, [&](const std::vector<napi_value>& a, moat_sandbox* sb) -> napi_value {
    std::string op, p1, p2;
    if (!get_string(env, a[1], &op) || !get_string(env, a[2], &p1)) return rejected(env, EINVAL, "a path is required");
    get_string(env, a[3], &p2);
    int64_t flag = 0, mode = 0;
    get_int64(env, a[4], &flag);
    get_int64(env, a[5], &mode);
    return start(env, [sb, op, p1, p2, flag, mode] {
      int f = static_cast<int>(flag);
      auto m = static_cast<uint32_t>(mode);
      if (op == "stat") return string_call([&](char** o, moat_error** e) { return moat_sandbox_stat(sb, p1.c_str(), f, o, e); });
      if (op == "list") return string_call([&](char** o, moat_error** e) { return moat_sandbox_list_dir(sb, p1.c_str(), o, e); });
      return status_call([&](moat_error** e) {
        if (op == "mkdir") return moat_sandbox_mkdir(sb, p1.c_str(), f, m, e);
        if (op == "remove") return moat_sandbox_remove(sb, p1.c_str(), f, e);
        if (op == "rename") return moat_sandbox_rename(sb, p1.c_str(), p2.c_str(), e);
        if (op == "chmod") return moat_sandbox_chmod(sb, p1.c_str(), m, e);
        if (op == "copyIn") return moat_sandbox_copy_in(sb, p1.c_str(), p2.c_str(), f, e);
        if (op == "copyOut") return moat_sandbox_copy_out(sb, p1.c_str(), p2.c_str(), f, e);
        return EINVAL;
      });
    }, {a[0]});
  });
}

// ---- the manager, images, volumes: calls by id or name ----

// manager(op, a, b) for the calls that take strings and give JSON or nothing.
napi_value Manager(napi_env env, napi_callback_info info) {
  auto a = args_of(env, info, 3);
  std::string op, p1, p2;
  if (!get_string(env, a[0], &op)) return rejected(env, EINVAL, "no operation");
  get_string(env, a[1], &p1);
  get_string(env, a[2], &p2);
  return start(env, [op, p1, p2] {
    const char* c1 = p1.c_str();
    if (op == "inspect") return string_call([&](char** o, moat_error** e) { return moat_inspect_sandbox(c1, o, e); });
    if (op == "list") {
      auto labels = Json::parse(p1.empty() ? "[]" : p1, nullptr, false);
      Strings s;
      Json wrap = {{"l", labels.is_array() ? labels : Json::array()}};
      const char* const* l = s.list(wrap, "l");
      return string_call([&](char** o, moat_error** e) { return moat_list_sandboxes(l, o, e); });
    }
    if (op == "define") {
      Json j = Json::parse(p1, nullptr, false);
      Strings s;
      moat_sandbox_options opts;
      fill_sandbox_options(j.is_object() ? j : Json::object(), s, &opts);
      return string_call([&](char** o, moat_error** e) { return moat_define_sandbox(&opts, o, e); });
    }
    if (op == "images") return string_call([&](char** o, moat_error** e) { return moat_image_list(o, e); });
    if (op == "inspectImage") return string_call([&](char** o, moat_error** e) { return moat_image_inspect(c1, o, e); });
    if (op == "pull")
      return string_call([&](char** o, moat_error** e) {
        Json j = Json::parse(p2.empty() ? "{}" : p2, nullptr, false);
        moat_pull_options po;
        std::memset(&po, 0, sizeof po);
        po.struct_size = sizeof po;
        po.insecure_registry = j.is_object() ? number<int>(j, "insecureRegistry") : 0;
        return moat_image_pull(c1, &po, o, e);
      });
    if (op == "volumes") return string_call([&](char** o, moat_error** e) { return moat_volume_list(o, e); });
    if (op == "createVolume") return string_call([&](char** o, moat_error** e) { return moat_volume_create(c1, nullptr, o, e); });
    if (op == "doctor") return string_call([&](char** o, moat_error** e) { return moat_check_runtime(o, e); });
    // Disk snapshots (docs/snapshots.md): p1 the sandbox or snapshot, p2 the options as JSON.
    if (op == "snapshots") return string_call([&](char** o, moat_error** e) { return moat_snapshot_list(o, e); });
    if (op == "inspectSnapshot")
      return string_call([&](char** o, moat_error** e) { return moat_snapshot_inspect(c1, o, e); });
    if (op == "createSnapshot") {
      Json j = Json::parse(p2.empty() ? "{}" : p2, nullptr, false);
      if (!j.is_object()) j = Json::object();
      Strings s;
      std::string name = j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>() : "";
      const char* const* labels = s.list(j, "labels");
      int64_t freeze = number<int64_t>(j, "freezeTimeoutMs");
      return string_call([&](char** o, moat_error** e) {
        return moat_snapshot_create(c1, name.c_str(), labels, freeze, o, e);
      });
    }
    // A sandbox's root from its disks: p1 the sandbox, p2 a path or options.
    if (op == "diff") return string_call([&](char** o, moat_error** e) { return moat_sandbox_diff(c1, o, e); });
    if (op == "commit") {
      Json j = Json::parse(p2.empty() ? "{}" : p2, nullptr, false);
      if (!j.is_object()) j = Json::object();
      Strings s;
      std::string ref = j.contains("ref") && j["ref"].is_string() ? j["ref"].get<std::string>() : "";
      moat_commit_options co;
      std::memset(&co, 0, sizeof co);
      co.struct_size = sizeof co;
      co.changes = s.list(j, "changes");
      co.env = s.list(j, "env");
      co.workdir = s.add(j, "workdir");
      co.message = s.add(j, "message");
      return string_call([&](char** o, moat_error** e) { return moat_sandbox_commit(c1, ref.c_str(), &co, o, e); });
    }
    if (op == "fork") {
      Json j = Json::parse(p2.empty() ? "{}" : p2, nullptr, false);
      if (!j.is_object()) j = Json::object();
      std::string prefix = j.contains("namePrefix") && j["namePrefix"].is_string() ? j["namePrefix"].get<std::string>() : "";
      int count = number<int>(j, "count");
      int no_start = number<int>(j, "noStart");
      bool memory = j.contains("memory") && j["memory"].is_boolean() && j["memory"].get<bool>();
      return string_call([&](char** o, moat_error** e) {
        const char* pre = prefix.empty() ? nullptr : prefix.c_str();
        return memory ? moat_sandbox_fork_warm(c1, count, pre, no_start, o, e)
                      : moat_sandbox_fork(c1, count, pre, no_start, o, e);
      });
    }
    if (op == "logs") {
      // What a sandbox's logs hold now: {"console": text, "events": [...]}.
      return string_call([&](char** o, moat_error** e) {
        struct Collected {
          std::string console;
          Json events = Json::array();
        } got;
        moat_log_callbacks cb;
        std::memset(&cb, 0, sizeof cb);
        cb.struct_size = sizeof cb;
        cb.user_data = &got;
        cb.on_console = [](void* u, const char* d, size_t n) { static_cast<Collected*>(u)->console.append(d, n); };
        cb.on_exec_event = [](void* u, const char* event) {
          static_cast<Collected*>(u)->events.push_back(Json::parse(event, nullptr, false));
        };
        int rc = moat_sandbox_logs(c1, &cb, 0, e);
        if (rc != 0) return rc;
        Json all = {{"console", got.console}, {"events", got.events}};
        std::string text = all.dump(-1, ' ', false, Json::error_handler_t::replace);
        *o = static_cast<char*>(std::malloc(text.size() + 1));
        if (*o == nullptr) return ENOMEM;
        std::memcpy(*o, text.c_str(), text.size() + 1);
        return 0;
      });
    }
    if (op == "stats") return string_call([&](char** o, moat_error** e) { return moat_stats_sandbox(c1, o, e); });
    if (op == "events") {
      // The events kept after sequence number p1, as one JSON array.
      return string_call([&](char** o, moat_error** e) {
        std::string all = "[";
        uint64_t after = p1.empty() ? 0 : std::stoull(p1);
        int rc = moat_watch_sandbox_events(
            after, 0, nullptr,
            [](void* u, const char* event) {
              auto* text = static_cast<std::string*>(u);
              if (text->size() > 1) *text += ',';
              *text += event;
              return 0;
            },
            &all, e);
        if (rc != 0) return rc;
        *o = static_cast<char*>(std::malloc(all.size() + 2));
        if (*o == nullptr) return ENOMEM;
        std::memcpy(*o, all.data(), all.size());
        (*o)[all.size()] = ']';
        (*o)[all.size() + 1] = '\0';
        return 0;
      });
    }
    return status_call([&](moat_error** e) {
      if (op == "start") return moat_start_sandbox(c1, e);
      if (op == "restart") return moat_restart_sandbox(c1, 0, e);
      if (op == "stop") return moat_stop_sandbox(c1, 0, e);
      if (op == "pause") return moat_pause_sandbox(c1, e);
      if (op == "pauseToDisk") return moat_pause_sandbox_to_disk(c1, e);
      if (op == "resume") return moat_resume_sandbox(c1, e);
      if (op == "remove") return moat_remove_sandbox(c1, 0, e);
      if (op == "forceRemove") return moat_remove_sandbox(c1, 1, e);
      if (op == "removeImage") return moat_image_remove(c1, e);
      if (op == "removeVolume") return moat_volume_remove(c1, 0, e);
      if (op == "removeSnapshot") return moat_snapshot_remove(c1, e);
      if (op == "export") {
        int fd = ::open(p2.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return errno;
        int rc = moat_sandbox_export_to_fd(c1, fd, e);
        ::close(fd);
        return rc;
      }
      return EINVAL;
    });
  });
}

napi_value Version(napi_env env, napi_callback_info) { return string_value(env, moat_version()); }

napi_value Init(napi_env env, napi_value exports) {
  const std::pair<const char*, napi_callback> fns[] = {
      {"version", Version},         {"create", Create},           {"open", Open},
      {"sandboxId", SandboxId},     {"close", Close},             {"info", Info},
      {"stats", Stats},             {"stop", Stop},               {"updateNetwork", UpdateNetwork},
      {"exec", Exec},               {"spawnHandle", SpawnHandle}, {"startSpawned", StartSpawned},
      {"writeStdin", WriteStdin},   {"closeStdin", CloseStdin},   {"signal", Signal},
      {"resize", Resize},           {"cancel", Cancel},           {"pid", Pid},
      {"wait", Wait},               {"read", Read},               {"freeExec", FreeExec},
      {"readFile", ReadFile},       {"writeFile", WriteFile},     {"fileOp", FileOp},
      {"manager", Manager},         {"pause", Pause},             {"resume", Resume},
  };
  for (const auto& [name, fn] : fns) {
    napi_value f;
    CHECK(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f));
    CHECK(env, napi_set_named_property(env, exports, name, f));
  }
  return exports;
}

}  // namespace

NAPI_MODULE(moat, Init)
