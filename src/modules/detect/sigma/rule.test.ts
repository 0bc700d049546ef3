import { describe, expect, it } from 'vitest';
import { EventView, type Mapping } from '../mapping.js';
import {
  parseSigmaDocument,
  parseSigmaYaml,
  parseTimespan,
  SigmaRuleError,
  type ParsedDocument,
  type SigmaCorrelationRule,
  type SigmaDetectionRule,
  type SigmaDocument,
  type SigmaFilterRule,
} from './rule.js';

const bare: Mapping = { fieldPrefixes: [], fieldAliases: {}, logsources: {} };
const view = (doc: Record<string, unknown>) => new EventView(doc, bare);

function ok(parsed: ParsedDocument[], i = 0): SigmaDocument {
  const p = parsed[i]!;
  if (!p.ok) throw new Error(`document ${i} rejected: ${p.reason}: ${p.message}`);
  return p.rule;
}
const one = (yaml: string): SigmaDocument => {
  const parsed = parseSigmaYaml(yaml);
  expect(parsed).toHaveLength(1);
  return ok(parsed);
};
const rule = (yaml: string) => {
  const doc = one(yaml);
  expect(doc.kind).toBe('rule');
  return doc as SigmaDetectionRule;
};
const correlation = (yaml: string) => {
  const doc = one(yaml);
  expect(doc.kind).toBe('correlation');
  return doc as SigmaCorrelationRule;
};
/** The rejection reason of a single-document YAML text. */
function reason(yaml: string): string {
  const parsed = parseSigmaYaml(yaml);
  expect(parsed).toHaveLength(1);
  const p = parsed[0]!;
  if (p.ok) throw new Error('document was accepted');
  return p.reason;
}

const header = `title: Test
logsource:
    category: process_creation
    product: windows
`;
/** A rule with the given detection section (indented 4 spaces under detection:). */
const withDetection = (detection: string) => `${header}detection:\n${detection.replace(/^/gm, '    ')}\n`;

