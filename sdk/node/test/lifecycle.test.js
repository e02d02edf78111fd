'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('child_process');
const path = require('path');
const { moat } = require('./helpers');

test('an unknown sandbox or image is NotFoundError', async () => {
  await assert.rejects(moat.Sandbox.open('no-such-sandbox'), (e) => e instanceof moat.NotFoundError && /no-such-sandbox/.test(e.message));
  await assert.rejects(moat.inspectSandbox('no-such-sandbox'), moat.NotFoundError);
  await assert.rejects(moat.inspectImage('no-such-image:1'), moat.NotFoundError);
});

test('invalid options are typed errors and leave nothing', async () => {
  const before = await moat.listSandboxes();
  const cases = [
    [{ memoryMib: -1 }, /memoryMib/],
    [{ bogus: 1 }, /unknown sandbox option\(s\): bogus/],
    [{ network: { mode: 'everything' } }, /network\.mode/],
    [{ network: { rules: [{ allow: true, rul: 'x' }] } }, /network\.rules\[0\]\.rul: not a field of this form/],
    [{ volumes: ['/tmp:relative'] }, /must be absolute/],
    [{ pull: 'sometimes' }, /pull/],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(moat.Sandbox.create(options), (e) => e instanceof moat.InvalidArgumentError && message.test(e.message));
  }
  assert.deepEqual(await moat.listSandboxes(), before);
});

test('calls on a stopped or closed sandbox are clear errors', async () => {
  const s = await moat.Sandbox.create({ keep: true, name: 'node-stop' });
  try {
    assert.equal((await s.info()).state, 'running');
    await s.stop();
    await assert.rejects(s.exec(['true']), (e) => e instanceof moat.NotRunningError && /closed/.test(e.message));
    await assert.rejects(s.spawn(['true']), moat.NotRunningError);
    assert.equal((await moat.inspectSandbox('node-stop')).state, 'stopped');
    await s.close();
    await assert.rejects(s.exec(['true']), moat.NotRunningError);
    await assert.rejects(s.files.read('/etc/hostname'), moat.NotRunningError);
  } finally {
    await s.close();
    await moat.removeSandbox('node-stop', { force: true });
  }
  await assert.rejects(moat.inspectSandbox('node-stop'), moat.NotFoundError);
});

test('define, start, open, stop and remove by name', async () => {
  const info = await moat.defineSandbox({ name: 'node-managed', labels: { suite: 'node' } });
  assert.deepEqual([info.name, info.state, info.labels], ['node-managed', 'created', { suite: 'node' }]);
  await moat.startSandbox('node-managed');
  const s = await moat.Sandbox.open('node-managed');
  assert.match((await s.exec(['hostname'])).stdout.toString(), /^moat-/);
  await s.pause();
  assert.equal((await s.info()).paused, true);
  await assert.rejects(s.exec(['true']), (e) => e instanceof moat.BusyError && /paused/.test(e.message));
  await moat.resumeSandbox('node-managed');
  assert.equal((await s.exec(['true'])).exitCode, 0);
  await moat.pauseSandbox('node-managed');
  assert.equal((await moat.inspectSandbox('node-managed')).paused, true);
  await s.resume();
  assert.equal((await moat.inspectSandbox('node-managed')).paused, false);
  // To disk: nothing runs until the resume restores it, through the handle.
  await s.exec(['sh', '-c', 'echo kept > /dev/shm/k']);
  await s.pause({ toDisk: true });
  const saved = await moat.inspectSandbox('node-managed');
  assert.deepEqual([saved.state, saved.saved, saved.reason], ['stopped', true, 'paused to disk']);
  await s.resume();
  assert.equal((await moat.inspectSandbox('node-managed')).saved, false);
  assert.equal((await s.exec(['cat', '/dev/shm/k'])).stdout.toString(), 'kept\n');
  await s.close();
  assert.equal((await moat.inspectSandbox('node-managed')).state, 'running');
  await moat.stopSandbox('node-managed');
  await moat.removeSandbox('node-managed');
  assert.deepEqual(await moat.listSandboxes({ suite: 'node' }), []);
});

test('await using: the sandbox is gone when the block ends', async () => {
  let id;
  {
    const sb = await moat.Sandbox.create();
    id = sb.id;
    await sb[Symbol.asyncDispose]();
  }
  await assert.rejects(moat.inspectSandbox(id), moat.NotFoundError);
});

test('ten sandboxes from ten concurrent creates', async () => {
  const outs = await Promise.all([...Array(10).keys()].map(async (i) => {
    const sb = await moat.Sandbox.create({ memoryMib: 128 });
    try {
      return (await sb.exec(['sh', '-c', `echo task-${i}`])).stdout.toString();
    } finally {
      await sb.close();
    }
  }));
  assert.deepEqual(outs, [...Array(10).keys()].map((i) => `task-${i}\n`));
  assert.deepEqual(await moat.listSandboxes(), []);
});

test('a process exiting mid-exec takes its ephemeral sandbox along', async () => {
  const script = `
    const moat = require(${JSON.stringify(path.join(__dirname, '..'))});
    (async () => {
      const sb = await moat.Sandbox.create();
      await sb.spawn(['sleep', '600']);
      console.log(sb.id);
      process.exit(0);
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, r.stderr);
  const id = r.stdout.trim();
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    try {
      await moat.inspectSandbox(id);
    } catch (e) {
      if (e instanceof moat.NotFoundError) return;
      throw e;
    }
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.fail(`sandbox ${id} outlived the process that made it`);
});

test('version and doctor', async () => {
  assert.match(moat.version(), /^\d+\.\d+\.\d+$/);
  const report = await moat.doctor();
  assert.equal(report.ready, true);
});

test('events, restart and stats by name', async () => {
  const seq = Math.max(0, ...(await moat.events()).map((e) => e.seq));
  await moat.defineSandbox({ name: 'node-events' });
  await moat.startSandbox('node-events');
  await moat.restartSandbox('node-events');
  assert.ok((await moat.sandboxStats('node-events')).uptime_ms > 0);
  const s = await moat.Sandbox.open('node-events');
  await s.exec(['sh', '-c', 'echo to-the-console > /dev/console; exit 7']);
  await s.close();
  const logs = await moat.sandboxLogs('node-events');
  assert.match(logs.console, /to-the-console/);
  const exits = logs.events.filter((e) => e.event === 'exit').map((e) => e.code);
  assert.deepEqual(exits, [7]);
  await moat.stopSandbox('node-events');
  await moat.removeSandbox('node-events');
  const kinds = (await moat.events({ after: seq })).filter((e) => e.name === 'node-events').map((e) => e.event);
  assert.deepEqual(kinds, ['created', 'started', 'stopped', 'started', 'stopped', 'removed']);
});

test('a secret is a placeholder inside', async () => {
  const sb = await moat.Sandbox.create({ secrets: { 'API_KEY@api.example.test': 's3cret-value' } });
  try {
    const inside = (await sb.exec(['sh', '-c', 'printf %s "$API_KEY"'])).stdout.toString();
    assert.ok(inside.length > 0 && !inside.includes('s3cret-value'));
  } finally {
    await sb.close();
  }
  await assert.rejects(moat.Sandbox.create({ secrets: { API_KEY: 'no host' } }), moat.InvalidArgumentError);
});
