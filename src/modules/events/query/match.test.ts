import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, buildUser, buildWorkspace, type TestApp } from '../../../../test/helpers/app.js';
import { testDatabaseUrl } from '../../../../test/helpers/services.js';
import { isSiqError } from '../../../errors.js';
import { normalize } from '../../ingest/normalize.js';
import { searchEvents } from '../search.js';
import { compileMatcher, matchesQuery, pgLower, tokenize } from './match.js';
import { parseQuery } from './parser.js';

const RECEIVED = new Date('2026-11-20T13:00:00.000Z');
const doc = (raw: Record<string, unknown>) => normalize(raw, 'test', RECEIVED).doc;

const sshFail = doc({ '@timestamp': '2026-11-20T12:00:00Z', event: { action: 'ssh_login', outcome: 'failure', severity: 5 }, host: { name: 'web-1' }, source: { ip: '203.0.113.9' }, user: { name: 'root' }, message: 'Failed password for root from 203.0.113.9', process: { name: 'sshd' }, bytes: 10 });
const procBob = doc({ '@timestamp': '2026-11-20T12:05:00Z', event: { action: 'process-created' }, severity: 'warning', host: { name: 'WS-7' }, user: { name: 'Bob' }, message: 'Process created by NT AUTHORITY\\SYSTEM', CommandLine: 'C:\\tools\\mimikatz.exe "sekurlsa::logonpasswords"', EventID: 4688, tags: ['lab', 'red-team'] });
const dns6 = doc({ '@timestamp': '2026-11-20T12:10:00Z', event: { action: 'dns-query' }, hostname: 'ws-8', src_ip: '::ffff:2001:db8::7', SourceIp: '2001:db8::7', message: 'query evil.example 50%_off', dns: { question: { name: 'evil.example' } }, ratio: 1.5e-7 });
const fallback = doc({ '@timestamp': '2026-11-20T12:15:00Z', 'host.name': '', hostname: 'dc-1', 'source.ip': 'not-an-ip', src_ip: '10.1.2.3', msg: 'it\'s quoted "here"' });

const m = (query: string, d: Record<string, unknown>) => matchesQuery(query, d);

