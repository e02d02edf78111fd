'use strict';
// The quick starts in README.md and sdk/node/README.md run as written.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
require('./helpers');

const root = path.join(__dirname, '..', '..', '..');
for (const file of ['README.md', 'sdk/node/README.md']) {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const snippets = [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  test(`${file} has a JavaScript quick start`, () => assert.ok(snippets.length > 0));
  snippets.forEach((code, i) => {
    test(`${file} snippet ${i} runs`, () => {
      const r = spawnSync(process.execPath, ['-e', code], {
        encoding: 'utf8', timeout: 300000, cwd: root,
        env: { ...process.env, NODE_PATH: path.join(root, 'sdk') },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(r.stdout.length > 0, 'the snippet printed nothing');
    });
  });
}
