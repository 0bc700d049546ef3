import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startListener, type Listener } from '../src/modules/ingest/sources/stream-listeners.js';
import { buildTestApp, buildUser, buildWorkspace, type TestApp, type TestUser } from './helpers/app.js';

const run = promisify(execFile);
const RSYSLOGD = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => existsSync(p));
// CI installs rsyslog (.ci/run) and must run this; elsewhere it runs when rsyslog is there.
if (!RSYSLOGD && process.env.CI === 'true') throw new Error('rsyslogd is required in CI (.ci/run installs it)');

describe.skipIf(!RSYSLOGD)('a syslog daemon (rsyslog) forwarding to the listeners', () => {
  let t: TestApp;
  let owner: TestUser;
  let ws: { id: string };
  const listeners: Listener[] = [];
  let daemon: ChildProcess;
  const dir = mkdtempSync(join(tmpdir(), 'siq-rsyslog-'));
  const socket = join(dir, 'log.sock');

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await buildUser(t.app);
    ws = await buildWorkspace(t.app, owner);
    const tcp = await startListener(t.app.ingest, t.app.platform.logger, { protocol: 'syslog', transport: 'tcp', host: '127.0.0.1', port: 0, workspaceId: ws.id });
    const udp = await startListener(t.app.ingest, t.app.platform.logger, { protocol: 'syslog', transport: 'udp', host: '127.0.0.1', port: 0, workspaceId: ws.id });
    listeners.push(tcp, udp);
    // Its own socket, work directory and pid file: nothing of the machine's syslog is touched.
    writeFileSync(join(dir, 'rsyslog.conf'), [
      `global(workDirectory="${dir}")`,
      'module(load="imuxsock" SysSock.Use="off")',
      `input(type="imuxsock" Socket="${socket}" CreatePath="on")`,
      `if $msg contains "via-tcp" then action(type="omfwd" target="127.0.0.1" port="${tcp.port}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")`,
      `if $msg contains "via-udp" then action(type="omfwd" target="127.0.0.1" port="${udp.port}" protocol="udp")`,
    ].join('\n'));
    daemon = spawn(RSYSLOGD!, ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslog.pid')], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!existsSync(socket)) {
      if (Date.now() > deadline) throw new Error('rsyslogd did not create its socket');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterAll(async () => {
    daemon?.kill('SIGTERM');
    for (const l of listeners) await l.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores what rsyslog forwards over TCP (octet-counted RFC 5424) and UDP (RFC 3164)', async () => {
    await run('logger', ['-u', socket, '-t', 'sshd', 'via-tcp Failed password for invalid user oracle from 192.0.2.44 port 2222 ssh2']);
    await run('logger', ['-u', socket, '-t', 'app', 'via-udp hello over udp']);
    const search = async (query: string) =>
      (await t.app.inject({ method: 'POST', url: `/api/v1/workspaces/${ws.id}/events/search`, headers: owner.headers, payload: { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', query } })).json().events as Array<Record<string, unknown>>;
    const deadline = Date.now() + 15_000;
    let tcp: Array<Record<string, unknown>> = [];
    let udp: Array<Record<string, unknown>> = [];
    while (Date.now() < deadline && (tcp.length === 0 || udp.length === 0)) {
      tcp = await search('"via-tcp"');
      udp = await search('"via-udp"');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(tcp).toHaveLength(1);
    expect(tcp[0]).toMatchObject({ 'log.syslog.format': 'rfc5424', 'process.name': 'sshd' });
    expect(udp).toHaveLength(1);
    expect(udp[0]).toMatchObject({ 'log.syslog.format': 'rfc3164', 'process.name': 'app' });
  });
});
