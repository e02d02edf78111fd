'use strict';
// Disk snapshots and forks through the Node SDK: a snapshot of a running
// sandbox, a sandbox made from it, forks isolated from each other, and the
// typed errors a caller handles.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { moat } = require('./helpers');

async function sh(sb, script) {
  const r = await sb.exec(['sh', '-c', script]);
  assert.equal(r.exitCode, 0, r.stderr.toString());
  return r.stdout.toString();
}

test('snapshot, restore and fork', async () => {
  const src = await moat.Sandbox.create({ name: 'node-snap-src' });
  try {
    await sh(src, 'echo before > /root/state');
    const snap = await src.snapshot('node-snap', { labels: { purpose: 'test' } });
    assert.equal(snap.name, 'node-snap');
    assert.equal(snap.source_name, 'node-snap-src');
    assert.deepEqual(snap.labels, { purpose: 'test' });
    assert.match(snap.content_digest, /^sha256:[0-9a-f]{64}$/);
    await sh(src, 'echo after > /root/state');

    const child = await moat.Sandbox.create({ fromSnapshot: 'node-snap', name: 'node-snap-child' });
    try {
      assert.equal(await sh(child, 'cat /root/state'), 'before\n');
      assert.equal((await child.info()).snapshot, snap.id);
      assert.deepEqual((await moat.inspectSnapshot('node-snap')).used_by, ['node-snap-child']);
      await assert.rejects(moat.removeSnapshot('node-snap'),
        (e) => e instanceof moat.BusyError && /in use by sandbox node-snap-child/.test(e.message));
    } finally {
      await child.close();
    }
    assert.equal(await sh(src, 'cat /root/state'), 'after\n');

    const kids = await src.fork({ count: 2, namePrefix: 'node-kid' });
    assert.deepEqual(kids.map((k) => k.name), ['node-kid-1', 'node-kid-2']);
    try {
      for (const k of kids) {
        const h = await moat.Sandbox.open(k.name);
        assert.equal(await sh(h, `cat /root/state; echo ${k.name} > /root/state`), 'after\n');
        await h.close();
      }
      for (const k of kids) {
        const h = await moat.Sandbox.open(k.name);
        assert.equal(await sh(h, 'cat /root/state'), `${k.name}\n`);
        await h.close();
      }
    } finally {
      for (const k of kids) await moat.removeSandbox(k.name, { force: true });
    }
    // A warm fork goes on from the moment: a value only the source's
    // memory holds (a file in its RAM) is in every child.
    await sh(src, 'echo in-ram > /dev/shm/v');
    const warm = await src.fork({ count: 2, namePrefix: 'node-warm', memory: true });
    try {
      assert.deepEqual(warm.map((k) => [k.name, k.state]), [['node-warm-1', 'running'], ['node-warm-2', 'running']]);
      for (const k of warm) {
        const h = await moat.Sandbox.open(k.name);
        assert.equal(await sh(h, 'cat /dev/shm/v'), 'in-ram\n');
        await h.close();
      }
    } finally {
      for (const k of warm) await moat.removeSandbox(k.name, { force: true });
    }
    await assert.rejects(moat.forkSandbox('node-snap-src', { memory: 'yes' }), moat.InvalidArgumentError);
    await assert.rejects(moat.createSnapshot('node-snap-src', 'node-snap'), moat.AlreadyExistsError);
    await assert.rejects(moat.createSnapshot('node-snap-src', ''), moat.InvalidArgumentError);
    await assert.rejects(moat.forkSandbox('node-snap-src', { count: 0 }), moat.InvalidArgumentError);
  } finally {
    await src.close();
  }
  assert.deepEqual((await moat.listSnapshots()).map((s) => s.name), ['node-snap']);
  await moat.removeSnapshot('node-snap');
  assert.deepEqual(await moat.listSnapshots(), []);
  await assert.rejects(moat.inspectSnapshot('node-snap'), moat.NotFoundError);
  await assert.rejects(moat.Sandbox.create({ fromSnapshot: 'node-snap' }), moat.NotFoundError);
});

test('diff and export', async () => {
  const os = require('os');
  const fs = require('fs');
  const path = require('path');
  const sb = await moat.Sandbox.create({ name: 'node-diff' });
  try {
    await sh(sb, 'echo x > /root/new; chmod 700 /home');
    const changes = await sb.diff();
    assert.ok(changes.some((c) => c.kind === 'A' && c.path === '/root/new'), JSON.stringify(changes));
    assert.ok(changes.some((c) => c.kind === 'C' && c.path === '/home'));
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'moat-node-export-')), 'root.tar');
    await sb.export(out);
    const { spawnSync } = require('child_process');
    const t = spawnSync('tar', ['-xOf', out, 'root/new']);
    assert.equal(t.stdout.toString(), 'x\n');
    await assert.rejects(sb.commit('local/nothing:1'), (e) => e instanceof moat.InvalidArgumentError && /moat export/.test(e.message));
    await assert.rejects(sb.commit(''), moat.InvalidArgumentError);
  } finally {
    await sb.close();
  }
});
