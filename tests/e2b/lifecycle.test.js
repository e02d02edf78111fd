// The SDK's sandbox lifecycle against `moat serve --e2b`: list with
// metadata, connect, pause and resume, setTimeout and expiry, kill, and the
// README's quick start run as written with only the environment set.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { E2bHarness, e2b, waitFor, MODULES } = require('./harness');

let h;
let E2B;

test.before(async () => {
  h = await new E2bHarness().start();
  E2B = e2b();
});

test.after(async () => {
  if (h) await h.stop();
});

test('list, connect, pause and resume, kill', async () => {
  const { Sandbox, SandboxNotFoundError } = E2B;
  const sb = await Sandbox.create({ metadata: { who: 'lifecycle' } });
  const listed = await Sandbox.list({ query: { metadata: { who: 'lifecycle' } } }).nextItems();
  assert.deepEqual(listed.map((s) => s.sandboxId), [sb.sandboxId]);
  assert.equal(listed[0].templateId, 'base');
  assert.equal(listed[0].state, 'running');
  assert.deepEqual((await Sandbox.list({ query: { metadata: { who: 'nobody' } } }).nextItems()), []);

  const counter = await sb.commands.run('i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done',
    { background: true });
  const count = async (s) => Number((await s.files.read('/tmp/n').catch(() => '0')).trim());
  await waitFor('the counter', async () => (await count(sb)) > 2, 20000);
  assert.equal(await sb.pause(), true);
  assert.equal((await Sandbox.getInfo(sb.sandboxId)).state, 'paused');
  assert.equal(await sb.pause(), false);  // already paused

  const again = await Sandbox.connect(sb.sandboxId);
  assert.equal((await Sandbox.getInfo(sb.sandboxId)).state, 'running');
  const before = await count(again);
  await waitFor('the counter to go on', async () => (await count(again)) > before, 20000);
  assert.equal((await again.commands.run('echo again')).stdout, 'again\n');
  await counter.kill();

  assert.equal(await Sandbox.kill(sb.sandboxId), true);
  assert.equal(await Sandbox.kill(sb.sandboxId), false);
  await assert.rejects(Sandbox.getInfo(sb.sandboxId), (e) => e instanceof SandboxNotFoundError);
  assert.ok(!h.moatSandboxes().includes(sb.sandboxId), 'the moat sandbox is gone');
});

test('setTimeout shortens a sandbox\'s life and the server ends it then', async () => {
  const { Sandbox } = E2B;
  const sb = await Sandbox.create({ timeoutMs: 600000 });
  const info = await Sandbox.getInfo(sb.sandboxId);
  assert.ok(info.endAt - info.startedAt >= 599000, `${info.startedAt} .. ${info.endAt}`);
  await sb.setTimeout(2000);
  assert.equal(await sb.isRunning(), true);
  await waitFor('the sandbox to end', async () => !(await sb.isRunning()), 15000);
  await waitFor('moat to remove it', () => !h.moatSandboxes().includes(sb.sandboxId), 15000);
  assert.deepEqual((await Sandbox.list().nextItems()).filter((s) => s.sandboxId === sb.sandboxId), []);
  await assert.rejects(sb.commands.run('true'));
});

test('the README quick start runs as written', async () => {
  // Section 3 of the e2b package's README, verbatim, as an ES module next
  // to the installed package.
  const file = path.join(MODULES, '..', 'quickstart.mjs');
  fs.writeFileSync(file, [
    "import { Sandbox } from 'e2b'",
    '',
    'const sandbox = await Sandbox.create()',
    "const result = await sandbox.commands.run('echo \"Hello from E2B!\"')",
    'console.log(result.stdout) // Hello from E2B!',
    '',
  ].join('\n'));
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, [file], { env: { ...process.env, ...h.env() }, timeout: 120000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
  assert.equal(out, 'Hello from E2B!\n\n');
});

test('an access token opens its own sandbox only', async () => {
  const { Sandbox } = E2B;
  const [a, b] = await Promise.all([Sandbox.create(), Sandbox.create()]);
  const list = (id, token) => fetch(`${h.url}/process.Process/List`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': id, ...(token ? { 'X-Access-Token': token } : {}) },
    body: '{}',
  });
  const own = await list(a.sandboxId, a.envdAccessToken);
  assert.equal(own.status, 200);
  assert.deepEqual(await own.json(), { processes: [] });
  for (const [token, what] of [[b.envdAccessToken, "another sandbox's token"], [undefined, 'no token'], ['x', 'a made-up token']]) {
    const r = await list(a.sandboxId, token);
    assert.equal(r.status, 401, what);
    assert.equal((await r.json()).code, 'unauthenticated', what);
  }
  // The REST side too: a file of A with B's token.
  const file = await fetch(`${h.url}/files?path=/etc/hostname`, {
    headers: { 'E2b-Sandbox-Id': a.sandboxId, 'X-Access-Token': b.envdAccessToken },
  });
  assert.equal(file.status, 401);
  await Promise.all([a.kill(), b.kill()]);
});

