/**
 * Literals a regular expression cannot match without, for the `|re` trigger (see trigger.ts).
 *
 * A deliberately small reading of RE2 syntax: top-level alternatives, and in each the runs of
 * plain characters between anything else (groups, classes, `.`, anchors, escapes of letters and
 * digits, quantified characters). Whatever it does not understand only ends a run, so a run is
 * always text every match contains. The result is one lower-cased literal per alternative (its
 * longest run), or null when some alternative has no run of MIN_LENGTH characters.
 *
 * Runs are lower-cased because the literal index scans lower-cased text: a text holding the run
 * holds its lower-case form after lower-casing (ASCII only, so the lengths agree). Under
 * case-insensitive matching RE2 also folds `s` with U+017F (ſ), which lower-cases to itself, so
 * there an `s` ends a run too.
 */

const MIN_LENGTH = 2;
const REPEAT = /^\{\d+(,\d*)?\}/;

export function requiredLiterals(source: string, caseInsensitive: boolean): string[] | null {
  // `\Q…\E` quotes operators as text; not worth reading here.
  if (source.includes('\\Q')) return null;
  // An inline flag group may turn on case-insensitivity anywhere.
  const ci = caseInsensitive || source.includes('(?');
  const branches: string[][] = [];
  let runs: string[] = [];
  let run = '';
  const end = () => {
    if (run) runs.push(run);
    run = '';
  };
  const literal = (c: string) => {
    const code = c.charCodeAt(0);
    if (code >= 128 || (ci && (c === 's' || c === 'S'))) end();
    else run += c.toLowerCase();
  };
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const n = source[i + 1];
      if (n === undefined) return null;
      i++;
      if (/[A-Za-z0-9]/.test(n)) end();
      else if (isQuantifier(source, i + 1)) end();
      else literal(n);
      continue;
    }
    if (c === '|') {
      end();
      branches.push(runs);
      runs = [];
      continue;
    }
    if (c === '(') {
      end();
      const close = closingParen(source, i);
      if (close < 0) return null;
      i = close;
      // A quantifier after the group applies to the group, skipped with it.
      continue;
    }
    if (c === '[') {
      end();
      const close = closingBracket(source, i);
      if (close < 0) return null;
      i = close;
      continue;
    }
    if (c === '{') {
      end();
      const m = REPEAT.exec(source.slice(i));
      if (m) i += m[0].length - 1;
      continue;
    }
    if (c === '.' || c === '^' || c === '$' || c === '*' || c === '+' || c === '?' || c === ')' || c === ']' || c === '}') {
      end();
      continue;
    }
    // A plain character; if a quantifier follows, it may be absent or repeated: it ends the run.
    if (isQuantifier(source, i + 1)) end();
    else literal(c);
  }
  end();
  branches.push(runs);
  const out: string[] = [];
  for (const b of branches) {
    const best = b.reduce((a, r) => (r.length > a.length ? r : a), '');
    if (best.length < MIN_LENGTH) return null;
    out.push(best);
  }
  return out;
}

function isQuantifier(source: string, i: number): boolean {
  const c = source[i];
  return c === '*' || c === '+' || c === '?' || (c === '{' && REPEAT.test(source.slice(i)));
}

/** The index of the `)` closing the group opened at `open`, or -1. */
function closingParen(source: string, open: number): number {
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '[') {
      i = closingBracket(source, i);
      if (i < 0) return -1;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}

/** The index of the `]` closing the class opened at `open`, or -1 (`]` first in the class is a character). */
function closingBracket(source: string, open: number): number {
  let i = open + 1;
  if (source[i] === '^') i++;
  if (source[i] === ']') i++;
  for (; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '[' && source[i + 1] === ':') {
      // [:alpha:] inside a class
      const close = source.indexOf(':]', i + 2);
      if (close < 0) return -1;
      i = close + 1;
    } else if (c === ']') return i;
  }
  return -1;
}