describe('detection rules', () => {
  it('parse the spec example (Whoami Execution)', () => {
    const r = rule(`title: Whoami Execution
description: Detects a whoami.exe execution
references:
      - https://speakerdeck.com/heirhabarov/hunting-for-privilege-escalation-in-windows-environment
author: Florian Roth
date: 2019-10-23
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image: 'C:\\Windows\\System32\\whoami.exe'
    condition: selection
level: high
`);
    expect(r).toMatchObject({ title: 'Whoami Execution', description: 'Detects a whoami.exe execution', level: 'high', logsource: { category: 'process_creation', product: 'windows' }, fields: ['Image'], id: null, name: null });
    expect(r.match(view({ Image: 'C:\\Windows\\System32\\whoami.exe' }))).toBe(true);
    expect(r.match(view({ Image: 'C:\\Windows\\System32\\cmd.exe' }))).toBe(false);
  });

  it('fill defaults and normalise metadata', () => {
    const r = rule(`title: '  Padded title  '
id: 929a690e-bef0-4204-a928-ef5e620d6fcc
name: padded_rule
status: test
tags: [attack.Execution, ATTACK.T1059]
logsource:
    product: Windows
    service: Security
detection:
    sel:
        EventID: 4688
    condition: sel
`);
    expect(r).toMatchObject({
      title: 'Padded title',
      id: '929a690e-bef0-4204-a928-ef5e620d6fcc',
      name: 'padded_rule',
      status: 'test',
      level: 'medium',
      description: '',
      tags: ['attack.execution', 'attack.t1059'],
      logsource: { product: 'windows', service: 'security' },
    });
  });

  it('accept levels in any case', () => {
    expect(rule(`${header}level: Critical\ndetection:\n    s:\n        a: b\n    condition: s\n`).level).toBe('critical');
    expect(rule(`${header}level: informational\ndetection:\n    s:\n        a: b\n    condition: s\n`).level).toBe('informational');
  });

  it('AND the items of a map (spec: Security and 517 or 1102)', () => {
    const r = rule(withDetection(`selection:
    EventLog: Security
    EventID:
        - 517
        - 1102
condition: selection`));
    expect(r.match(view({ EventLog: 'Security', EventID: 1102 }))).toBe(true);
    expect(r.match(view({ EventLog: 'Security', EventID: 4624 }))).toBe(false);
    expect(r.match(view({ EventLog: 'System', EventID: 517 }))).toBe(false);
    expect(r.fields.sort()).toEqual(['EventID', 'EventLog']);
  });

  it('OR the maps of a list (spec: endswith example.exe or description contains)', () => {
    const r = rule(withDetection(`selection:
    - Image|endswith: '\\example.exe'
    - Description|contains: 'Test executable'
condition: selection`));
    expect(r.match(view({ Image: 'C:\\x\\example.exe' }))).toBe(true);
    expect(r.match(view({ Description: 'A Test Executable here' }))).toBe(true);
    expect(r.match(view({ Image: 'C:\\x\\other.exe', Description: 'nothing' }))).toBe(false);
  });

  it('search keywords given as a list or a single string', () => {
    const r = rule(withDetection(`keywords:
    - 'EVILSERVICE'
    - 'svchost.exe -n evil'
condition: keywords`));
    expect(r.match(view({ Message: 'service evilservice installed' }))).toBe(true);
    expect(r.match(view({ Message: 'benign' }))).toBe(false);
    expect(r.fields).toEqual([]);
    const single = rule(withDetection(`keyword: 'mimikatz'\ncondition: keyword`));
    expect(single.match(view({ a: 'run MimiKatz now' }))).toBe(true);
  });

  it('AND keywords with |all (spec example)', () => {
    const r = rule(withDetection(`keywords_cmdlet:
    '|all':
        - 'OabVirtualDirectory'
        - ' -ExternalUrl '
condition: keywords_cmdlet`));
    expect(r.match(view({ Payload: 'Set-OabVirtualDirectory -ExternalUrl http://x' }))).toBe(true);
    expect(r.match(view({ Payload: 'Set-OabVirtualDirectory' }))).toBe(false);
  });

  it('apply null and exists (spec examples with PasswordLastSet)', () => {
    const notNull = rule(withDetection(`selection:
    EventID: 4738
filter:
    PasswordLastSet: null
condition: selection and not filter`));
    expect(notNull.match(view({ EventID: 4738, PasswordLastSet: '2024-01-01' }))).toBe(true);
    expect(notNull.match(view({ EventID: 4738 }))).toBe(false);
    const exists = rule(withDetection(`selection:
    EventID: 4738
    PasswordLastSet|exists: true
condition: selection`));
    expect(exists.match(view({ EventID: 4738, PasswordLastSet: '-' }))).toBe(true);
    expect(exists.match(view({ EventID: 4738 }))).toBe(false);
  });

  it('OR the conditions of a list', () => {
    const r = rule(withDetection(`sel_a:
    A: 1
sel_b:
    B: 2
condition:
    - sel_a
    - sel_b`));
    expect(r.match(view({ A: 1 }))).toBe(true);
    expect(r.match(view({ B: 2 }))).toBe(true);
    expect(r.match(view({ A: 2, B: 1 }))).toBe(false);
  });

  it('accept a condition written as a block scalar (trailing newline)', () => {
    const r = rule(withDetection(`selection:
    A: 1
filter:
    B: 2
condition: |
    selection and
    not filter`));
    expect(r.match(view({ A: 1 }))).toBe(true);
    expect(r.match(view({ A: 1, B: 2 }))).toBe(false);
  });

  it('an empty map search matches everything', () => {
    const r = rule(withDetection(`selection: {}\ncondition: selection`));
    expect(r.match(view({}))).toBe(true);
  });

  it('lower-case modifiers', () => {
    const r = rule(withDetection(`selection:\n    Image|EndsWith: '\\cmd.exe'\ncondition: selection`));
    expect(r.match(view({ Image: 'C:\\cmd.exe' }))).toBe(true);
  });

  it('compile expand with the placeholders given', () => {
    const yaml = withDetection(`selection:\n    User|expand: '%Administrators%'\ncondition: selection`);
    const parsed = parseSigmaYaml(yaml, { placeholders: { Administrators: ['root', 'adm_*'] } });
    const r = ok(parsed) as SigmaDetectionRule;
    expect(r.match(view({ User: 'adm_alice' }))).toBe(true);
    expect(r.match(view({ User: 'alice' }))).toBe(false);
    expect(reason(yaml)).toBe('unknown_placeholder');
  });
});

