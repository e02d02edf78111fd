'use strict';
// moat for Node: Promise API over libmoat's C ABI through an N-API addon
// (src/addon.cpp). No daemon: this process is its sandboxes' client.
//
//   const moat = require('@moat/sdk');
//   await using sb = await moat.Sandbox.create({ memoryMib: 256 });
//   const r = await sb.exec(['sh', '-c', 'echo hi']);   // r.exitCode, r.stdout (Buffer)
//
// The addon is found through $MOAT_NODE_ADDON, else build/moat.node beside
// this package, else the install's lib/node/moat.node.
const path = require('path');
const fs = require('fs');

function loadAddon() {
  const candidates = [];
  if (process.env.MOAT_NODE_ADDON) candidates.push(process.env.MOAT_NODE_ADDON);
  else {
    candidates.push(path.join(__dirname, '..', 'build', 'moat.node'));
    candidates.push(path.join(__dirname, '..', '..', '..', 'lib', 'node', 'moat.node'));
  }
  const errors = [];
  for (const c of candidates.map((p) => path.resolve(p))) {
    if (!fs.existsSync(c)) { errors.push(`${c}: missing`); continue; }
    try { return require(c); } catch (e) { errors.push(`${c}: ${e.message}`); }
  }
  throw new Error(`moat: the native addon was not found (set MOAT_NODE_ADDON): ${errors.join('; ')}`);
}
const native = loadAddon();

// ---- errors: one class per kind (moat/result.h's ErrorKind) ----

class MoatError extends Error {
  constructor(message, kind = 'unknown', errno = 0) {
    super(message);
    this.name = 'MoatError';
    this.kind = kind;
    this.errno = errno;
  }
}
const KINDS = {
  not_found: 'NotFoundError', already_exists: 'AlreadyExistsError', invalid_argument: 'InvalidArgumentError',
  busy: 'BusyError', not_running: 'NotRunningError', timed_out: 'TimedOutError', interrupted: 'InterruptedError',
  permission_denied: 'PermissionDeniedError', resource_exhausted: 'ResourceExhaustedError',
  unsupported: 'UnsupportedError', protocol: 'ProtocolError', io: 'IoError',
};
const errorClasses = {};
for (const [kind, name] of Object.entries(KINDS)) {
  errorClasses[name] = { [name]: class extends MoatError {
    constructor(message, errno = 0) { super(message, kind, errno); this.name = name; }
  } }[name];
}
class CommandTimedOutError extends errorClasses.TimedOutError {
  constructor(message, result) { super(message, 110); this.name = 'CommandTimedOutError'; this.result = result; }
}

function typed(e) {
  if (e instanceof MoatError || !(e instanceof Error) || e.kind === undefined) return e;
  const cls = errorClasses[KINDS[e.kind]] || MoatError;
  const out = cls === MoatError ? new MoatError(e.message, e.kind, e.errno) : new cls(e.message, e.errno);
  return out;
}
async function call(promise) {
  try { return await promise; } catch (e) { throw typed(e); }
}
function invalid(message) { return new errorClasses.InvalidArgumentError(message, 22); }

// ---- options ----

const SANDBOX_OPTIONS = new Set(['image', 'pull', 'insecureRegistry', 'platform', 'name', 'labels', 'command',
  'entrypoint', 'volumes', 'tmpfs', 'network', 'cpus', 'cpuWeight', 'ioWeight', 'memoryMib', 'diskSizeMib', 'accel', 'hostname',
  'idleTimeoutMs', 'maxDurationMs', 'bootTimeoutMs', 'stopTimeoutMs', 'autoRemove', 'ephemeral', 'rootfsDir',
  'rootfsImage', 'writableRoot', 'logMaxBytes', 'secrets', 'stopOnSecretViolation', 'fromSnapshot', 'cold', 'keep']);

