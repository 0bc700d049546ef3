import { describe, expect, it } from 'vitest';
import { DetectionEngine, type EngineRule } from './engine.js';
import { alternativesFor, EventView, loadMapping } from './mapping.js';
import { parseSigmaYaml, type SigmaDocument } from './sigma/rule.js';

const mapping = loadMapping();

/** Parses YAML documents into engine entries keyed k0, k1, … (every document must parse). */
function entries(yaml: string, prefix = 'k'): EngineRule[] {
  return parseSigmaYaml(yaml).map((p, i) => {
    if (!p.ok) throw new Error(`document ${i}: ${p.reason}: ${p.message}`);
    return { key: `${prefix}${i}`, doc: p.rule as SigmaDocument, severity: p.rule.level };
  });
}

function engineWith(yaml: string): DetectionEngine {
  const engine = new DetectionEngine(mapping);
  engine.load(entries(yaml));
  return engine;
}

const matchedKeys = (engine: DetectionEngine, doc: Record<string, unknown>) => engine.match(doc).map((m) => m.rule.key).sort();

const SYSMON = 'Microsoft-Windows-Sysmon/Operational';

const whoami = `title: Whoami
id: 11111111-1111-4111-8111-111111111111
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    condition: selection
level: high
`;

describe('logsource routing: process_creation', () => {
  const engine = engineWith(whoami);

  it('matches a Sysmon EventID 1 event', () => {
    const m = engine.match({ Channel: SYSMON, EventID: 1, Image: 'C:\\Windows\\System32\\whoami.exe', CommandLine: 'whoami /all' });
    expect(m.map((x) => x.rule.key)).toEqual(['k0']);
    expect(m[0]!.rule.severity).toBe('high');
    expect(m[0]!.view.get('Image')).toBe('C:\\Windows\\System32\\whoami.exe');
  });

  it('matches a Security 4688 event, Image resolving to NewProcessName', () => {
    const m = engine.match({ Channel: 'Security', EventID: 4688, NewProcessName: 'C:\\Windows\\System32\\whoami.exe' });
    expect(m.map((x) => x.rule.key)).toEqual(['k0']);
    expect(m[0]!.view.get('Image')).toBe('C:\\Windows\\System32\\whoami.exe');
  });

  it('does not match other event types of the same channels', () => {
    expect(matchedKeys(engine, { Channel: SYSMON, EventID: 3, Image: 'C:\\Windows\\System32\\whoami.exe' })).toEqual([]);
    expect(matchedKeys(engine, { Channel: 'Security', EventID: 4624, NewProcessName: 'C:\\Windows\\System32\\whoami.exe' })).toEqual([]);
    expect(matchedKeys(engine, { Channel: 'System', EventID: 1, Image: 'C:\\Windows\\System32\\whoami.exe' })).toEqual([]);
  });

  it('does not match events without a channel', () => {
    expect(matchedKeys(engine, { EventID: 1, Image: 'C:\\Windows\\System32\\whoami.exe' })).toEqual([]);
  });

  it('does not match when the detection fails', () => {
    expect(matchedKeys(engine, { Channel: SYSMON, EventID: 1, Image: 'C:\\Windows\\System32\\cmd.exe' })).toEqual([]);
  });

  it('compares channel names case-insensitively and event ids given as text', () => {
    expect(matchedKeys(engine, { Channel: 'microsoft-windows-sysmon/operational', EventID: '1', Image: 'C:\\x\\whoami.exe' })).toEqual(['k0']);
  });

  it('runs on Winlogbeat-shaped documents', () => {
    const sysmon = { 'winlog.channel': SYSMON, 'winlog.event_id': 1, 'winlog.event_data.Image': 'C:\\Windows\\System32\\whoami.exe' };
    expect(matchedKeys(engine, sysmon)).toEqual(['k0']);
    const security = { 'winlog.channel': 'Security', 'winlog.event_id': '4688', 'winlog.event_data.NewProcessName': 'C:\\Windows\\System32\\whoami.exe' };
    expect(matchedKeys(engine, security)).toEqual(['k0']);
    expect(matchedKeys(engine, { ...sysmon, 'winlog.event_id': 3 })).toEqual([]);
  });

  it('runs on evtx_dump-shaped documents', () => {
    const sysmon = { 'Event.System.Channel': SYSMON, 'Event.System.EventID': 1, 'Event.EventData.Image': 'C:\\Windows\\System32\\whoami.exe' };
    expect(matchedKeys(engine, sysmon)).toEqual(['k0']);
    const withQualifiers = { 'Event.System.Channel': 'Security', 'Event.System.EventID.#text': 4688, 'Event.System.EventID.#attributes.Qualifiers': 0, 'Event.EventData.NewProcessName': 'C:\\x\\whoami.exe' };
    expect(matchedKeys(engine, withQualifiers)).toEqual(['k0']);
    expect(matchedKeys(engine, { ...sysmon, 'Event.System.EventID': 3 })).toEqual([]);
  });

  it('runs on ECS-normalised process fields', () => {
    expect(matchedKeys(engine, { 'winlog.channel': SYSMON, 'winlog.event_id': 1, 'process.executable': 'C:\\x\\whoami.exe' })).toEqual(['k0']);
  });
});