describe('compileMatcher', () => {
  it.each([
    ['', [true, true, true, true]],
    ['*', [true, true, true, true]],
    ['failed', [true, false, false, false]],
    ['FAILED password', [true, false, false, false]],
    ['"failed password"', [true, false, false, false]],
    ['"password failed"', [false, false, false, false]],
    ['evil', [false, false, false, false]], // `evil.example` is one lexeme, as PostgreSQL parses it
    ['evil.example', [false, false, true, false]],
    ['fail*', [true, false, false, false]],
    ['message:*50\\%_off*', [false, false, true, false]],
    ['message:*50\\%xoff*', [false, false, false, false]],
  ])('free text %s', (query, expected) => {
    expect([sshFail, procBob, dns6, fallback].map((d) => m(query, d))).toEqual(expected);
  });

  it('resolves hot-column names to what normalize() stored (aliases, fallbacks, truncation)', () => {
    expect(m('host.name:ws-8', dns6)).toBe(true); // from `hostname`
    expect(m('host.name:dc-1', fallback)).toBe(true); // `host.name` present but empty: normalize looked further
    expect(m('source.ip:2001:db8::7', dns6)).toBe(false); // src_ip is taken first and is not an address
    expect(m('source.ip:10.1.2.3', fallback)).toBe(false); // source.ip present but invalid: the column is empty
    expect(m('_exists_:source.ip', fallback)).toBe(false);
    expect(m('_exists_:message', fallback)).toBe(true);
    expect(m('message:"quoted here"', fallback)).toBe(true); // message from `msg`
    expect(m('event.severity:4', procBob)).toBe(true); // "warning" → 4
    expect(m('event.source:test', sshFail)).toBe(true);
  });

  it('matches keyword columns exactly and wildcards case-insensitively', () => {
    expect(m('event.action:ssh_login', sshFail)).toBe(true);
    expect(m('event.action:SSH_LOGIN', sshFail)).toBe(false);
    expect(m('event.action:SSH_*', sshFail)).toBe(true);
    expect(m('user.name:Bob', procBob)).toBe(true);
    expect(m('user.name:bob', procBob)).toBe(false);
    expect(m('host.name:ws-?', procBob)).toBe(true);
    expect(m('host.name:ws-??', procBob)).toBe(false);
    expect(m('host.name:*-*-*', procBob)).toBe(false);
  });

  it('matches other fields case-insensitively as text, and one element of an array', () => {
    expect(m('process.name:SSHD', sshFail)).toBe(true);
    expect(m('EventID:4688', procBob)).toBe(true);
    expect(m('tags:RED-TEAM', procBob)).toBe(true);
    expect(m('tags:red', procBob)).toBe(false);
    expect(m('tags:*red-team*', procBob)).toBe(true); // wildcards see the array's jsonb text
    expect(m('tags:red*', procBob)).toBe(false);
    expect(m('CommandLine:*MIMIKATZ.EXE*', procBob)).toBe(true);
    expect(m('ratio:0.00000015', dns6)).toBe(true); // numbers as jsonb prints them
  });

  it('compares ranges as numbers, dates, addresses or text', () => {
    expect(m('event.severity:>=5', sshFail)).toBe(true);
    expect(m('event.severity:[4 TO 5}', sshFail)).toBe(false);
    expect(m('event.severity:{4 TO 5]', sshFail)).toBe(true);
    expect(m('bytes:>9.5', sshFail)).toBe(true);
    expect(m('bytes:[* TO 9]', sshFail)).toBe(false);
    expect(m('EventID:<5x', procBob)).toBe(true); // a bound that is no number compares as text: "4688" < "5x"
    expect(m('EventID:<5', procBob)).toBe(false);
    expect(m('@timestamp:>=2026-11-20T12:05:00Z', procBob)).toBe(true);
    expect(m('@timestamp:>2026-11-20T12:05:00Z', procBob)).toBe(false);
    expect(m('@timestamp:[2026-11-20 TO 2026-11-21]', procBob)).toBe(true);
    expect(m('host.name:[A TO Z]', procBob)).toBe(true); // "WS-7": C collation, upper case first
    expect(m('host.name:[a TO z]', procBob)).toBe(false);
    expect(m('source.ip:[203.0.113.0 TO 203.0.113.255]', sshFail)).toBe(true);
    expect(m('source.ip:>10.0.0.0', fallback)).toBe(false);
    expect(m('bytes:[* TO *]', sshFail)).toBe(true);
  });

  it('takes addresses and CIDR blocks, IPv4 and IPv6', () => {
    expect(m('source.ip:203.0.113.0/24', sshFail)).toBe(true);
    expect(m('source.ip:203.0.112.0/24', sshFail)).toBe(false);
    expect(m('source.ip:0.0.0.0/0', sshFail)).toBe(true);
    expect(m('source.ip:::/0', sshFail)).toBe(false);
    expect(m('source.ip:"203.0.113.9"', sshFail)).toBe(true);
    const v6 = doc({ 'source.ip': '2001:db8::7' });
    expect(m('source.ip:2001:db8::/32', v6)).toBe(true);
    expect(m('source.ip:"2001:0db8:0:0:0:0:0:7"', v6)).toBe(true);
    expect(m('source.ip:2001:db9::/32', v6)).toBe(false);
    const mapped = doc({ 'source.ip': '::ffff:192.0.2.1' });
    expect(m('source.ip:192.0.2.1', mapped)).toBe(true); // normalize() unmaps
    expect(m('source.ip:"::ffff:192.0.2.1"', mapped)).toBe(false); // another family for inet
  });

  it('knows _exists_, AND, OR, NOT and NOT on missing fields', () => {
    expect(m('_exists_:CommandLine', procBob)).toBe(true);
    expect(m('_exists_:CommandLine', sshFail)).toBe(false);
    expect(m('NOT event.outcome:failure', procBob)).toBe(true);
    expect(m('-event.outcome:failure', sshFail)).toBe(false);
    expect(m('event.action:(ssh_login OR dns-query) AND NOT host.name:web-*', dns6)).toBe(true);
    expect(m('event.action:(ssh_login OR dns-query) AND NOT host.name:web-*', sshFail)).toBe(false);
    expect(m('failed || created', procBob)).toBe(true);
    expect(m('failed && created', procBob)).toBe(false);
  });

  it('refuses what search refuses, with the position', () => {
    const error = (query: string) => {
      try {
        compileMatcher(parseQuery(query));
      } catch (err) {
        return err;
      }
      return null;
    };
    for (const query of ['a AND source.ip:not-an-ip', 'event.severity:high', '@timestamp:[yesterday TO now]', 'source.ip:10.0.0.1/8', 'event.severity:99999999999']) {
      expect(isSiqError(error(query), 'SIQ_QUERY_SYNTAX')).toBe(true);
    }
    expect(String(error('a AND source.ip:not-an-ip'))).toMatch(/position 16/);
  });

  it('compiles once and evaluates many events', () => {
    const matcher = compileMatcher(parseQuery('event.action:ssh_* AND source.ip:203.0.113.0/24'));
    expect([sshFail, procBob, dns6, fallback, sshFail].map(matcher)).toEqual([true, false, false, false, true]);
  });

  it('tokenises like PostgreSQL\'s default parser and lowercases like lower()', () => {
    expect(tokenize('web-1 foo-bar user@example.com http://x.com/a /usr/bin/ls 203.0.113.9:22 svc_backup 2026-01-02T03:04:05Z')).toEqual(
      ['web', '-1', 'foo-bar', 'foo', 'bar', 'user@example.com', 'x.com/a', 'x.com', '/a', '/usr/bin/ls', '203.0.113.9', '22', 'svc', 'backup', '2026', '-01', '-02', 't03', '04', '05z'],
    );
    expect(pgLower('ÄÉİΣ')).toBe('äéiσ');
  });

  it('stays linear on hostile messages', () => {
    const long = doc({ message: 'a-1-'.repeat(16_000), 'host.name': 'a'.repeat(200) });
    expect(m('"a -1"', long)).toBe(true);
    expect(m(`host.name:${'*a'.repeat(60)}*b`, long)).toBe(false);
  });
});