function sandboxOptionsJson(o = {}) {
  if (o === null || typeof o !== 'object') throw invalid('sandbox options must be an object');
  const unknown = Object.keys(o).filter((k) => !SANDBOX_OPTIONS.has(k));
  if (unknown.length) throw invalid(`unknown sandbox option(s): ${unknown.sort().join(', ')}`);
  const j = { ...o };
  delete j.keep;
  const pulls = { missing: 0, always: 1, never: 2 };
  if (o.pull !== undefined) {
    if (!(o.pull in pulls)) throw invalid(`pull: expected missing, always or never, not ${o.pull}`);
    j.pull = pulls[o.pull];
  }
  const accels = { auto: 0, kvm: 1, tcg: 2 };
  if (o.accel !== undefined) {
    if (!(o.accel in accels)) throw invalid(`accel: expected auto, kvm or tcg, not ${o.accel}`);
    j.accel = accels[o.accel];
  }
  for (const k of ['cpus', 'cpuWeight', 'ioWeight', 'memoryMib', 'diskSizeMib', 'idleTimeoutMs', 'maxDurationMs',
    'bootTimeoutMs', 'stopTimeoutMs', 'logMaxBytes']) {
    if (o[k] !== undefined && !(Number.isInteger(o[k]) && o[k] >= 0)) {
      throw invalid(`${k}: expected a whole number >= 0, not ${o[k]}`);
    }
  }
  for (const k of ['insecureRegistry', 'autoRemove', 'ephemeral', 'writableRoot', 'cold']) if (o[k] !== undefined) j[k] = o[k] ? 1 : 0;
  if (o.labels !== undefined) j.labels = Object.entries(o.labels).map(([k, v]) => `${k}=${v}`);
  if (o.volumes !== undefined && !Array.isArray(o.volumes)) j.volumes = Object.entries(o.volumes).map(([k, v]) => `${k}:${v}`);
  if (o.network !== undefined) j.network = typeof o.network === 'string' ? o.network : JSON.stringify(o.network);
  if (o.secrets !== undefined) {
    // { 'NAME@HOST[,HOST][:body,query,http]': value }: the guest sees a placeholder (docs/tls.md).
    if (o.secrets === null || typeof o.secrets !== 'object') throw invalid('secrets: expected { "NAME@host": value }');
    j.secrets = Object.keys(o.secrets);
    j.secretValues = Object.values(o.secrets).map(String);
  }
  if (o.stopOnSecretViolation !== undefined) j.stopOnSecretViolation = o.stopOnSecretViolation ? 1 : 0;
  for (const k of ['command', 'entrypoint', 'volumes', 'tmpfs']) {
    if (j[k] !== undefined && !(Array.isArray(j[k]) && j[k].every((s) => typeof s === 'string'))) {
      throw invalid(`${k}: expected an array of strings`);
    }
  }
  return JSON.stringify(j);
}

function execOptionsJson(argv, o = {}) {
  if (typeof argv === 'string') argv = ['sh', '-c', argv];
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((s) => typeof s === 'string')) {
    throw invalid('exec: argv must be a non-empty array of strings (or one shell string)');
  }
  const j = { argv };
  if (o.env !== undefined) j.env = Array.isArray(o.env) ? o.env : Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
  if (o.cwd !== undefined) j.cwd = o.cwd;
  if (o.user !== undefined) j.user = String(o.user);
  if (o.tty) j.tty = 1;
  if (o.rows) j.rows = o.rows;
  if (o.cols) j.cols = o.cols;
  if (o.stdin) j.stdin = 1;
  if (o.timeoutMs !== undefined) {
    if (!(Number.isInteger(o.timeoutMs) && o.timeoutMs >= 0)) throw invalid('timeoutMs: expected a whole number >= 0');
    j.timeoutMs = o.timeoutMs;
  }
  return JSON.stringify(j);
}

// How a command ended (exitCode as a shell reports it: 128 + signal when
// a signal ended it), with what it wrote when the call collected it.
function result(st, stdout, stderr) {
  const r = { exitCode: st.signal ? 128 + st.signal : st.code, signal: st.signal, timedOut: st.timedOut };
  if (stdout !== undefined) Object.assign(r, { stdout, stderr });
  return r;
}

// Calls on one sandbox handle run one at a time (libmoat's rule for a
// handle); commands started with spawn() have connections of their own.
class Queue {
  constructor() { this.tail = Promise.resolve(); }
  run(fn) {
    const next = this.tail.then(fn, fn);
    this.tail = next.then(() => {}, () => {});
    return next;
  }
}