describe('logsource routing: other shapes', () => {
  it('a network_connection rule only sees Sysmon EventID 3', () => {
    const engine = engineWith(`title: Net
logsource: {category: network_connection, product: windows}
detection:
    selection:
        DestinationPort: 4444
    condition: selection
`);
    expect(matchedKeys(engine, { Channel: SYSMON, EventID: 3, DestinationPort: 4444 })).toEqual(['k0']);
    expect(matchedKeys(engine, { Channel: SYSMON, EventID: 1, DestinationPort: 4444 })).toEqual([]);
  });

  it('a service rule sees every event of its channel', () => {
    const engine = engineWith(`title: Log cleared
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 1102
    condition: selection
`);
    expect(matchedKeys(engine, { Channel: 'Security', EventID: 1102 })).toEqual(['k0']);
    expect(matchedKeys(engine, { 'winlog.channel': 'Security', 'winlog.event_id': 1102 })).toEqual(['k0']);
    expect(matchedKeys(engine, { Channel: 'System', EventID: 1102 })).toEqual([]);
  });

  it('a product-only rule sees every event that has a channel', () => {
    const engine = engineWith(`title: Any windows
logsource: {product: windows}
detection:
    selection:
        Computer: DC01
    condition: selection
`);
    expect(matchedKeys(engine, { Channel: 'Anything/Operational', Computer: 'dc01' })).toEqual(['k0']);
    expect(matchedKeys(engine, { 'winlog.channel': 'Application', 'winlog.computer_name': 'DC01' })).toEqual(['k0']);
    expect(matchedKeys(engine, { Computer: 'DC01' })).toEqual([]);
  });

  it('service and category combine: both must hold', () => {
    const engine = engineWith(`title: Security process creation
logsource: {product: windows, category: process_creation, service: security}
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    condition: selection
---
title: Sysmon process creation
logsource: {product: windows, category: process_creation, service: sysmon}
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    condition: selection
`);
    const security = { Channel: 'Security', EventID: 4688, NewProcessName: 'C:\\x\\whoami.exe' };
    const sysmon = { Channel: SYSMON, EventID: 1, Image: 'C:\\x\\whoami.exe' };
    expect(matchedKeys(engine, security)).toEqual(['k0']);
    expect(matchedKeys(engine, sysmon)).toEqual(['k1']);
    expect(matchedKeys(engine, { ...security, EventID: 4624 })).toEqual([]);
    expect(engine.unmapped).toEqual([]);
  });

  it('a linux service rule routes on the syslog program', () => {
    const engine = engineWith(`title: sshd failure
logsource: {product: linux, service: sshd}
detection:
    keywords:
        - 'Failed password'
    condition: keywords
`);
    expect(matchedKeys(engine, { 'process.name': 'sshd', message: 'Failed password for root' })).toEqual(['k0']);
    expect(matchedKeys(engine, { 'process.name': 'sudo', message: 'Failed password for root' })).toEqual([]);
  });

  it('an unmapped logsource only applies to events labelled with logsource.* fields', () => {
    const engine = engineWith(`title: CloudTrail delete trail
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: DeleteTrail
    condition: selection
`);
    expect(engine.unmapped).toEqual(['k0']);
    expect(matchedKeys(engine, { 'logsource.product': 'aws', 'logsource.service': 'cloudtrail', eventName: 'DeleteTrail' })).toEqual(['k0']);
    expect(matchedKeys(engine, { 'logsource.product': 'AWS', 'logsource.service': 'CloudTrail', eventName: 'DeleteTrail' })).toEqual(['k0']);
    expect(matchedKeys(engine, { eventName: 'DeleteTrail' })).toEqual([]);
    expect(matchedKeys(engine, { 'logsource.product': 'aws', eventName: 'DeleteTrail' })).toEqual([]);
    expect(matchedKeys(engine, { 'logsource.product': 'aws', 'logsource.service': 'guardduty', eventName: 'DeleteTrail' })).toEqual([]);
    expect(matchedKeys(engine, { 'logsource.product': 'aws', 'logsource.service': 'cloudtrail', eventName: 'CreateTrail' })).toEqual([]);
  });

  it('a known product with an unknown category falls back to labels', () => {
    const { alternatives, mapped } = alternativesFor(mapping, { product: 'windows', category: 'no_such_category' });
    expect(mapped).toBe(false);
    expect(alternatives).toEqual([{ when: { 'logsource.product': ['windows'], 'logsource.category': ['no_such_category'] }, fields: {} }]);
  });

  it('several rules on one event match once each', () => {
    const engine = engineWith(`${whoami}---
title: Whoami by path
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|contains: 'System32'
    condition: selection
---
title: Unrelated
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|contains: 'notepad'
    condition: selection
`);
    expect(matchedKeys(engine, { Channel: SYSMON, EventID: 1, Image: 'C:\\Windows\\System32\\whoami.exe' })).toEqual(['k0', 'k1']);
    expect(engine.size).toEqual({ rules: 3, correlations: 0 });
  });
});