describe('rejections', () => {
  const good = `title: Good
logsource: {product: windows}
detection:
    s: {a: b}
    condition: s
`;
  const cases: Array<[string, string]> = [
    ['missing_title', 'logsource: {product: windows}\ndetection: {s: {a: b}, condition: s}\n'],
    ['missing_title', "title: '   '\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: s}\n"],
    ['missing_logsource', 'title: T\ndetection: {s: {a: b}, condition: s}\n'],
    ['missing_logsource', 'title: T\nlogsource: {definition: x}\ndetection: {s: {a: b}, condition: s}\n'],
    ['missing_detection', 'title: T\nlogsource: {product: windows}\n'],
    ['invalid_condition', 'title: T\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: s and t}\n'],
    ['invalid_condition', 'title: T\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: (s}\n'],
    ['unsupported_modifier', 'title: T\nlogsource: {product: windows}\ndetection: {s: {a|sha256: b}, condition: s}\n'],
    ['invalid_level', 'title: T\nlevel: severe\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: s}\n'],
    ['unsupported_aggregation', 'title: T\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: s | count() > 5}\n'],
    ['unsupported_aggregation', 'title: T\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: s | count(User) by Computer > 5}\n'],
    ['unsupported_aggregation', 'title: T\nlogsource: {product: windows}\ndetection: {s: {a: b}, t: {c: d}, condition: s | near t}\n'],
    ['unsupported_aggregation', 'title: T\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: s, timeframe: 5m}\n'],
    ['unsupported_correlation', 'title: T\ncorrelation: {type: value_sum, rules: [r], timespan: 1h, condition: {gte: 1}}\n'],
    ['missing_condition', 'title: T\nlogsource: {product: windows}\ndetection: {s: {a: b}}\n'],
    ['invalid_detection', 'title: T\nlogsource: {product: windows}\ndetection: {condition: s}\n'],
    ['invalid_detection', 'title: T\nlogsource: {product: windows}\ndetection: {s: [], condition: s}\n'],
    ['invalid_detection', 'title: T\nlogsource: {product: windows}\ndetection: {s: [{a: b}, c], condition: s}\n'],
    ['invalid_regex', "title: T\nlogsource: {product: windows}\ndetection: {s: {a|re: '('}, condition: s}\n"],
    ['invalid_title', `title: ${'x'.repeat(257)}\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: s}\n`],
    ['invalid_tags', 'title: T\ntags: attack.t1059\nlogsource: {product: windows}\ndetection: {s: {a: b}, condition: s}\n'],
    ['invalid_yaml', '- just\n- a list\n'],
    ['invalid_yaml', 'title: [unclosed\n'],
  ];

  it.each(cases)('%s', (expected, yaml) => {
    expect(reason(yaml)).toBe(expected);
  });

  it('reject each bad document alone in a multi-document file, with its position and metadata', () => {
    const docs = [good, ...cases.filter(([r]) => r !== 'invalid_yaml').map(([, yaml]) => yaml), good];
    const parsed = parseSigmaYaml(docs.join('---\n'));
    expect(parsed).toHaveLength(docs.length);
    expect(parsed.map((p) => p.index)).toEqual(docs.map((_d, i) => i));
    expect(parsed[0]!.ok).toBe(true);
    expect(parsed.at(-1)!.ok).toBe(true);
    expect(parsed.slice(1, -1).map((p) => (p.ok ? 'ok' : p.reason))).toEqual(cases.filter(([r]) => r !== 'invalid_yaml').map(([r]) => r));
    const levelDoc = parsed.find((p) => !p.ok && p.reason === 'invalid_level');
    expect(levelDoc).toMatchObject({ title: 'T' });
  });

  it('report the id of a rejected rule', () => {
    const parsed = parseSigmaYaml('title: T\nid: abc-123\nlogsource: {product: x}\ndetection: {s: {a|nope: b}, condition: s}\n');
    expect(parsed[0]).toMatchObject({ ok: false, reason: 'unsupported_modifier', id: 'abc-123', title: 'T' });
  });

  it('skip empty documents between separators', () => {
    const parsed = parseSigmaYaml(`---\n${good}---\n---\n${good}`);
    expect(parsed.map((p) => p.ok)).toEqual([true, true]);
  });

  it('parseSigmaDocument throws SigmaRuleError with the reason', () => {
    expect(() => parseSigmaDocument({ title: 'x' })).toThrow(SigmaRuleError);
    try {
      parseSigmaDocument({ title: 'x', logsource: { product: 'windows' }, detection: { s: { 'a|cidr': 'bad' }, condition: 's' } });
    } catch (err) {
      expect((err as SigmaRuleError).reason).toBe('invalid_value');
    }
    expect.assertions(2);
  });
});

