// The unmodified `e2b` SDK against `moat serve --e2b`: one sandbox, booted
// once, through the SDK's commands, pty and files calls (docs/e2b.md).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { E2bHarness, e2b, waitFor } = require('./harness');

let h;
let sb;
const { Sandbox, CommandExitError, FilesystemEventType, NotFoundError } = (() => {
  try {
    return e2b();
  } catch (e) {
    return {};
  }
})();

test.before(async () => {
  h = await new E2bHarness().start();
  sb = await Sandbox.create({ metadata: { suite: 'sandbox' }, envs: { FROM_CREATE: 'yes' } });
});

test.after(async () => {
  if (sb) await sb.kill().catch(() => {});
  if (h) await h.stop();
});

test('commands.run gives stdout, stderr and the exit code; commands run as "user" in its home through bash -l', async () => {
  const r = await sb.commands.run('echo hi; echo err >&2; id -un; pwd; echo $FROM_CREATE $OWN', { envs: { OWN: 'own' } });
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, 'hi\nuser\n/home/user\nyes own\n');
  assert.equal(r.stderr, 'err\n');
  const root = await sb.commands.run('id -u; pwd', { user: 'root', cwd: '/tmp' });
  assert.equal(root.stdout, '0\n/tmp\n');
});

test('a failing command raises CommandExitError with its code and output', async () => {
  await assert.rejects(sb.commands.run('echo out; echo bad >&2; exit 3'), (e) => {
    assert.ok(e instanceof CommandExitError, e.constructor.name);
    assert.equal(e.exitCode, 3);
    assert.equal(e.stdout, 'out\n');
    assert.equal(e.stderr, 'bad\n');
    return true;
  });
});

test('a command that cannot start fails with the reason', async () => {
  await assert.rejects(sb.commands.run('pwd', { cwd: '/no/such/dir' }), (e) => {
    assert.match(e.message, /no\/such\/dir/);
    return true;
  });
  await assert.rejects(sb.commands.run('true', { user: 'nobody-here' }), (e) => {
    assert.match(e.message, /user 'nobody-here' does not exist/);
    return true;
  });
});

test('onStdout streams 1000 lines in order', async () => {
  const chunks = [];
  const r = await sb.commands.run('seq 1 1000', { onStdout: (d) => chunks.push(d) });
  const want = Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join('');
  assert.equal(chunks.join(''), want);
  assert.equal(r.stdout, want);
});

test('a background command takes stdin, is listed, can be left and found again, and is killed', async () => {
  let out = '';
  const cat = await sb.commands.run('cat', { background: true, stdin: true, onStdout: (d) => { out += d; } });
  assert.ok(cat.pid > 0);
  await cat.sendStdin('ping\n');
  await waitFor('the echo of stdin', () => out === 'ping\n', 20000);
  const listed = await sb.commands.list();
  assert.ok(listed.some((p) => p.pid === cat.pid && p.cmd === '/bin/bash' && p.args.at(-1) === 'cat'), JSON.stringify(listed));

  // Leave it and come back by pid: output after the reconnect arrives.
  await cat.disconnect();
  let again = '';
  const back = await sb.commands.connect(cat.pid, { onStdout: (d) => { again += d; } });
  await sb.commands.sendStdin(cat.pid, 'pong\n');
  await waitFor('output after connect', () => again === 'pong\n', 20000);

  assert.equal(await back.kill(), true);
  await assert.rejects(back.wait(), (e) => e instanceof CommandExitError && e.exitCode === -1);
  await waitFor('the command to leave the list', async () => !(await sb.commands.list()).some((p) => p.pid === cat.pid), 10000);
  assert.equal(await sb.commands.kill(cat.pid), false);
});

test('closeStdin ends a reading command', async () => {
  const wc = await sb.commands.run('wc -c', { background: true, stdin: true });
  await wc.sendStdin('12345');
  await wc.closeStdin();
  const r = await wc.wait();
  assert.equal(r.stdout.trim(), '5');
});