// The same events stored through the ingest pipeline and searched in SQL: the matcher must select the same ones.
const T = Date.UTC(2026, 10, 20, 8);
const at = (i: number) => new Date(T + i * 60_000).toISOString();
const hosts = ['web-1', 'web-2', 'WS-7', 'ws-8', 'dc-1', 'Web-10', 'db.internal.example'];
const users = ['root', 'alice', 'Bob', 'svc_backup', 'ALICE', null];
const messages = [
  'Failed password for root from 203.0.113.9 port 22 ssh2',
  'Accepted publickey for alice from 10.0.0.5 port 51234 ssh2',
  'Process created: C:\\tools\\mimikatz.exe "sekurlsa::logonpasswords"',
  'query evil.example 50%_off',
  'it\'s quoted "here" and FAILED again',
  'GET /index.html HTTP/1.1 200 1234 "Mozilla/5.0"',
  'user=admin@corp.local action=login-failed src=192.168.1.10',
  'Über straße ÄRGER failed-login',
];
const items: Array<Record<string, unknown>> = [];
for (let i = 0; i < 40; i++) {
  const e: Record<string, unknown> = { n: i, '@timestamp': at(i), message: messages[i % messages.length] };
  if (i % 9 !== 4) e.host = { name: hosts[i % hosts.length] };
  else e.hostname = `alias-${i}`;
  if (users[i % users.length]) e.user = { name: users[i % users.length] };
  e.event = { action: ['ssh_login', 'logon', 'process-created', 'dns-query'][i % 4], ...(i % 3 === 0 ? { outcome: i % 2 ? 'success' : 'failure' } : {}) };
  if (i % 5 !== 2) e.severity = i % 7 === 1 ? 'warning' : i % 8;
  if (i % 4 === 0) e['source.ip'] = `10.0.${i}.${i + 1}`;
  else if (i % 4 === 1) e.src_ip = `203.0.113.${i}`;
  else if (i % 4 === 2) e['source.ip'] = i % 8 === 2 ? '2001:db8::' + i.toString(16) : '::ffff:198.51.100.' + i;
  if (i % 6 === 0) e.bytes = i * 37;
  if (i % 6 === 1) e.bytes = String(i * 37);
  if (i % 7 === 3) e.tags = ['lab', i % 2 ? 'red-team' : 'Blue'];
  if (i % 10 === 5) e.CommandLine = `powershell -enc ${i} C:\\Windows\\Temp\\x${i}.ps1`;
  if (i === 11) e['host.name'] = '';
  items.push(e);
}