test('a sandbox stopped behind the API\'s back leaves the list', async () => {
  const { Sandbox, SandboxNotFoundError } = E2B;
  const sb = await Sandbox.create();
  h.moat(['stop', sb.sandboxId]);
  assert.deepEqual((await Sandbox.list().nextItems()).filter((s) => s.sandboxId === sb.sandboxId), []);
  await assert.rejects(Sandbox.getInfo(sb.sandboxId), (e) => e instanceof SandboxNotFoundError);
  assert.ok(h.moatSandboxes().includes(sb.sandboxId), 'its moat record stays');
});

test('a restarted server still knows, serves and times out the sandboxes an earlier one made', async () => {
  const { Sandbox } = E2B;
  const sb = await Sandbox.create({ metadata: { keep: 'me' }, envs: { KEPT: 'yes' } });
  const short = await Sandbox.create({ timeoutMs: 600000 });
  await short.setTimeout(6000);
  await h.stopServer();
  await h.startServer();
  const listed = await Sandbox.list({ query: { metadata: { keep: 'me' } } }).nextItems();
  assert.deepEqual(listed.map((s) => s.sandboxId), [sb.sandboxId]);
  // The SDK object from before the restart still works: same token, same envd variables.
  assert.equal((await sb.commands.run('echo $KEPT')).stdout, 'yes\n');
  await waitFor('the shortened sandbox to end', async () => !(await short.isRunning()), 20000);
  await waitFor('moat to remove it', () => !h.moatSandboxes().includes(short.sandboxId), 15000);
  assert.equal(await Sandbox.kill(sb.sandboxId), true);
});

test('network: allowOut and denyOut become moat rules, updateNetwork replaces them', async () => {
  const http = require('node:http');
  const server = http.createServer((req, res) => res.end('reached\n'));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  const { Sandbox, ALL_TRAFFIC, CommandExitError, SandboxError } = E2B;
  try {
    const sb = await Sandbox.create({ network: { allowOut: [`@host:${port}`], denyOut: [ALL_TRAFFIC] } });
    const get = () => sb.commands.run(`curl -sS -m 5 http://host.moat.internal:${port}/`);
    assert.equal((await get()).stdout, 'reached\n');
    await sb.updateNetwork({ denyOut: [ALL_TRAFFIC] });
    await assert.rejects(get(), (e) => e instanceof CommandExitError && e.exitCode !== 0);
    await sb.updateNetwork({ allowOut: [`@host:${port}`] });
    assert.equal((await get()).stdout, 'reached\n');
    await sb.kill();
    await assert.rejects(Sandbox.create({ network: { allowOut: ['not a rule!'] } }),
      (e) => e instanceof SandboxError && e.statusCode === 400 && /not a rule!/.test(e.message));
  } finally {
    server.close();
  }
});

test('an unknown template and a wrong API key are refused as the SDK expects', async () => {
  const { Sandbox, AuthenticationError, SandboxError } = E2B;
  await assert.rejects(Sandbox.create('no-such-template'),
    (e) => e instanceof SandboxError && e.statusCode === 404 && /template 'no-such-template' is not in the template map/.test(e.message));
  await assert.rejects(Sandbox.create({ apiKey: 'wrong' }), (e) => e instanceof AuthenticationError);
});