describe('meta filters', () => {
  const filter = (rules: string, condition = 'not selection') => `title: Not SYSTEM
logsource: {category: process_creation, product: windows}
filter:
    rules: ${rules}
    selection:
        User: SYSTEM
    condition: ${condition}
`;
  const named = whoami.replace('level: high', 'name: whoami_rule\nlevel: high');
  const alice = { Channel: SYSMON, EventID: 1, Image: 'C:\\x\\whoami.exe', User: 'alice' };
  const system = { ...alice, User: 'SYSTEM' };

  it('a filter referenced by rule id suppresses matches', () => {
    const engine = engineWith(`${whoami}---\n${filter('[11111111-1111-4111-8111-111111111111]')}`);
    expect(matchedKeys(engine, alice)).toEqual(['k0']);
    expect(matchedKeys(engine, system)).toEqual([]);
  });

  it('also through a field rename (Security 4688: User is SubjectUserName)', () => {
    const engine = engineWith(`${whoami}---\n${filter('11111111-1111-4111-8111-111111111111')}`);
    const security = { Channel: 'Security', EventID: 4688, NewProcessName: 'C:\\x\\whoami.exe' };
    expect(matchedKeys(engine, { ...security, SubjectUserName: 'alice' })).toEqual(['k0']);
    expect(matchedKeys(engine, { ...security, SubjectUserName: 'SYSTEM' })).toEqual([]);
  });

  it('a filter may reference a rule by name or by its stored key', () => {
    expect(matchedKeys(engineWith(`${named}---\n${filter('whoami_rule')}`), system)).toEqual([]);
    expect(matchedKeys(engineWith(`${whoami}---\n${filter('k0')}`), system)).toEqual([]);
  });

  it('a filter for another rule changes nothing', () => {
    const engine = engineWith(`${whoami}---\n${filter('[22222222-2222-4222-8222-222222222222]')}`);
    expect(matchedKeys(engine, system)).toEqual(['k0']);
  });

  it('several filters all apply', () => {
    const engine = engineWith(`${whoami}---\n${filter('[11111111-1111-4111-8111-111111111111]')}---
title: Not from temp
logsource: {category: process_creation, product: windows}
filter:
    rules: [11111111-1111-4111-8111-111111111111]
    temp:
        Image|contains: '\\Temp\\'
    condition: not temp
`);
    expect(matchedKeys(engine, alice)).toEqual(['k0']);
    expect(matchedKeys(engine, system)).toEqual([]);
    expect(matchedKeys(engine, { ...alice, Image: 'C:\\Temp\\whoami.exe' })).toEqual([]);
  });

  it('a filter is not a rule of its own', () => {
    const engine = engineWith(`${whoami}---\n${filter('[11111111-1111-4111-8111-111111111111]')}`);
    expect(engine.size).toEqual({ rules: 1, correlations: 0 });
  });
});