describe('multi-document files', () => {
  it('a rule and a correlation in one file', () => {
    const parsed = parseSigmaYaml(`title: Failed logon
name: failed_logon
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Many failed logons
correlation:
    type: event_count
    rules: failed_logon
    group-by: TargetUserName
    timespan: 5m
    condition:
        gte: 10
`);
    expect(parsed).toHaveLength(2);
    expect(ok(parsed, 0)).toMatchObject({ kind: 'rule', name: 'failed_logon' });
    expect(ok(parsed, 1)).toMatchObject({ kind: 'correlation', type: 'event_count', rules: ['failed_logon'], groupBy: ['TargetUserName'], timespanMs: 300_000, condition: { gte: 10 } });
  });

  it('the spec example: failed logins followed by a successful login', () => {
    const parsed = parseSigmaYaml(`title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
description: Detects multiple failed logins by a single user followed by a successful login of that user
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
description: Detects multiple failed logins within a certain amount of time
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 529
            - 4625
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
description: Detects a successful login
name: successful_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 528
            - 4624
    condition: selection
`);
    expect(parsed.map((p) => p.ok)).toEqual([true, true, true, true]);
    const top = ok(parsed, 0) as SigmaCorrelationRule;
    expect(top).toMatchObject({ kind: 'correlation', type: 'temporal_ordered', rules: ['multiple_failed_login', 'successful_login'], groupBy: ['User'], timespanMs: 600_000, condition: { gte: 2 }, level: 'high', generate: false });
    expect(ok(parsed, 1)).toMatchObject({ type: 'event_count', name: 'multiple_failed_login', condition: { gte: 10 }, level: 'medium' });
    const failed = ok(parsed, 2) as SigmaDetectionRule;
    expect(failed.match(view({ EventID: 4625 }))).toBe(true);
    expect(failed.match(view({ EventID: 4624 }))).toBe(false);
  });
});

