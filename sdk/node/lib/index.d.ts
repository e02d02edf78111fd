// Types of the moat Node SDK (lib/index.js).

export interface SandboxOptions {
  image?: string;
  pull?: 'missing' | 'always' | 'never';
  insecureRegistry?: boolean;
  platform?: string;
  name?: string;
  labels?: Record<string, string>;
  command?: string[];
  entrypoint?: string[];
  /** "SOURCE:/guest[:ro][:size=1g]" strings, or { source: guestPath }. */
  volumes?: string[] | Record<string, string>;
  /** "/guest[:SIZE]" */
  tmpfs?: string[];
  /** docs/network.md / docs/json.md: { mode, rules: [{ allow, rule }], hosts, ports, ... } */
  network?: Record<string, unknown> | string;
  cpus?: number;
  cpuWeight?: number;
  ioWeight?: number;
  memoryMib?: number;
  diskSizeMib?: number;
  accel?: 'auto' | 'kvm' | 'tcg';
  hostname?: string;
  idleTimeoutMs?: number;
  maxDurationMs?: number;
  bootTimeoutMs?: number;
  stopTimeoutMs?: number;
  autoRemove?: boolean;
  ephemeral?: boolean;
  rootfsDir?: string;
  rootfsImage?: string;
  /** Start from this disk snapshot (its root and files; no image then). */
  fromSnapshot?: string;
  /** Boot afresh rather than restore the warm-start template (docs/sandboxes.md). */
  cold?: boolean;
  writableRoot?: boolean;
  logMaxBytes?: number;
  /** { 'NAME@HOST[,HOST][:body,query,http]': value }: the guest's $NAME is a placeholder (docs/tls.md). */
  secrets?: Record<string, string>;
  stopOnSecretViolation?: boolean;
  /** Keep the sandbox after close() (default: ephemeral and auto-removed). */
  keep?: boolean;
}

export interface ExecOptions {
  env?: Record<string, string> | string[];
  cwd?: string;
  user?: string | number;
  tty?: boolean;
  rows?: number;
  cols?: number;
  /** exec(): the bytes given to the command's stdin. spawn(): keep stdin open for writeStdin(). */
  stdin?: Buffer | string | boolean;
  /** The command is killed when this passes (CommandTimedOutError from exec()). */
  timeoutMs?: number;
}

export interface SpawnOptions extends ExecOptions {
  stdin?: boolean;
  onStdout?: (data: Buffer) => void;
  onStderr?: (data: Buffer) => void;
}

export interface ExitResult {
  /** As a shell reports it: 128 + signal when a signal ended the command. */
  exitCode: number;
  signal: number;
  timedOut: boolean;
}

export interface ExecResult extends ExitResult {
  stdout: Buffer;
  stderr: Buffer;
}

