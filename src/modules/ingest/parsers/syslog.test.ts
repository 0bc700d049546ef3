import { describe, expect, it } from 'vitest';
import { parseStructuredData, parseSyslog } from './syslog.js';

const now = new Date('2026-11-22T12:00:00Z');

describe('parseSyslog', () => {
  it('reads RFC 5424 with structured data', () => {
    const f = parseSyslog('<165>1 2026-11-22T10:11:12.003+01:00 mymachine.example.com evntslog 7761 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][meta sequenceId="9"] \uFEFFAn application event', now);
    expect(f).toMatchObject({
      'log.syslog.facility.name': 'local4', 'log.syslog.severity.name': 'notice', 'event.severity': 5, '@timestamp': '2026-11-22T10:11:12.003+01:00',
      'host.name': 'mymachine.example.com', 'process.name': 'evntslog', 'process.pid': 7761, 'log.syslog.msgid': 'ID47',
      'syslog.sd.exampleSDID@32473.eventID': '1011', 'syslog.sd.meta.sequenceId': '9', message: 'An application event', 'log.syslog.format': 'rfc5424',
    });
  });

  it('reads RFC 5424 with nil values and no message', () => {
    const f = parseSyslog('<34>1 - - su - ID47 -', now);
    expect(f).toMatchObject({ 'process.name': 'su', 'log.syslog.severity.name': 'critical', message: '' });
    expect(f['host.name']).toBeUndefined();
    expect(f['@timestamp']).toBeUndefined();
  });

  it('reads RFC 3164 with the year that puts the time nearest now', () => {
    expect(parseSyslog('<38>Nov 22 11:59:00 web-1 sshd[2211]: Connection closed', now)).toMatchObject({ '@timestamp': '2026-11-22T11:59:00.000Z', 'host.name': 'web-1', 'process.name': 'sshd', 'process.pid': 2211, message: 'Connection closed', 'log.syslog.format': 'rfc3164' });
    expect(parseSyslog('<38>Dec 31 23:59:59 web-1 cron: x', now)['@timestamp']).toBe('2025-12-31T23:59:59.000Z');
    const noHost = parseSyslog('<13>Nov  2 08:00:00 logger-test: hello', now);
    expect(noHost).toMatchObject({ 'process.name': 'logger-test', message: 'hello' });
    expect(noHost).not.toHaveProperty('host.name');
  });

  it.each([
    ['<38>Nov 22 10:00:00 bastion sshd[1]: Failed password for invalid user admin from 203.0.113.9 port 52211 ssh2', { 'event.action': 'ssh_login', 'event.outcome': 'failure', 'user.name': 'admin', 'source.ip': '203.0.113.9', 'user.invalid': true }],
    ['<38>Nov 22 10:00:00 bastion sshd[1]: Failed password for root from 2001:db8::7 port 40000 ssh2', { 'event.action': 'ssh_login', 'event.outcome': 'failure', 'user.name': 'root', 'source.ip': '2001:db8::7' }],
    ['<38>Nov 22 10:00:00 bastion sshd[1]: Accepted publickey for deploy from 10.0.0.5 port 50022 ssh2: ED25519 SHA256:abc', { 'event.action': 'ssh_login', 'event.outcome': 'success', 'user.name': 'deploy', 'source.ip': '10.0.0.5', 'ssh.method': 'publickey' }],
    ['<38>Nov 22 10:00:00 bastion sshd[1]: Invalid user oracle from 198.51.100.4 port 3333', { 'event.action': 'ssh_invalid_user', 'user.name': 'oracle', 'source.ip': '198.51.100.4' }],
    ['<85>Nov 22 10:00:00 web sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx', { 'event.action': 'sudo', 'event.outcome': 'success', 'user.name': 'alice', 'user.target.name': 'root', 'process.command_line': '/usr/bin/systemctl restart nginx' }],
    ['<85>Nov 22 10:00:00 web sudo:    bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/bash', { 'event.action': 'sudo', 'event.outcome': 'failure', 'user.name': 'bob' }],
    ['<85>Nov 22 10:00:00 web su[99]: FAILED su for root by mallory', { 'event.action': 'su', 'event.outcome': 'failure', 'user.name': 'mallory', 'user.target.name': 'root' }],
  ])('understands %s', (line, expected) => expect(parseSyslog(line, now)).toMatchObject(expected));

  it('keeps unrecognisable lines whole', () => {
    expect(parseSyslog('just some text', now)).toMatchObject({ message: 'just some text', 'log.syslog.format': 'unknown' });
    expect(parseSyslog('<999>weird', now)).toMatchObject({ message: 'weird' });
    expect(parseSyslog('\u0000\u0001binary\u00ff', now)['log.syslog.format']).toBe('unknown');
  });

  it('unescapes structured data values', () => {
    expect(parseStructuredData('[x a="q\\"uote" b="br\\]acket"]')).toEqual({ 'syslog.sd.x.a': 'q"uote', 'syslog.sd.x.b': 'br]acket' });
  });
});