describe('correlation rules', () => {
  const corr = (body: string, extra = '') => `title: C\n${extra}correlation:\n${body.replace(/^/gm, '    ')}\n`;

  it('event_count (spec example)', () => {
    const c = correlation(`title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
    type: event_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by:
        - ComputerName
    timespan: 1h
    condition:
        gte: 100
`);
    expect(c).toMatchObject({ id: '0e95725d-7320-415d-80f7-004da920fc11', type: 'event_count', rules: ['5638f7c0-ac70-491d-8465-2a65075e0d86'], groupBy: ['ComputerName'], timespanMs: 3_600_000, condition: { gte: 100 }, field: null, aliases: {} });
  });

  it('value_count with its field (spec example)', () => {
    const c = correlation(corr(`type: value_count
rules:
    - 5638f7c0-ac70-491d-8465-2a65075e0d86
group-by:
    - ComputerName
    - WorkstationName
timespan: 1d
condition:
    field: User
    gte: 100`));
    expect(c).toMatchObject({ type: 'value_count', groupBy: ['ComputerName', 'WorkstationName'], timespanMs: 86_400_000, condition: { gte: 100 }, field: 'User' });
  });

  it('value_count needs a field, counts need a condition', () => {
    expect(reason(corr('type: value_count\nrules: [r]\ntimespan: 1h\ncondition: {gte: 3}'))).toBe('invalid_correlation');
    expect(reason(corr('type: event_count\nrules: [r]\ntimespan: 1h'))).toBe('invalid_correlation');
    expect(reason(corr('type: value_count\nrules: [r]\ntimespan: 1h'))).toBe('invalid_correlation');
  });

  it('temporal: the default condition is the number of rules (spec example)', () => {
    const c = correlation(corr(`type: temporal
rules:
    - recon_cmd_a
    - recon_cmd_b
    - recon_cmd_c
group-by:
    - ComputerName
    - User
timespan: 5m`));
    expect(c).toMatchObject({ type: 'temporal', rules: ['recon_cmd_a', 'recon_cmd_b', 'recon_cmd_c'], condition: { gte: 3 }, timespanMs: 300_000 });
  });

  it('temporal_ordered keeps the rule order (spec example)', () => {
    const c = correlation(corr(`type: temporal_ordered
rules:
    - many_failed_logins
    - successful_login
group-by:
    - User
timespan: 1h`));
    expect(c).toMatchObject({ type: 'temporal_ordered', rules: ['many_failed_logins', 'successful_login'], condition: { gte: 2 } });
  });

  it('a temporal condition may be given explicitly', () => {
    expect(correlation(corr('type: temporal\nrules: [a, b, c]\ntimespan: 5m\ncondition: {gte: 2}')).condition).toEqual({ gte: 2 });
  });

  it('aliases (spec example)', () => {
    const c = correlation(corr(`type: temporal
rules:
    - internal_error
    - new_network_connection
group-by:
    - internal_ip
    - remote_ip
timespan: 10s
aliases:
    internal_ip:
        internal_error: destination.ip
        new_network_connection: source.ip
    remote_ip:
        internal_error: source.ip
        new_network_connection: destination.ip`));
    expect(c.timespanMs).toBe(10_000);
    expect(c.groupBy).toEqual(['internal_ip', 'remote_ip']);
    expect(c.aliases).toEqual({
      internal_ip: { internal_error: 'destination.ip', new_network_connection: 'source.ip' },
      remote_ip: { internal_error: 'source.ip', new_network_connection: 'destination.ip' },
    });
  });

  it('rejects malformed aliases', () => {
    expect(reason(corr('type: temporal\nrules: [a, b]\ntimespan: 5m\naliases: [x]'))).toBe('invalid_correlation');
    expect(reason(corr('type: temporal\nrules: [a, b]\ntimespan: 5m\naliases: {ip: source.ip}'))).toBe('invalid_correlation');
  });

  it('group-by is optional and may be a single field', () => {
    expect(correlation(corr('type: event_count\nrules: r\ntimespan: 1h\ncondition: {gt: 1}')).groupBy).toEqual([]);
    expect(correlation(corr('type: event_count\nrules: r\ngroup-by: Computer\ntimespan: 1h\ncondition: {gt: 1}')).groupBy).toEqual(['Computer']);
  });

  it('ranges combine comparisons (spec: 101 to 200)', () => {
    expect(correlation(corr('type: event_count\nrules: [r]\ntimespan: 1h\ncondition: {gt: 100, lte: 200}')).condition).toEqual({ gt: 100, lte: 200 });
    expect(correlation(corr('type: event_count\nrules: [r]\ntimespan: 1h\ncondition: {eq: 3}')).condition).toEqual({ eq: 3 });
    expect(correlation(corr('type: event_count\nrules: [r]\ntimespan: 1h\ncondition: {lt: 3}')).condition).toEqual({ lt: 3 });
  });

  it('rejects bad conditions and missing rules', () => {
    expect(reason(corr('type: event_count\nrules: [r]\ntimespan: 1h\ncondition: {above: 3}'))).toBe('invalid_correlation');
    expect(reason(corr('type: event_count\nrules: [r]\ntimespan: 1h\ncondition: {gte: many}'))).toBe('invalid_correlation');
    expect(reason(corr('type: event_count\nrules: [r]\ntimespan: 1h\ncondition: 5'))).toBe('invalid_correlation');
    expect(reason(corr('type: event_count\nrules: [r]\ntimespan: 1h\ncondition: {field: x}'))).toBe('invalid_correlation');
    expect(reason(corr('type: event_count\nrules: []\ntimespan: 1h\ncondition: {gte: 1}'))).toBe('invalid_correlation');
    expect(reason(corr('type: event_count\ntimespan: 1h\ncondition: {gte: 1}'))).toBe('invalid_correlation');
    expect(reason('title: C\ncorrelation: event_count\n')).toBe('invalid_correlation');
  });

  it('generate, in the correlation section or at the top level', () => {
    const body = 'type: event_count\nrules: [r]\ntimespan: 1h\ncondition: {gte: 1}';
    expect(correlation(corr(body)).generate).toBe(false);
    expect(correlation(corr(`${body}\ngenerate: true`)).generate).toBe(true);
    expect(correlation(corr(body, 'generate: true\n')).generate).toBe(true);
    expect(correlation(corr(`${body}\ngenerate: false`)).generate).toBe(false);
  });

  it('accepts the legacy timeframe key', () => {
    expect(correlation(corr('type: event_count\nrules: [r]\ntimeframe: 2h\ncondition: {gte: 1}')).timespanMs).toBe(7_200_000);
  });

  it('needs a title and a valid level', () => {
    expect(reason('correlation: {type: temporal, rules: [a], timespan: 1m}\n')).toBe('missing_title');
    expect(reason('title: C\nlevel: urgent\ncorrelation: {type: temporal, rules: [a], timespan: 1m}\n')).toBe('invalid_level');
  });
});

