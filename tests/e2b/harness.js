// What every E2B test file needs: the "base" template image in a local
// registry, a `moat serve --e2b` on a free loopback port with its own
// MOAT_HOME, and the E2B_* variables pointing the unmodified `e2b` package
// at it. Environment (set by ctest): MOAT_BIN, E2B_NODE_MODULES (the
// directory `npm ci` filled from tests/e2b/package-lock.json).
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const fixtures = path.join(root, 'tests', 'fixtures');
const MOAT = process.env.MOAT_BIN || path.join(root, 'build', 'bin', 'moat');
const MODULES = process.env.E2B_NODE_MODULES || path.join(__dirname, 'node_modules');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts }).trim();
}

async function waitFor(what, check, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

class E2bHarness {
  async start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moat-e2b-test-'));
    this.home = path.join(this.dir, 'home');
    fs.mkdirSync(this.home);
    const layout = sh(path.join(fixtures, 'make-e2b-base.sh'), []);
    this.registryDir = path.join(this.dir, 'registry');
    sh(path.join(fixtures, 'local-registry.sh'), ['start', this.registryDir]);
    const ref = sh(path.join(fixtures, 'local-registry.sh'), ['push', this.registryDir, layout, 'base', 'test/e2b-base']);
    this.templates = path.join(this.dir, 'templates.json');
    fs.writeFileSync(this.templates, JSON.stringify({
      templates: { base: { image: ref, user: 'user', insecure_registry: true, memory_mib: 512 } },
    }));
    this.port = await freePort();
    this.logPath = path.join(this.dir, 'serve.log');
    await this.startServer();
    this.url = `http://127.0.0.1:${this.port}`;
    this.token = fs.readFileSync(path.join(this.home, 'server.token'), 'utf8').trim();
    Object.assign(process.env, this.env());
    return this;
  }

  async startServer() {
    const log = fs.openSync(this.logPath, 'a');
    const from = fs.statSync(this.logPath).size;
    this.server = spawn(MOAT, ['serve', '--listen', `127.0.0.1:${this.port}`, '--e2b', '--e2b-templates', this.templates],
      { env: { ...process.env, MOAT_HOME: this.home }, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    await waitFor('moat serve', () => fs.readFileSync(this.logPath, 'utf8').slice(from).includes('listening on') ||
      (this.server.exitCode !== null && Promise.reject(new Error('moat serve ended: ' + this.log()))), 30000);
  }

  async stopServer() {
    if (this.server && this.server.exitCode === null) {
      const ended = new Promise((r) => this.server.once('exit', r));
      this.server.kill('SIGTERM');
      await ended;
    }
  }

  // What a program needs in its environment to reach this server.
  env() {
    return { E2B_API_URL: this.url, E2B_SANDBOX_URL: this.url, E2B_API_KEY: this.token };
  }

  log() {
    return fs.existsSync(this.logPath) ? fs.readFileSync(this.logPath, 'utf8') : '';
  }

  // The moat CLI on this server's MOAT_HOME.
  moat(args) {
    return sh(MOAT, args, { env: { ...process.env, MOAT_HOME: this.home } });
  }

  // The sandboxes moat knows in this server's MOAT_HOME.
  moatSandboxes() {
    const out = this.moat(['ls', '-q']);
    return out ? out.split('\n') : [];
  }

  async stop() {
    await this.stopServer();
    const left = this.home ? this.moatSandboxes() : [];
    if (left.length) this.moat(['rm', '-f', ...left]);
    if (this.registryDir) sh(path.join(fixtures, 'local-registry.sh'), ['stop', this.registryDir]);
    const log = this.log();
    for (const marker of ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'])
      if (log.includes(marker)) throw new Error('moat serve reported: ' + log.slice(log.indexOf(marker) - 200, 4000));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// The e2b package as npm installed it.
function e2b() {
  return require(path.join(MODULES, 'e2b'));
}

module.exports = { E2bHarness, e2b, waitFor, MODULES, MOAT };