class Process {
  constructor(handle, errorBox) {
    this._h = handle;
    this._error = errorBox;
    this._inflight = new Set();  // calls on the handle not settled yet: close() waits for them
    this.result = null;
  }
  get pid() { return this._h ? native.pid(this._h) : 0; }
  _call(fn) {
    if (!this._h) return Promise.reject(new errorClasses.NotRunningError('the process handle is closed', 107));
    const p = call(fn(this._h));
    this._inflight.add(p);
    const done = () => this._inflight.delete(p);
    p.then(done, done);
    return p;
  }
  writeStdin(data) { return this._call((h) => native.writeStdin(h, data)); }
  closeStdin() { return this._call((h) => native.closeStdin(h)); }
  signal(sig) {
    const n = typeof sig === 'string' ? require('os').constants.signals[sig] : sig;
    if (!Number.isInteger(n)) return Promise.reject(invalid(`signal: unknown signal ${sig}`));
    return this._call((h) => native.signal(h, n));
  }
  kill() { return this.signal('SIGKILL'); }
  resize(rows, cols) { return this._call((h) => native.resize(h, rows, cols)); }
  // Delivers output to the callbacks until the command ends; null when
  // timeoutMs passed first. A callback that threw killed the command: its
  // error is thrown here.
  async wait(timeoutMs = -1) {
    if (this.result) return this.result;
    let st;
    try {
      st = await this._call((h) => native.wait(h, timeoutMs));
    } catch (e) {
      if (this._error.error) throw this._error.error;
      throw e;
    }
    if (this._error.error) throw this._error.error;
    if (st === null) return null;
    this.result = result(st);
    return this.result;
  }
  // Output as it comes, for a command spawned without callbacks: yields
  // { stream: 'stdout' | 'stderr', data: Buffer }; the result is in
  // `result` when the loop ends. The guest sends more only as it is read.
  async *output() {
    while (!this.result) {
      const p = await this._call((h) => native.read(h, -1));
      if (p.kind === 'exit') {
        this.result = result(p);
        return;
      }
      yield { stream: p.kind, data: p.data };
    }
  }
  // Kills the command if it still runs, waits for calls in flight, and
  // frees the handle.
  async close() {
    if (!this._h) return;
    const h = this._h;
    if (!this.result) native.cancel(h);
    this._h = null;
    await Promise.allSettled([...this._inflight]);
    native.freeExec(h);
  }
  async [Symbol.asyncDispose]() { await this.close(); }
}

class Files {
  constructor(sb) { this._sb = sb; }
  _op(op, a, b = '', flag = 0, mode = 0) {
    return this._sb._run((h) => native.fileOp(h, op, a, b, flag ? 1 : 0, mode));
  }
  read(path) { return this._sb._run((h) => native.readFile(h, path)); }
  async readText(path) { return (await this.read(path)).toString('utf8'); }
  write(path, data, { mode = 0, append = false, exclusive = false, uid, gid } = {}) {
    const o = { mode, append: append ? 1 : 0, exclusive: exclusive ? 1 : 0 };
    if (uid !== undefined) o.uid = uid;
    if (gid !== undefined) o.gid = gid;
    return this._sb._run((h) => native.writeFile(h, path, data, JSON.stringify(o)));
  }
  async stat(path, { followSymlinks = false } = {}) { return JSON.parse(await this._op('stat', path, '', followSymlinks)); }
  async list(path) { return JSON.parse(await this._op('list', path)); }
  async exists(path) {
    try { await this.stat(path); return true; } catch (e) { if (e.kind === 'not_found') return false; throw e; }
  }
  mkdir(path, { parents = false, mode = 0o755 } = {}) { return this._op('mkdir', path, '', parents, mode); }
  remove(path, { recursive = false } = {}) { return this._op('remove', path, '', recursive); }
  rename(from, to) { return this._op('rename', from, to); }
  chmod(path, mode) { return this._op('chmod', path, '', 0, mode); }
  copyIn(hostPath, guestPath, { preserveOwner = false } = {}) { return this._op('copyIn', hostPath, guestPath, preserveOwner); }
  copyOut(guestPath, hostPath, { preserveOwner = false } = {}) { return this._op('copyOut', guestPath, hostPath, preserveOwner); }
}