export interface OutputPiece {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

export interface FileInfo {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  mtime_ns: number;
  target?: string;
}

export interface DirEntry extends FileInfo {
  name: string;
}

export declare class Process {
  readonly pid: number;
  result: ExitResult | null;
  writeStdin(data: Buffer | string): Promise<void>;
  closeStdin(): Promise<void>;
  signal(sig: number | NodeJS.Signals): Promise<void>;
  kill(): Promise<void>;
  resize(rows: number, cols: number): Promise<void>;
  /** null when timeoutMs passed first. */
  wait(timeoutMs?: number): Promise<ExitResult | null>;
  output(): AsyncGenerator<OutputPiece, void, undefined>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export declare class Files {
  read(path: string): Promise<Buffer>;
  readText(path: string): Promise<string>;
  write(path: string, data: Buffer | string,
        options?: { mode?: number; append?: boolean; exclusive?: boolean; uid?: number; gid?: number }): Promise<void>;
  stat(path: string, options?: { followSymlinks?: boolean }): Promise<FileInfo>;
  list(path: string): Promise<DirEntry[]>;
  exists(path: string): Promise<boolean>;
  mkdir(path: string, options?: { parents?: boolean; mode?: number }): Promise<void>;
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  copyIn(hostPath: string, guestPath: string, options?: { preserveOwner?: boolean }): Promise<void>;
  copyOut(guestPath: string, hostPath: string, options?: { preserveOwner?: boolean }): Promise<void>;
}

/** A sandbox's record, as `moat inspect` prints it (docs/json.md). */
export type SandboxInfo = Record<string, any> & { id: string; name: string; state: string };

export declare class Sandbox {
  static create(options?: SandboxOptions): Promise<Sandbox>;
  static open(idOrName: string): Promise<Sandbox>;
  readonly id: string;
  readonly files: Files;
  info(): Promise<SandboxInfo>;
  stats(): Promise<Record<string, number | string>>;
  snapshot(name: string, options?: SnapshotOptions): Promise<SnapshotInfo>;
  fork(options?: ForkOptions): Promise<SandboxInfo[]>;
  diff(): Promise<RootChange[]>;
  export(hostPath: string): Promise<void>;
  commit(ref: string, options?: CommitOptions): Promise<CommittedImage>;
  updateNetwork(rules: { allow: boolean; rule: string }[], mode?: 'none' | 'public' | 'all'): Promise<void>;
  exec(argv: string[] | string, options?: ExecOptions): Promise<ExecResult>;
  spawn(argv: string[] | string, options?: SpawnOptions): Promise<Process>;
  stream(argv: string[] | string, options?: SpawnOptions): AsyncGenerator<OutputPiece, void, undefined>;
  stop(timeoutMs?: number): Promise<void>;
  /** vCPUs stopped, memory kept; toDisk: the whole VM saved to disk and ended (resume restores it). */
  pause(options?: { toDisk?: boolean }): Promise<void>;
  resume(): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A disk snapshot's record (docs/json.md, docs/snapshots.md). */
export type SnapshotInfo = Record<string, any> & {
  id: string; name: string; source_name: string; content_digest: string; used_by: string[];
};
export interface SnapshotOptions { labels?: Record<string, string>; freezeTimeoutMs?: number }
export interface ForkOptions {
  count?: number;
  namePrefix?: string;
  start?: boolean;
  /** A warm fork: the running sandbox's VM is saved too and every child goes
   * on from that moment (its processes and memory) instead of booting. */
  memory?: boolean;
}
export interface RootChange { kind: 'A' | 'C' | 'D'; path: string }
export interface CommitOptions { changes?: string[]; env?: Record<string, string>; workdir?: string; message?: string }
export interface CommittedImage { ref: string; manifest_digest: string; layer_digest: string; layer_size: number }

export declare class MoatError extends Error {
  kind: string;
  errno: number;
}
export declare class NotFoundError extends MoatError {}
export declare class AlreadyExistsError extends MoatError {}
export declare class InvalidArgumentError extends MoatError {}
export declare class BusyError extends MoatError {}
export declare class NotRunningError extends MoatError {}
export declare class TimedOutError extends MoatError {}
export declare class InterruptedError extends MoatError {}
export declare class PermissionDeniedError extends MoatError {}
export declare class ResourceExhaustedError extends MoatError {}
export declare class UnsupportedError extends MoatError {}
export declare class ProtocolError extends MoatError {}
export declare class IoError extends MoatError {}
export declare class CommandTimedOutError extends TimedOutError {
  result: ExecResult;
}

export declare function version(): string;
export declare function doctor(): Promise<{ ready: boolean; accel: string; checks: Record<string, unknown>[] }>;
export declare function defineSandbox(options?: SandboxOptions): Promise<SandboxInfo>;
export declare function startSandbox(idOrName: string): Promise<void>;
export declare function stopSandbox(idOrName: string): Promise<void>;
export declare function restartSandbox(idOrName: string): Promise<void>;
export declare function pauseSandbox(idOrName: string, options?: { toDisk?: boolean }): Promise<void>;
export declare function resumeSandbox(idOrName: string): Promise<void>;
export declare function sandboxStats(idOrName: string): Promise<Record<string, number | string>>;
export interface SandboxEvent { seq: number; time: string; event: string; id: string; name: string; reason: string }
export declare function events(options?: { after?: number }): Promise<SandboxEvent[]>;
export declare function sandboxLogs(idOrName: string): Promise<{ console: string; events: Record<string, unknown>[] }>;
export declare function removeSandbox(idOrName: string, options?: { force?: boolean }): Promise<void>;
export declare function inspectSandbox(idOrName: string): Promise<SandboxInfo>;
export declare function listSandboxes(labels?: Record<string, string>): Promise<SandboxInfo[]>;
export declare function pullImage(ref: string, options?: { insecureRegistry?: boolean }): Promise<Record<string, unknown>>;
export declare function listImages(): Promise<Record<string, unknown>[]>;
export declare function inspectImage(ref: string): Promise<Record<string, unknown>>;
export declare function removeImage(ref: string): Promise<void>;
export declare function createVolume(name: string): Promise<Record<string, unknown>>;
export declare function listVolumes(): Promise<Record<string, unknown>[]>;
export declare function removeVolume(name: string): Promise<void>;
export declare function createSnapshot(sandbox: string, name: string, options?: SnapshotOptions): Promise<SnapshotInfo>;
export declare function listSnapshots(): Promise<SnapshotInfo[]>;
export declare function inspectSnapshot(idOrName: string): Promise<SnapshotInfo>;
export declare function removeSnapshot(idOrName: string): Promise<void>;
export declare function forkSandbox(sandbox: string, options?: ForkOptions): Promise<SandboxInfo[]>;
export declare function diffSandbox(sandbox: string): Promise<RootChange[]>;
export declare function exportSandbox(sandbox: string, hostPath: string): Promise<void>;
export declare function commitSandbox(sandbox: string, ref: string, options?: CommitOptions): Promise<CommittedImage>;
