import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import { requiredLiterals } from './regex-literals.js';

describe('requiredLiterals', () => {
  it('takes the longest plain run of each top-level alternative, lower-cased', () => {
    expect(requiredLiterals('\\$PSHome\\[\\s*\\d{1,3}\\s*\\]\\s*\\+\\s*\\$PSHome\\[', false)).toEqual(['$pshome[']);
    expect(requiredLiterals('Invoke-Mimikatz|Get-Keystrokes', false)).toEqual(['invoke-mimikatz', 'get-keystrokes']);
    expect(requiredLiterals('^C:\\\\Windows\\\\Temp\\\\[a-z]{8}\\.exe$', false)).toEqual(['c:\\windows\\temp\\']);
  });
  it('gives up when an alternative has no run long enough', () => {
    expect(requiredLiterals('abc|x.*', false)).toBeNull();
    expect(requiredLiterals('[a-z]+\\d+', false)).toBeNull();
    expect(requiredLiterals('(abc|def)', false)).toBeNull();
  });
  it('a quantified character is not required; groups, classes and repeats are skipped', () => {
    expect(requiredLiterals('abcd?ef', false)).toEqual(['abc']);
    expect(requiredLiterals('ab(cd|ef)+ghij', false)).toEqual(['ghij']);
    expect(requiredLiterals('x[)(|]yyyy', false)).toEqual(['yyyy']);
    expect(requiredLiterals('a{2}bcde', false)).toEqual(['bcde']);
    expect(requiredLiterals('abc\\+def', false)).toEqual(['abc+def']);
    expect(requiredLiterals('abc\\+?defg', false)).toEqual(['defg']);
  });
  it('under case-insensitive matching an s ends a run (RE2 folds it with U+017F)', () => {
    expect(requiredLiterals('invoke-express', true)).toEqual(['invoke-expre']);
    expect(requiredLiterals('(?i)invoke-express', false)).toEqual(['invoke-expre']);
    const re = RE2JS.compile('invoke-express', RE2JS.CASE_INSENSITIVE);
    expect(re.matcher('invoke-expre\u017f\u017f').find()).toBe(true);
  });
  it('gives up on \\Q…\\E and on unbalanced groups or classes', () => {
    expect(requiredLiterals('\\Qa|b\\E', false)).toBeNull();
    expect(requiredLiterals('abc(def', false)).toBeNull();
    expect(requiredLiterals('abc[def', false)).toBeNull();
  });
  it('every match contains a required literal (lower-cased) — sampled', () => {
    const cases: Array<[string, string[]]> = [
      ['\\$ShellId\\[\\s*\\d{1,3}\\s*\\]', ['x $ShellId[ 12 ] y']],
      ['cmd(\\.exe)? /c echo', ['CMD /c echo', 'cmd.exe /c echo']],
      ['^.*Set-Content.*$|^.*Out-File.*$', ['a Out-File b', 'Set-Content x']],
    ];
    for (const [src, texts] of cases) {
      const lits = requiredLiterals(src, false)!;
      const re = RE2JS.compile(src, 0);
      for (const t of texts) if (re.matcher(t).find()) expect(lits.some((l) => t.toLowerCase().includes(l))).toBe(true);
    }
  });
});
