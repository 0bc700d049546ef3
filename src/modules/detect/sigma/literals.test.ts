import { describe, expect, it } from 'vitest';
import { HIT_ANYWHERE, HIT_AT_END, HIT_AT_START, HIT_WHOLE, LiteralIndex } from './literals.js';

describe('LiteralIndex', () => {
  it('finds every literal of a field in one pass, with where it occurred', () => {
    const index = new LiteralIndex();
    const ids = ['cmd', 'cmd.exe', '\\cmd.exe', 'md.e', 'exe', 'powershell', 'c:\\windows\\system32\\cmd.exe'].map((t) => index.register('Image', t));
    expect(index.register('Image', 'cmd')).toBe(ids[0]);
    const hits = index.scan('Image', ['c:\\windows\\system32\\cmd.exe']);
    expect(hits.get(ids[0]!)).toBe(HIT_ANYWHERE);
    expect(hits.get(ids[1]!)).toBe(HIT_ANYWHERE | HIT_AT_END);
    expect(hits.get(ids[2]!)).toBe(HIT_ANYWHERE | HIT_AT_END);
    expect(hits.get(ids[3]!)).toBe(HIT_ANYWHERE);
    expect(hits.get(ids[4]!)).toBe(HIT_ANYWHERE | HIT_AT_END);
    expect(hits.has(ids[5]!)).toBe(false);
    expect(hits.get(ids[6]!)).toBe(HIT_ANYWHERE | HIT_AT_START | HIT_AT_END | HIT_WHOLE);
    // Other fields have their own literals.
    expect(index.scan('CommandLine', ['cmd.exe']).size).toBe(0);
  });

  it('handles non-ASCII literals and text, and ORs what several values of a field give', () => {
    const index = new LiteralIndex();
    const smile = index.register('CommandLine', '😀');
    const accent = index.register('CommandLine', 'café');
    const plain = index.register('CommandLine', 'echo');
    const hits = index.scan('CommandLine', ['echo 😀', 'x café', 'naïve echo']);
    expect(hits.get(smile)).toBe(HIT_ANYWHERE | HIT_AT_END);
    expect(hits.get(accent)).toBe(HIT_ANYWHERE | HIT_AT_END);
    expect(hits.get(plain)).toBe(HIT_ANYWHERE | HIT_AT_START | HIT_AT_END);
    // Without non-ASCII literals, non-ASCII text characters simply break matches.
    const ascii = new LiteralIndex();
    const ab = ascii.register('f', 'ab');
    expect(ascii.scan('f', ['aéb']).has(ab)).toBe(false);
    expect(ascii.scan('f', ['é ab']).get(ab)).toBe(HIT_ANYWHERE | HIT_AT_END);
  });
});
