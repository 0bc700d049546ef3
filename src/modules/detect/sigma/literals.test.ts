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

  it('builds automata ahead of the first scan when prepared, again after new literals', () => {
    const index = new LiteralIndex();
    const a = index.register('Image', 'cmd.exe');
    index.register('CommandLine', 'whoami');
    expect(index.prepared('Image')).toBe(false);
    index.prepare();
    expect(index.prepared('Image')).toBe(true);
    expect(index.prepared('CommandLine')).toBe(true);
    expect(index.prepared('Other')).toBe(false);
    const b = index.register('Image', 'powershell');
    expect(index.prepared('Image')).toBe(false);
    // Scanning still builds on demand, with every literal registered so far.
    const hits = index.scan('Image', ['c:\\cmd.exe powershell']);
    expect(hits.has(a) && hits.has(b)).toBe(true);
    expect(index.prepared('Image')).toBe(true);
  });

  it('agrees with a naive search on random literals and texts (where, and how often nothing is found)', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const word = (alphabet: string, min: number, max: number) => Array.from({ length: min + rand(max - min + 1) }, () => alphabet[rand(alphabet.length)]).join('');
    for (let round = 0; round < 30; round++) {
      const index = new LiteralIndex();
      const alphabet = round % 3 === 0 ? 'abé' : 'abc';
      const literals = Array.from({ length: 1 + rand(40) }, () => word(alphabet, 1, 5));
      const ids = literals.map((t) => index.register('f', t));
      for (let t = 0; t < 20; t++) {
        const texts = Array.from({ length: 1 + rand(2) }, () => word(alphabet + 'Z', 0, 12));
        const expected = new Map<number, number>();
        literals.forEach((lit, k) => {
          for (const text of texts) {
            for (let at = text.indexOf(lit); at >= 0; at = text.indexOf(lit, at + 1)) {
              let bits = HIT_ANYWHERE;
              if (at === 0) bits |= HIT_AT_START;
              if (at + lit.length === text.length) bits |= at === 0 ? HIT_AT_END | HIT_WHOLE : HIT_AT_END;
              expected.set(ids[k]!, (expected.get(ids[k]!) ?? 0) | bits);
            }
          }
        });
        expect(index.scan('f', texts), `${JSON.stringify(literals)} in ${JSON.stringify(texts)}`).toEqual(expected);
      }
    }
  });
});
