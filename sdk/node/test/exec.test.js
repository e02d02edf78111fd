'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { moat } = require('./helpers');

let sb;
before(async () => { sb = await moat.Sandbox.create({ memoryMib: 256 }); });
after(async () => { await sb.close(); });

test('exec gives the exit code and both streams exactly', async () => {
  const r = await sb.exec(['sh', '-c', "printf 'out\\n'; printf 'err\\n' >&2; exit 3"]);
  assert.equal(r.exitCode, 3);
  assert.equal(r.stdout.toString(), 'out\n');
  assert.equal(r.stderr.toString(), 'err\n');
  assert.equal(r.signal, 0);
  assert.equal(r.timedOut, false);
});

test('a string runs with sh; env, cwd and user apply', async () => {
  const r = await sb.exec('echo $GREETING $(pwd) $(id -u)', { env: { GREETING: 'hi' }, cwd: '/tmp', user: 1000 });
  assert.equal(r.stdout.toString(), 'hi /tmp 1000\n');
});

test('stdin reaches the command', async () => {
  const data = crypto.randomBytes(300000);
  const r = await sb.exec(['sha256sum'], { stdin: data });
  assert.equal(r.stdout.toString().split(' ')[0], crypto.createHash('sha256').update(data).digest('hex'));
});

test('a signal death reads as the shell does', async () => {
  const r = await sb.exec(['sh', '-c', 'kill -TERM $$']);
  assert.equal(r.signal, 15);
  assert.equal(r.exitCode, 143);
});

test('stream yields output in order', async () => {
  let out = '';
  let err = '';
  for await (const { stream, data } of sb.stream('for i in 1 2 3; do echo $i; sleep 0.1; done; echo e >&2')) {
    if (stream === 'stdout') out += data; else err += data;
  }
  assert.equal(out, '1\n2\n3\n');
  assert.equal(err, 'e\n');
});

test('spawn in the background with stdin and callbacks', async () => {
  const got = [];
  const p = await sb.spawn(['cat'], { stdin: true, onStdout: (b) => got.push(b) });
  await p.writeStdin('one\n');
  await p.writeStdin(Buffer.from('two\n'));
  await p.closeStdin();
  const r = await p.wait();
  assert.equal(r.exitCode, 0);
  assert.ok(p.pid > 0);
  assert.equal(Buffer.concat(got).toString(), 'one\ntwo\n');
  await p.close();
});

test('a spawned process can be signalled; wait times out with null', async () => {
  const p = await sb.spawn(['sleep', '60']);
  assert.equal(await p.wait(500), null);
  await p.signal('SIGKILL');
  const r = await p.wait(30000);
  assert.equal(r.signal, 9);
  await p.close();
});

test('pty sessions see a terminal and its size', async () => {
  const r = await sb.exec(['sh', '-c', '[ -t 0 ] && [ -t 1 ] && stty size'], { tty: true });
  assert.equal(r.stdout.toString().trim(), '24 80');
  const p = await sb.spawn(['sh', '-c', 'sleep 1; stty size'], { tty: true, rows: 40, cols: 100 });
  await p.resize(50, 120);
  let out = '';
  for await (const { data } of p.output()) out += data;
  assert.equal(out.trim(), '50 120');
  await p.close();
});

test('a timeout kills the command and says so', async () => {
  const start = Date.now();
  await assert.rejects(sb.exec(['sh', '-c', 'echo started; sleep 60'], { timeoutMs: 1000 }), (e) => {
    assert.ok(e instanceof moat.CommandTimedOutError);
    assert.ok(e instanceof moat.TimedOutError);
    assert.equal(e.result.stdout.toString(), 'started\n');
    return true;
  });
  assert.ok(Date.now() - start < 20000);
  assert.equal((await sb.exec(['true'])).exitCode, 0);
});

test('a callback that throws kills the command and wait throws it', async () => {
  const p = await sb.spawn(['sh', '-c', 'echo x; sleep 60'], { onStdout: () => { throw new Error('from the callback'); } });
  const start = Date.now();
  await assert.rejects(p.wait(30000), /from the callback/);
  assert.ok(Date.now() - start < 20000);
  await p.close();
});

test('a reader that stops holds the command back', async () => {
  const p = await sb.spawn(['sh', '-c', 'yes | head -c 200000000; echo done > /tmp/yes-done']);
  const it = p.output();
  const first = await it.next();
  assert.equal(first.value.stream, 'stdout');
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(await sb.files.exists('/tmp/yes-done'), false);
  await p.close();
});

test('eight concurrent commands keep their output apart', async () => {
  const runs = [...Array(8).keys()].map(async (i) => {
    const p = await sb.spawn(['sh', '-c', `for n in 1 2 3 4 5; do echo ${i}-$n; done`]);
    let out = '';
    for await (const { data } of p.output()) out += data;
    await p.close();
    return out;
  });
  const outs = await Promise.all(runs);
  outs.forEach((o, i) => assert.equal(o, [1, 2, 3, 4, 5].map((n) => `${i}-${n}\n`).join('')));
});
