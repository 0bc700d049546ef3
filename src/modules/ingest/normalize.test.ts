import { describe, expect, it } from 'vitest';
import { flatten, normalize, parseTimestamp, RejectedEvent } from './normalize.js';

const received = new Date('2026-11-22T12:00:00Z');

describe('normalize', () => {
  it('reads Winlogbeat / ECS-shaped Windows events', () => {
    const e = normalize({
      '@timestamp': '2026-11-20T08:15:30.123Z',
      event: { code: '4625', provider: 'Microsoft-Windows-Security-Auditing' },
      host: { name: 'DC01' },
      winlog: { channel: 'Security', event_id: 4625, computer_name: 'DC01.corp', event_data: { TargetUserName: 'administrator', IpAddress: '198.51.100.7', LogonType: '3' } },
      message: 'An account failed to log on.',
    }, 'elasticsearch', received);
    expect(e).toMatchObject({ ts: new Date('2026-11-20T08:15:30.123Z'), category: 'authentication', action: 'logon-failed', outcome: 'failure', hostName: 'DC01', userName: 'administrator', sourceIp: '198.51.100.7', message: 'An account failed to log on.' });
    expect(e.doc['winlog.event_data.LogonType']).toBe('3');
    expect(e.doc['winlog.channel']).toBe('Security');
  });

  it('reads NXLog flat fields (as in the OTRF datasets)', () => {
    const e = normalize({ EventTime: '2020-10-19 12:28:44', Hostname: 'WORKSTATION5', EventID: 1, Channel: 'Microsoft-Windows-Sysmon/Operational', Image: 'C:\\Windows\\System32\\cmd.exe', CommandLine: 'cmd.exe /c whoami', User: 'CORP\\alice' }, 'http', received);
    expect(e).toMatchObject({ ts: new Date('2020-10-19T12:28:44Z'), category: 'process', action: 'process-created', hostName: 'WORKSTATION5', userName: 'CORP\\alice' });
    expect(e.doc.CommandLine).toBe('cmd.exe /c whoami');
    expect(e.doc['event.timestamp_source']).toMatch(/UTC/);
    expect(e.doc['event.code']).toBe('1');
  });

  it('reads evtx_dump JSON', () => {
    const e = normalize({
      Event: {
        System: { EventID: 4688, Channel: 'Security', Computer: 'SRV-9', TimeCreated: { '#attributes': { SystemTime: '2026-11-20T09:00:00.000000Z' } } },
        EventData: { NewProcessName: 'C:\\Windows\\System32\\whoami.exe', SubjectUserName: 'bob', CommandLine: 'whoami /all' },
      },
    }, 'file', received);
    expect(e).toMatchObject({ ts: new Date('2026-11-20T09:00:00Z'), action: 'process-created', hostName: 'SRV-9', userName: 'bob' });
    expect(e.doc['Event.EventData.CommandLine']).toBe('whoami /all');
  });

  it('uses the receive time when the event has none, or an absurd one, and says so', () => {
    const none = normalize({ message: 'x' }, 'http', received);
    expect(none.ts).toEqual(received);
    expect(none.doc['event.timestamp_source']).toBe('received');
    const future = normalize({ '@timestamp': '2099-01-01T00:00:00Z' }, 'http', received);
    expect(future.ts).toEqual(received);
    expect(future.doc['event.original_timestamp']).toBe('2099-01-01T00:00:00.000Z');
  });

  it('parses time zones and epochs', () => {
    expect(parseTimestamp('2026-11-20T10:00:00+02:00')!.time.toISOString()).toBe('2026-11-20T08:00:00.000Z');
    expect(parseTimestamp(1795000000)!.time.toISOString()).toBe(new Date(1795000000 * 1000).toISOString());
    expect(parseTimestamp('1795000000123')!.time.getTime()).toBe(1795000000123);
    expect(parseTimestamp('not a time')).toBeNull();
  });

  it('rejects what is not an object, nests too deep, or has too many fields', () => {
    expect(() => normalize([] as unknown as Record<string, unknown>, 'http', received)).toThrow(RejectedEvent);
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 20; i++) deep = { d: deep };
    expect(() => flatten(deep)).toThrow(/deeper/);
    expect(() => flatten(Object.fromEntries(Array.from({ length: 2001 }, (_, i) => [`f${i}`, i])))).toThrow(/more than/);
  });

  it('keeps invalid IPs out of the typed columns but in the event', () => {
    const e = normalize({ 'source.ip': 'not-an-ip', src_ip: '::ffff:10.1.2.3' }, 'http', received);
    expect(e.sourceIp).toBeNull();
    expect(e.doc['source.ip']).toBe('not-an-ip');
  });
});
