'use strict';
// Each test file gets a state directory of its own, set before the addon
// loads; libmoat's addon comes from $MOAT_NODE_ADDON (the build's).
const fs = require('fs');
const os = require('os');
const path = require('path');

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'moat-node-test-'));
process.env.MOAT_HOME = home;
process.on('exit', () => fs.rmSync(home, { recursive: true, force: true }));

module.exports = { moat: require('..'), home };