describe('correlations', () => {
  const yaml = `title: Failed logon
id: 33333333-3333-4333-8333-333333333333
name: failed_logon
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Successful logon
name: successful_logon
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4624
    condition: selection
---
title: Brute force
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 5m
    condition: {gte: 10}
---
title: Brute force then success
correlation:
    type: temporal_ordered
    rules: [failed_logon, successful_logon]
    group-by: [TargetUserName]
    timespan: 10m
    generate: true
`;

  it('are kept for lookup by rule id, name or key', () => {
    const engine = engineWith(yaml);
    expect(engine.size).toEqual({ rules: 2, correlations: 2 });
    const [failed, success] = engine.match({ Channel: 'Security', EventID: 4625 }).map((m) => m.rule);
    expect(success).toBeUndefined();
    expect(engine.correlationsOf(failed!.doc, failed!.key).map((c) => c.key).sort()).toEqual(['k2', 'k3']);
    const ok = engine.match({ Channel: 'Security', EventID: 4624 })[0]!.rule;
    expect(engine.correlationsOf(ok.doc, ok.key).map((c) => c.key)).toEqual(['k3']);
  });

  it('a rule alerts on its own unless only non-generating correlations use it', () => {
    const engine = engineWith(yaml);
    const failed = engine.match({ Channel: 'Security', EventID: 4625 })[0]!.rule;
    expect(engine.alertsOnItsOwn(failed)).toBe(true); // k3 generates
    const alone = engineWith(yaml.replace('    generate: true\n', ''));
    expect(alone.alertsOnItsOwn(alone.match({ Channel: 'Security', EventID: 4625 })[0]!.rule)).toBe(false);
    const standalone = engineWith(whoami);
    expect(standalone.alertsOnItsOwn(standalone.match({ Channel: SYSMON, EventID: 1, Image: 'x\\whoami.exe' })[0]!.rule)).toBe(true);
  });
});

describe('EventView', () => {
  it('resolves exact names, prefixes, then aliases', () => {
    const v = new EventView({ Image: 'exact', 'winlog.event_data.Image': 'prefixed', 'winlog.event_data.ParentImage': 'p', 'process.command_line': 'cmd' }, mapping);
    expect(v.get('Image')).toBe('exact');
    expect(v.get('ParentImage')).toBe('p');
    expect(v.get('CommandLine')).toBe('cmd');
    expect(v.get('Missing')).toBeUndefined();
  });

  it('keeps null values distinct from absent fields', () => {
    const v = new EventView({ a: null }, mapping);
    expect(v.get('a')).toBeNull();
    expect(v.texts('a')).toBeNull();
    expect(v.get('b')).toBeUndefined();
  });

  it('renames apply before the usual resolution', () => {
    const v = new EventView({ NewProcessName: 'C:\\x.exe', 'winlog.event_data.SubjectUserName': 'bob' }, mapping);
    const renamed = v.withRenames({ Image: 'NewProcessName', User: 'SubjectUserName' });
    expect(renamed.get('Image')).toBe('C:\\x.exe');
    expect(renamed.get('User')).toBe('bob');
    expect(v.get('Image')).toBeUndefined();
    expect(v.withRenames(null)).toBe(v);
  });

  it('collects keyword texts from strings, numbers and arrays', () => {
    const v = new EventView({ a: 'Text', b: 42, c: ['x', 7, null], d: null, e: true }, mapping);
    expect(v.keywordTexts(false)).toEqual(['Text', '42', 'x', '7', 'true']);
    // Lower-cased, the texts are one newline-joined text: one scan per keyword.
    expect(v.keywordTexts(true)).toEqual(['text\n42\nx\n7\ntrue']);
  });
});