class Sandbox {
  constructor(handle, owned) {
    this._h = handle;
    this._owned = owned;
    this._queue = new Queue();
    this.id = native.sandboxId(handle);
    this.files = new Files(this);
  }
  // Boots a sandbox. Unless `keep: true` it is ephemeral and removed when
  // it stops: close() (or `await using`'s end, or this process exiting)
  // ends it.
  static async create(options = {}) {
    const o = { ...options };
    if (!o.keep) {
      if (o.ephemeral === undefined) o.ephemeral = true;
      if (o.autoRemove === undefined) o.autoRemove = true;
    }
    const h = await call(native.create(sandboxOptionsJson(o)));
    return new Sandbox(h, Boolean(o.ephemeral));
  }
  static async open(idOrName) { return new Sandbox(await call(native.open(String(idOrName))), false); }

  _run(fn) {
    return call(this._queue.run(() => {
      if (!this._h) throw new errorClasses.NotRunningError(`sandbox ${this.id}: the handle is closed`, 107);
      return fn(this._h);
    }));
  }
  async info() { return JSON.parse(await this._run((h) => native.info(h))); }
  async stats() { return JSON.parse(await this._run((h) => native.stats(h))); }
  // A disk snapshot of this sandbox (frozen for the copy while it runs);
  // Sandbox.create({ fromSnapshot: name }) starts from it.
  snapshot(name, options = {}) { return createSnapshot(this.id, name, options); }
  // New sandboxes from a consistent copy of this one's disk: their records.
  fork(options = {}) { return forkSandbox(this.id, options); }
  // What it changed in its root: [{ kind: 'A'|'C'|'D', path }].
  diff() { return diffSandbox(this.id); }
  // Its root as a tar, written to the host file `path`.
  export(path) { return exportSandbox(this.id, path); }
  // Its changes as a new image named `ref` ({ changes, env, workdir, message }).
  commit(ref, options = {}) { return commitSandbox(this.id, ref, options); }
  updateNetwork(rules, mode) {
    const policy = { rules };
    if (mode !== undefined) policy.mode = mode;
    return this._run((h) => native.updateNetwork(h, JSON.stringify(policy)));
  }
  // Runs a command to its end: { exitCode, signal, timedOut, stdout, stderr }.
  // With timeoutMs the command is killed when it passes and
  // CommandTimedOutError (holding what it wrote) is thrown.
  async exec(argv, options = {}) {
    const json = execOptionsJson(argv, options);
    const st = await this._run((h) => native.exec(h, json, options.stdin === undefined ? undefined : options.stdin));
    const r = result(st, st.stdout, st.stderr);
    if (r.timedOut) throw new CommandTimedOutError(`command timed out after ${options.timeoutMs} ms and was killed`, r);
    return r;
  }
  // Starts a command in the background. With onStdout/onStderr its output
  // goes to them while wait() runs (a callback that throws kills the
  // command); without, read it with output().
  async spawn(argv, options = {}) {
    const json = execOptionsJson(argv, { ...options, stdin: options.stdin ? 1 : 0 });
    const errorBox = { error: null };
    let proc = null;
    let onOutput;
    if (options.onStdout || options.onStderr) {
      onOutput = (kind, data) => {
        if (errorBox.error) return;
        const fn = kind === 1 ? options.onStdout : options.onStderr;
        try {
          if (fn) fn(data);
        } catch (e) {
          errorBox.error = e;
          if (proc && proc._h) native.cancel(proc._h);
        }
      };
    }
    return this._run(async (h) => {
      const ph = native.spawnHandle(h, undefined, onOutput);
      proc = new Process(ph, errorBox);
      await native.startSpawned(h, ph, json);
      return proc;
    });
  }
  // Output as it comes: yields { stream, data }.
  async *stream(argv, options = {}) {
    const p = await this.spawn(argv, options);
    try {
      yield* p.output();
    } finally {
      await p.close();
    }
  }
  stop(timeoutMs = 0) { return this._run((h) => native.stop(h, timeoutMs)); }
  // vCPUs stopped where they are, memory kept; resume runs them again.
  // { toDisk: true }: the whole VM saved to disk and ended; resume restores
  // it and connects this handle to it again.
  pause(options = {}) { return this._run((h) => native.pause(h, options.toDisk ? 1 : 0)); }
  resume() { return this._run((h) => native.resume(h)); }
  // Closes the handle; an ephemeral sandbox (create without keep) is
  // stopped and removed first. Waits for calls already running on it.
  async close() {
    await this._queue.run(async () => {
      if (!this._h) return;
      if (this._owned) await native.stop(this._h, 0).catch(() => {});
      native.close(this._h);
      this._h = null;
    });
  }
  async [Symbol.asyncDispose]() { await this.close(); }
}

