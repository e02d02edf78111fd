// Connect's binary codec (what E2B's Python SDK speaks) against `moat serve
// --e2b`: a plain Connect client (@connectrpc/connect-web with
// useBinaryFormat, the library the e2b SDKs build on) with the message types
// compiled by protoc from src/server/e2b/envd/*.proto.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { E2bHarness, e2b, MODULES } = require('./harness');

const envd = path.resolve(__dirname, '..', '..', 'src', 'server', 'e2b', 'envd');
let h;
let sb;
let Process;
let Filesystem;
let headers;
let ConnectError;
let Code;

test.before(async () => {
  h = await new E2bHarness().start();
  const set = path.join(h.dir, 'envd.binpb');
  execFileSync('protoc', ['--include_imports', `--descriptor_set_out=${set}`, '-I', envd, '-I', '/usr/include',
    'process.proto', 'filesystem.proto']);
  const mod = (name) => require(require.resolve(name, { paths: [path.dirname(MODULES)] }));
  const pb = mod('@bufbuild/protobuf');
  const wkt = mod('@bufbuild/protobuf/wkt');
  const connect = mod('@connectrpc/connect');
  const web = mod('@connectrpc/connect-web');
  ({ ConnectError, Code } = connect);
  const registry = pb.createFileRegistry(pb.fromBinary(wkt.FileDescriptorSetSchema, fs.readFileSync(set)));
  const transport = web.createConnectTransport({ baseUrl: h.url, useBinaryFormat: true });
  Process = connect.createClient(registry.getService('process.Process'), transport);
  Filesystem = connect.createClient(registry.getService('filesystem.Filesystem'), transport);
  sb = await e2b().Sandbox.create();
  headers = { 'E2b-Sandbox-Id': sb.sandboxId, 'X-Access-Token': sb.envdAccessToken };
});

test.after(async () => {
  if (sb) await sb.kill().catch(() => {});
  if (h) await h.stop();
});

const text = (u8) => Buffer.from(u8).toString();

test('Start streams a command\'s events in the binary codec', async () => {
  const events = [];
  for await (const res of Process.start({
    process: { cmd: '/bin/bash', args: ['-l', '-c', 'echo hi; echo err >&2; exit 3'], envs: { X: '1' } },
  }, { headers })) events.push(res.event.event);
  assert.equal(events[0].case, 'start');
  assert.ok(events[0].value.pid > 0);
  const out = events.filter((e) => e.case === 'data').map((e) => `${e.value.output.case}:${text(e.value.output.value)}`);
  assert.deepEqual(out.sort(), ['stderr:err\n', 'stdout:hi\n']);
  const end = events.at(-1);
  assert.equal(end.case, 'end');
  assert.equal(end.value.exitCode, 3);
  assert.equal(end.value.exited, true);
  assert.equal(end.value.status, 'exit status 3');
});

test('List, SendInput and SendSignal by tag, unary in the binary codec', async () => {
  const stream = Process.start({ process: { cmd: 'cat' }, tag: 'bg', stdin: true }, { headers })[Symbol.asyncIterator]();
  const first = await stream.next();
  assert.equal(first.value.event.event.case, 'start');
  const pid = first.value.event.event.value.pid;
  const listed = await Process.list({}, { headers });
  assert.deepEqual(listed.processes.map((p) => [p.pid, p.tag, p.config.cmd]), [[pid, 'bg', 'cat']]);
  await Process.sendInput({ process: { selector: { case: 'tag', value: 'bg' } },
    input: { input: { case: 'stdin', value: Buffer.from('ping\n') } } }, { headers });
  const echoed = await stream.next();
  assert.equal(text(echoed.value.event.event.value.output.value), 'ping\n');
  await Process.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: 9 }, { headers });
  let end;
  for (let r = await stream.next(); !r.done; r = await stream.next()) end = r.value.event.event;
  assert.equal(end.case, 'end');
  assert.equal(end.value.exitCode, -1);
  assert.equal(end.value.status, 'signal: killed');
});

test('Stat and ListDir answer EntryInfo in the binary codec; errors keep their codes', async () => {
  await sb.files.write('/home/user/b/f.txt', 'twelve bytes');
  const st = await Filesystem.stat({ path: 'b/f.txt' }, { headers });
  assert.equal(st.entry.path, '/home/user/b/f.txt');
  assert.equal(st.entry.type, 1);  // FILE_TYPE_FILE
  assert.equal(st.entry.size, 12n);
  assert.equal(st.entry.owner, 'user');
  assert.equal(st.entry.permissions, '-rw-r--r--');
  assert.ok(st.entry.modifiedTime.seconds > 1700000000n);
  const ls = await Filesystem.listDir({ path: '/home/user/b', depth: 2 }, { headers });
  assert.deepEqual(ls.entries.map((e) => e.name), ['f.txt']);
  await assert.rejects(Filesystem.stat({ path: '/nope' }, { headers }),
    (e) => e instanceof ConnectError && e.code === Code.NotFound);
  await assert.rejects(Filesystem.stat({ path: '/etc' }, { headers: { ...headers, 'X-Access-Token': 'x' } }),
    (e) => e instanceof ConnectError && e.code === Code.Unauthenticated);
});

test('polled watchers (CreateWatcher, GetWatcherEvents) report what changed between two calls', async () => {
  await sb.files.makeDir('/home/user/pw');
  const { watcherId } = await Filesystem.createWatcher({ path: 'pw' }, { headers });
  assert.ok(watcherId);
  await sb.files.write('/home/user/pw/a.txt', 'x');
  const names = async () => (await Filesystem.getWatcherEvents({ watcherId }, { headers })).events.map((e) => [e.name, e.type]);
  assert.deepEqual(await names(), [['a.txt', 1]]);  // EVENT_TYPE_CREATE
  assert.deepEqual(await names(), []);
  await sb.files.remove('/home/user/pw/a.txt');
  assert.deepEqual(await names(), [['a.txt', 3]]);  // EVENT_TYPE_REMOVE
  await Filesystem.removeWatcher({ watcherId }, { headers });
  await assert.rejects(Filesystem.getWatcherEvents({ watcherId }, { headers }),
    (e) => e instanceof ConnectError && e.code === Code.NotFound);
});
