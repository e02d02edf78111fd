'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { moat } = require('./helpers');

let sb;
before(async () => { sb = await moat.Sandbox.create({ memoryMib: 256 }); });
after(async () => { await sb.close(); });

test('a 50 MiB round trip by sha256', async () => {
  const data = crypto.randomBytes(50 * 1024 * 1024);
  const digest = crypto.createHash('sha256').update(data).digest('hex');
  await sb.files.write('/tmp/big', data);
  assert.equal((await sb.exec(['sha256sum', '/tmp/big'])).stdout.toString().split(' ')[0], digest);
  const back = await sb.files.read('/tmp/big');
  assert.equal(crypto.createHash('sha256').update(back).digest('hex'), digest);
  await sb.files.remove('/tmp/big');
});

test('list, stat, mkdir, rename, chmod, remove', async () => {
  await sb.files.mkdir('/work/a/b', { parents: true });
  await sb.files.write('/work/a/f.txt', 'hello');
  await sb.files.write('/work/a/f.txt', ' world', { append: true });
  assert.equal(await sb.files.readText('/work/a/f.txt'), 'hello world');
  assert.deepEqual((await sb.files.list('/work/a')).map((e) => e.name).sort(), ['b', 'f.txt']);
  const info = await sb.files.stat('/work/a/f.txt');
  assert.deepEqual([info.type, info.size, info.mode], ['file', 11, 0o644]);
  await sb.files.rename('/work/a/f.txt', '/work/a/g.txt');
  await sb.files.chmod('/work/a/g.txt', 0o700);
  assert.equal((await sb.files.stat('/work/a/g.txt')).mode, 0o700);
  await assert.rejects(sb.files.write('/work/a/g.txt', 'x', { exclusive: true }), moat.AlreadyExistsError);
  await sb.files.remove('/work', { recursive: true });
  assert.equal(await sb.files.exists('/work'), false);
});

test('copy a tree in and out', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'moat-node-cp-'));
  try {
    fs.mkdirSync(path.join(tmp, 'tree', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'tree', 'sub', 'x'), 'xx');
    await sb.files.copyIn(path.join(tmp, 'tree'), '/tmp');
    assert.equal((await sb.files.read('/tmp/tree/sub/x')).toString(), 'xx');
    await sb.files.copyOut('/tmp/tree', path.join(tmp, 'back'));
    assert.equal(fs.readFileSync(path.join(tmp, 'back', 'sub', 'x'), 'utf8'), 'xx');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('missing files are NotFoundError with the guest errno', async () => {
  await assert.rejects(sb.files.read('/no/such/file'), (e) => e instanceof moat.NotFoundError && e.errno === 2);
  await assert.rejects(sb.files.list('/no/such/dir'), moat.NotFoundError);
});