test('pty.create, sendInput and resize reach a terminal', async () => {
  let screen = '';
  const term = await sb.pty.create({ cols: 80, rows: 24, onData: (d) => { screen += Buffer.from(d).toString(); } });
  const enc = (s) => new TextEncoder().encode(s);
  await sb.pty.sendInput(term.pid, enc('stty size; tty\n'));
  await waitFor('stty size 24 80', () => /24 80\r?\n\/dev\/pts\//.test(screen), 20000);
  await sb.pty.resize(term.pid, { cols: 100, rows: 30 });
  await sb.pty.sendInput(term.pid, enc('stty size\n'));
  await waitFor('stty size 30 100', () => screen.includes('30 100'), 20000);
  await sb.pty.sendInput(term.pid, enc('exit 7\n'));
  await assert.rejects(term.wait(), (e) => e instanceof CommandExitError && e.exitCode === 7);
});

test('files: write and read 20 MiB byte-exact, list, makeDir, rename, remove, exists, getInfo', async () => {
  const big = crypto.randomBytes(20 << 20);
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  const info = await sb.files.write('data/big.bin', big);  // relative: under /home/user
  assert.equal(info.path, '/home/user/data/big.bin');
  const back = await sb.files.read('/home/user/data/big.bin', { format: 'bytes' });
  assert.equal(back.length, big.length);
  assert.equal(sha(back), sha(big));
  const inGuest = await sb.commands.run('sha256sum data/big.bin; stat -c %U:%G data data/big.bin');
  assert.equal(inGuest.stdout, `${sha(big)}  data/big.bin\nuser:user\nuser:user\n`);

  await sb.files.write('/home/user/data/t.txt', 'text');
  assert.equal(await sb.files.read('/home/user/data/t.txt'), 'text');
  const names = (await sb.files.list('/home/user/data')).map((e) => `${e.name}:${e.type}`).sort();
  assert.deepEqual(names, ['big.bin:file', 't.txt:file']);

  assert.equal(await sb.files.makeDir('/home/user/data/sub/deeper'), true);
  assert.equal(await sb.files.makeDir('/home/user/data/sub/deeper'), false);
  const deep = (await sb.files.list('/home/user/data', { depth: 3 })).map((e) => e.path).sort();
  assert.deepEqual(deep, ['/home/user/data/big.bin', '/home/user/data/sub', '/home/user/data/sub/deeper', '/home/user/data/t.txt']);

  const moved = await sb.files.rename('/home/user/data/t.txt', '/home/user/data/sub/u.txt');
  assert.equal(moved.path, '/home/user/data/sub/u.txt');
  assert.equal(await sb.files.exists('/home/user/data/t.txt'), false);
  assert.equal(await sb.files.exists('/home/user/data/sub/u.txt'), true);

  const gi = await sb.files.getInfo('/home/user/data/big.bin');
  assert.equal(gi.type, 'file');
  assert.equal(gi.size, 20 << 20);
  assert.equal(gi.owner, 'user');
  assert.equal(gi.permissions, '-rw-r--r--');

  await sb.files.remove('/home/user/data');
  assert.equal(await sb.files.exists('/home/user/data'), false);
  await assert.rejects(sb.files.read('/home/user/data/big.bin'), (e) => e instanceof NotFoundError);
  await assert.rejects(sb.files.getInfo('/nope'), (e) => e instanceof NotFoundError);
});

test('files.write with several files at once', async () => {
  const out = await sb.files.write([
    { path: '/tmp/multi/a.txt', data: 'A' },
    { path: '/tmp/multi/b.txt', data: new Blob(['B']) },
  ]);
  assert.deepEqual(out.map((e) => e.path), ['/tmp/multi/a.txt', '/tmp/multi/b.txt']);
  assert.equal((await sb.commands.run('cat /tmp/multi/a.txt /tmp/multi/b.txt')).stdout, 'AB');
});

test('files.watchDir reports creations, writes and removals', async () => {
  await sb.files.makeDir('/home/user/w');
  const events = [];
  const w = await sb.files.watchDir('/home/user/w', (e) => events.push(`${e.type}:${e.name}`));
  const seen = (want) => waitFor(want, () => events.includes(want), 20000);
  await sb.files.write('/home/user/w/x.txt', 'one');
  await seen(`${FilesystemEventType.CREATE}:x.txt`);
  await sb.commands.run('sleep 0.5; echo more >> /home/user/w/x.txt');
  await seen(`${FilesystemEventType.WRITE}:x.txt`);
  await sb.files.remove('/home/user/w/x.txt');
  await seen(`${FilesystemEventType.REMOVE}:x.txt`);
  await w.stop();
});