const queries = [
  'failed',
  '"failed password"',
  'FAILED OR alice',
  'evil.example',
  'failed-login',
  'fail*',
  'message:*50\\%_off*',
  'host.name:web-*',
  'host.name:ws-?',
  'host.name:alias-*',
  'user.name:alice',
  'user.name:ALICE* AND NOT event.outcome:success',
  'event.action:(ssh_login OR dns-query) AND NOT host.name:web-1',
  'event.severity:>=4',
  'event.severity:[2 TO 5}',
  'event.severity:4',
  'source.ip:10.0.0.0/8',
  'source.ip:2001:db8::/32',
  'source.ip:[198.51.100.0 TO 203.0.113.20]',
  'bytes:>200',
  'bytes:[100 TO 500]',
  'bytes:<"3"',
  'tags:red-team OR tags:blue',
  'CommandLine:*TEMP*',
  '_exists_:CommandLine OR _exists_:tags',
  'NOT _exists_:source.ip',
  '@timestamp:[2026-11-20T08:10:00Z TO 2026-11-20T08:20:00Z}',
  'host.name:[W TO x]',
  'n:>=30 AND -event.action:logon',
  'http',
];

const implementations = [
  { name: 'pglite', enabled: true, postgres: false },
  { name: 'postgres', enabled: Boolean(testDatabaseUrl), postgres: true },
];

describe.each(implementations)('the matcher selects what search finds ($name)', ({ enabled, postgres }) => {
  let t: TestApp;
  let workspaceId: string;
  let stored: Array<Record<string, unknown>>;
  const fresh = items.map((raw) => normalize(structuredClone(raw), 'test', RECEIVED).doc);

  beforeAll(async () => {
    if (!enabled) return;
    t = await buildTestApp({}, { postgres });
    const owner = await buildUser(t.app);
    workspaceId = (await buildWorkspace(t.app, owner)).id;
    const results = await t.app.ingest.ingest(workspaceId, 'test', items.map((value) => ({ value: structuredClone(value) })), RECEIVED);
    expect(results.every((r) => r.status === 'stored')).toBe(true);
    stored = (await search('')).map((e) => {
      const { id: _id, timestamp: _timestamp, ...rest } = e;
      return rest;
    });
  }, 120_000);
  afterAll(async () => t?.close());

  async function search(query: string) {
    return (await t.app.platform.db.transaction((tx) => searchEvents(tx, { workspaceId, query, from: new Date(T - 3_600_000), to: new Date(T + 3_600_000), size: 1000, sort: 'asc' }))).events;
  }

  it.skipIf(!enabled).each(queries)('%s', async (query) => {
    expect(stored).toHaveLength(40);
    const found = (await search(query)).map((e) => e.n as number).sort((a, b) => a - b);
    const matcher = compileMatcher(parseQuery(query));
    expect(stored.filter(matcher).map((d) => d.n as number).sort((a, b) => a - b)).toEqual(found);
    // The same on the doc normalize() hands over before the event is stored.
    expect(fresh.filter(matcher).map((d) => d.n as number)).toEqual(found);
  });

  it.skipIf(!enabled)('covers queries that select some events and not all', async () => {
    const sizes = await Promise.all(queries.map(async (q) => (await search(q)).length));
    expect(sizes.filter((n) => n > 0 && n < 40).length).toBeGreaterThanOrEqual(queries.length - 2);
  });
});