describe('literal triggers (rules compiled with the engine\'s literal index)', () => {
  /** An engine whose rules are compiled with its literal index, as the service and the benchmark do. */
  function indexedEngine(yaml: string): DetectionEngine {
    const engine = new DetectionEngine(mapping);
    const parsed = parseSigmaYaml(yaml, engine.compileContext());
    engine.load(parsed.map((p, i) => {
      if (!p.ok) throw new Error(`document ${i}: ${p.reason}: ${p.message}`);
      return { key: `k${i}`, doc: p.rule as SigmaDocument, severity: p.rule.level };
    }));
    return engine;
  }
  const rule = (detection: string) => `title: T
logsource:
    category: process_creation
    product: windows
detection:
${detection}
---
`;
  // Padding rules give CommandLine enough literals to go through the automaton.
  const padding = Array.from({ length: 40 }, (_, i) => rule(`    selection:\n        CommandLine|contains: 'padding-${i}-x'\n    condition: selection`)).join('');
  const ev = (fields: Record<string, unknown>) => ({ Channel: SYSMON, EventID: 1, ...fields });

  for (const [label, pad] of [['field through the automaton', padding], ['field tested directly', '']] as const) {
    describe(label, () => {
      const engine = indexedEngine(pad + [
        rule(`    selection:\n        CommandLine|contains: ' -enc '\n        Image|endswith: '\\\\powershell.exe'\n    condition: selection`),
        rule(`    selection:\n        Image|endswith: '\\\\cmd.exe'\n    filter:\n        CommandLine|contains: 'benign'\n    condition: selection and not filter`),
        rule(`    filter:\n        CommandLine|contains: 'benign'\n    condition: not filter`),
        rule(`    a:\n        CommandLine|contains: 'alpha'\n    b:\n        CommandLine|re: '^beta[0-9]+$'\n    condition: a or b`),
        rule(`    a:\n        CommandLine|contains: 'one'\n    b:\n        Image|endswith: '\\\\two.exe'\n    condition: 1 of them`),
        rule(`    selection:\n        - CommandLine|startswith: 'start'\n        - Image: 'C:\\\\whole.exe'\n    condition: selection`),
        rule(`    selection:\n        CommandLine|contains|all:\n            - 'first'\n            - 'second'\n    condition: selection`),
      ].join(''));
      const at = pad ? 40 : 0;
      const keys = (fields: Record<string, unknown>) => matchedKeys(engine, ev(fields)).map((k) => Number(k.slice(1)) - at).filter((n) => n >= 0);

      it('a rule whose literals are absent does not match; present, it is evaluated as usual', () => {
        expect(keys({ Image: 'C:\\x\\powershell.exe', CommandLine: 'powershell -enc AAAA' })).toEqual([0, 2]);
        expect(keys({ Image: 'C:\\x\\pwsh.exe', CommandLine: 'powershell -enc AAAA' })).toEqual([2]);
      });
      it('negations hold without any literal', () => {
        expect(keys({ Image: 'C:\\x\\cmd.exe', CommandLine: 'cmd /c dir' })).toEqual([1, 2]);
        expect(keys({ Image: 'C:\\x\\cmd.exe', CommandLine: 'cmd /c benign' })).toEqual([]);
        expect(keys({ Image: 'C:\\x\\other.exe' })).toEqual([2]);
      });
      it('an alternative without literals (a regular expression) keeps the rule evaluated', () => {
        expect(keys({ CommandLine: 'beta42' })).toEqual([2, 3]);
        expect(keys({ CommandLine: 'an ALPHA test' })).toEqual([2, 3]);
      });
      it('any of several fields selects the rule', () => {
        expect(keys({ CommandLine: 'just one' })).toEqual([2, 4]);
        expect(keys({ Image: 'C:\\two.exe' })).toEqual([2, 4]);
      });
      it('where a literal occurs counts (start, whole value)', () => {
        expect(keys({ CommandLine: 'Start here' })).toEqual([2, 5]);
        expect(keys({ CommandLine: 'not at start' })).toEqual([2]);
        expect(keys({ Image: 'c:\\WHOLE.exe' })).toEqual([2, 5]);
        expect(keys({ Image: 'c:\\whole.exe.bak' })).toEqual([2]);
      });
      it('all: every value must be found', () => {
        expect(keys({ CommandLine: 'first then second' })).toEqual([2, 6]);
        expect(keys({ CommandLine: 'first only' })).toEqual([2]);
      });
    });
  }

  it('builds the literal automata when rules are loaded, not on the first event', () => {
    const engine = indexedEngine(padding);
    expect(engine.literals.prepared('CommandLine')).toBe(true);
  });

  describe('keyword rules (product: windows, as Mimikatz Use)', () => {
    const engine = indexedEngine(`title: Mimikatz keywords
logsource: {product: windows}
detection:
    keywords:
        - 'sekurlsa::'
        - 'Kiwi Legit Printer'
        - '\\mimilib.dll'
    filter:
        EventID: 15
    condition: keywords and not filter
---
title: All keywords
logsource: {product: windows}
detection:
    keywords:
        '|all':
            - 'lsadump::'
            - '/patch'
    condition: keywords
---
title: Wildcard keyword
logsource: {product: windows}
detection:
    keywords: 'invoke-*katz'
    condition: keywords
`);
    const keys = (fields: Record<string, unknown>) => matchedKeys(engine, { Channel: 'Security', EventID: 4688, ...fields });
    it('fire when a literal is in any field, whatever its case', () => {
      expect(keys({ CommandLine: 'mimikatz SEKURLSA::LogonPasswords' })).toEqual(['k0']);
      expect(keys({ 'winlog.event_data.Whatever': 'x', message: 'kiwi legit printer' })).toEqual(['k0']);
      expect(keys({ Paths: ['c:\\a.dll', 'C:\\Temp\\MIMILIB.DLL'] })).toEqual(['k0']);
      expect(keys({ Message: '\u212aiwi Legit Printer' })).toEqual(['k0']); // Kelvin sign lower-cases to k
      expect(keys({ CommandLine: 'sekurlsa::', EventID: 15 })).toEqual([]);
    });
    it('with |all every literal, in one field or several', () => {
      expect(keys({ CommandLine: 'lsadump::lsa /patch' })).toEqual(['k1']);
      expect(keys({ CommandLine: 'LSADUMP::lsa', Extra: 'x /PATCH' })).toEqual(['k1']);
      expect(keys({ CommandLine: 'lsadump::lsa' })).toEqual([]);
    });
    it('wildcards keep their meaning', () => {
      expect(keys({ ScriptBlockText: 'Invoke-Mimikatz' })).toEqual(['k2']);
      expect(keys({ ScriptBlockText: 'invoke-katz' })).toEqual(['k2']);
      expect(keys({ ScriptBlockText: 'katz invoke-' })).toEqual([]);
    });
    it('do not fire otherwise', () => {
      expect(keys({ CommandLine: 'sekurlsa:', Message: 'kiwi printer', Image: 'mimilib.dl' })).toEqual([]);
      expect(keys({ A: 'sekur', B: 'lsa::' })).toEqual([]);
    });
  });

  it('a rule compiled for another engine is evaluated without its trigger', () => {
    const other = new DetectionEngine(mapping);
    const parsed = parseSigmaYaml(rule(`    selection:\n        CommandLine|contains: 'needle'\n    condition: selection`), other.compileContext());
    const engine = new DetectionEngine(mapping);
    engine.load(parsed.map((p, i) => (p.ok ? { key: `k${i}`, doc: p.rule as SigmaDocument, severity: p.rule.level } : null)).filter((x) => x !== null));
    expect(matchedKeys(engine, ev({ CommandLine: 'a needle here' }))).toEqual(['k0']);
    expect(matchedKeys(engine, ev({ CommandLine: 'nothing' }))).toEqual([]);
  });

  it('a meta filter keeps the rule\'s trigger and still applies', () => {
    const engine = indexedEngine(`title: R
id: 22222222-2222-4222-8222-222222222222
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|contains: 'needle'
    condition: selection
---
title: F
logsource:
    category: process_creation
    product: windows
filter:
    rules: [22222222-2222-4222-8222-222222222222]
    selection:
        User: admin
    condition: not selection
`);
    expect(matchedKeys(engine, ev({ CommandLine: 'a needle', User: 'bob' }))).toEqual(['k0']);
    expect(matchedKeys(engine, ev({ CommandLine: 'a needle', User: 'admin' }))).toEqual([]);
    expect(matchedKeys(engine, ev({ CommandLine: 'hay', User: 'bob' }))).toEqual([]);
  });
});