// ---- the manager, images, volumes ----

const manager = (op, a = '', b = '') => call(native.manager(op, a, b));
const json = async (p) => JSON.parse(await p);

function createSnapshot(sandbox, name, { labels, freezeTimeoutMs } = {}) {
  if (typeof name !== 'string' || name === '') return Promise.reject(invalid('snapshot: a name is required'));
  const j = { name };
  if (labels !== undefined) j.labels = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  if (freezeTimeoutMs !== undefined) {
    if (!(Number.isInteger(freezeTimeoutMs) && freezeTimeoutMs >= 0)) {
      return Promise.reject(invalid(`freezeTimeoutMs: expected a whole number >= 0, not ${freezeTimeoutMs}`));
    }
    j.freezeTimeoutMs = freezeTimeoutMs;
  }
  return json(manager('createSnapshot', String(sandbox), JSON.stringify(j)));
}

const diffSandbox = (sandbox) => json(manager('diff', String(sandbox)));
function exportSandbox(sandbox, path) {
  if (typeof path !== 'string' || path === '') return Promise.reject(invalid('export: a host path is required'));
  return manager('export', String(sandbox), path);
}
function commitSandbox(sandbox, ref, { changes, env, workdir, message } = {}) {
  if (typeof ref !== 'string' || ref === '') return Promise.reject(invalid('commit: a reference is required'));
  const j = { ref };
  if (changes !== undefined) j.changes = changes;
  if (env !== undefined) j.env = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  if (workdir !== undefined) j.workdir = workdir;
  if (message !== undefined) j.message = message;
  return json(manager('commit', String(sandbox), JSON.stringify(j)));
}

function forkSandbox(sandbox, { count = 1, namePrefix, start = true, memory = false } = {}) {
  if (!(Number.isInteger(count) && count >= 1)) return Promise.reject(invalid(`count: expected a whole number >= 1, not ${count}`));
  if (typeof memory !== 'boolean') return Promise.reject(invalid(`memory: expected true or false, not ${memory}`));
  const j = { count, noStart: start ? 0 : 1, memory };
  if (namePrefix !== undefined) j.namePrefix = String(namePrefix);
  return json(manager('fork', String(sandbox), JSON.stringify(j)));
}

module.exports = {
  Sandbox, Process, Files, MoatError, CommandTimedOutError, ...errorClasses,
  version: () => native.version(),
  doctor: () => json(manager('doctor')),
  defineSandbox: (options = {}) => json(manager('define', sandboxOptionsJson(options))),
  startSandbox: (id) => manager('start', String(id)),
  stopSandbox: (id) => manager('stop', String(id)),
  restartSandbox: (id) => manager('restart', String(id)),
  pauseSandbox: (id, options = {}) => manager(options.toDisk ? 'pauseToDisk' : 'pause', String(id)),
  resumeSandbox: (id) => manager('resume', String(id)),
  sandboxStats: (id) => json(manager('stats', String(id))),
  events: ({ after = 0 } = {}) => json(manager('events', String(after))),
  // What the sandbox's logs hold now: { console: string, events: [...] } (exec history).
  sandboxLogs: (id) => json(manager('logs', String(id))),
  removeSandbox: (id, { force = false } = {}) => manager(force ? 'forceRemove' : 'remove', String(id)),
  inspectSandbox: (id) => json(manager('inspect', String(id))),
  listSandboxes: (labels) => json(manager('list', JSON.stringify(Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`)))),
  pullImage: (ref, { insecureRegistry = false } = {}) => json(manager('pull', ref, JSON.stringify({ insecureRegistry: insecureRegistry ? 1 : 0 }))),
  listImages: () => json(manager('images')),
  inspectImage: (ref) => json(manager('inspectImage', ref)),
  removeImage: (ref) => manager('removeImage', ref),
  createVolume: (name) => json(manager('createVolume', name)),
  listVolumes: () => json(manager('volumes')),
  removeVolume: (name) => manager('removeVolume', name),
  createSnapshot,
  listSnapshots: () => json(manager('snapshots')),
  inspectSnapshot: (idOrName) => json(manager('inspectSnapshot', String(idOrName))),
  removeSnapshot: (idOrName) => manager('removeSnapshot', String(idOrName)),
  forkSandbox,
  diffSandbox,
  exportSandbox,
  commitSandbox,
};