describe('timespans', () => {
  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['90m', 5_400_000],
    ['1h', 3_600_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['1w', 604_800_000],
    ['31d', 2_678_400_000],
    [' 10s ', 10_000],
  ] as const)('%s is %d ms', (text, ms) => expect(parseTimespan(text)).toBe(ms));

  it.each(['', '1', 'h', '1.5h', '-1m', '0s', '32d', '1y', '5 m', '1H', '10ms'])('rejects %j', (text) => {
    expect(() => parseTimespan(text)).toThrow(SigmaRuleError);
    try {
      parseTimespan(text);
    } catch (err) {
      expect((err as SigmaRuleError).reason).toBe('invalid_timespan');
    }
  });

  it('a correlation with a bad timespan is rejected', () => {
    expect(reason('title: C\ncorrelation: {type: temporal, rules: [a], timespan: soon}\n')).toBe('invalid_timespan');
    expect(reason('title: C\ncorrelation: {type: temporal, rules: [a]}\n')).toBe('invalid_timespan');
  });
});

describe('meta filters', () => {
  it('parse the spec example', () => {
    const f = one(`title: Filter Administrator account
description: The valid administrator account start with adm_
logsource:
    category: process_creation
    product: windows
filter:
    rules:
        - 6f3e2987-db24-4c78-a860-b4f4095a7095 # Data Compressed - rar.exe
        - df0841c0-9846-4e9f-ad8a-7df91571771b # Login on jump host
    selection:
        User|startswith: 'adm_'
    condition: selection
`) as SigmaFilterRule;
    expect(f).toMatchObject({
      kind: 'filter',
      title: 'Filter Administrator account',
      logsource: { category: 'process_creation', product: 'windows' },
      rules: ['6f3e2987-db24-4c78-a860-b4f4095a7095', 'df0841c0-9846-4e9f-ad8a-7df91571771b'],
    });
    expect(f.match(view({ User: 'adm_bob' }))).toBe(true);
    expect(f.match(view({ User: 'bob' }))).toBe(false);
  });

  it('a negated filter condition and a single rule reference', () => {
    const f = one(`title: Not SYSTEM
logsource: {product: windows}
filter:
    rules: some_rule_name
    selection:
        User: SYSTEM
    condition: not selection
`) as SigmaFilterRule;
    expect(f.rules).toEqual(['some_rule_name']);
    expect(f.match(view({ User: 'system' }))).toBe(false);
    expect(f.match(view({ User: 'alice' }))).toBe(true);
  });

  it('rejects filters without rules, condition, title or logsource', () => {
    expect(reason('title: F\nlogsource: {product: windows}\nfilter: {selection: {a: b}, condition: selection}\n')).toBe('invalid_filter');
    expect(reason('title: F\nlogsource: {product: windows}\nfilter: {rules: [], selection: {a: b}, condition: selection}\n')).toBe('invalid_filter');
    expect(reason('title: F\nlogsource: {product: windows}\nfilter: [x]\n')).toBe('invalid_filter');
    expect(reason('title: F\nlogsource: {product: windows}\nfilter: {rules: [r], selection: {a: b}}\n')).toBe('missing_condition');
    expect(reason('title: F\nlogsource: {product: windows}\nfilter: {rules: [r], selection: {a: b}, condition: nope}\n')).toBe('invalid_condition');
    expect(reason('logsource: {product: windows}\nfilter: {rules: [r], selection: {a: b}, condition: selection}\n')).toBe('missing_title');
    expect(reason('title: F\nfilter: {rules: [r], selection: {a: b}, condition: selection}\n')).toBe('missing_logsource');
  });
});
