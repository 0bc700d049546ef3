import { describe, expect, it } from 'vitest';
import { compileCondition, ConditionError, parseCondition, type ConditionNode } from './condition.js';

/** An "event" here is simply the set of search identifiers that hold for it. */
type Hits = Set<string>;

function evaluator(condition: string, identifiers: string[]): (hits: string[]) => boolean {
  const searches = new Map(identifiers.map((name) => [name, (e: Hits) => e.has(name)] as const));
  const fn = compileCondition(parseCondition(condition, identifiers), searches);
  return (hits) => fn(new Set(hits));
}

/** Every subset of the identifiers, for exhaustive truth tables. */
function subsets(names: string[]): string[][] {
  return Array.from({ length: 1 << names.length }, (_, mask) => names.filter((_n, i) => mask & (1 << i)));
}

function conditionError(condition: string, identifiers: string[]): ConditionError {
  try {
    parseCondition(condition, identifiers);
  } catch (err) {
    expect(err).toBeInstanceOf(ConditionError);
    return err as ConditionError;
  }
  throw new Error(`"${condition}" parsed`);
}

describe('parseCondition: structure', () => {
  it('a single identifier', () => {
    expect(parseCondition('selection', ['selection'])).toEqual({ type: 'ref', name: 'selection' });
  });

  it('not binds tighter than and, and tighter than or: a or b and not c', () => {
    const expected: ConditionNode = {
      type: 'or',
      children: [
        { type: 'ref', name: 'a' },
        { type: 'and', children: [{ type: 'ref', name: 'b' }, { type: 'not', child: { type: 'ref', name: 'c' } }] },
      ],
    };
    expect(parseCondition('a or b and not c', ['a', 'b', 'c'])).toEqual(expected);
  });

  it('flattens chains of the same operator', () => {
    expect(parseCondition('a and b and c', ['a', 'b', 'c'])).toEqual({ type: 'and', children: ['a', 'b', 'c'].map((name) => ({ type: 'ref', name })) });
    expect(parseCondition('a or b or c', ['a', 'b', 'c'])).toEqual({ type: 'or', children: ['a', 'b', 'c'].map((name) => ({ type: 'ref', name })) });
  });

  it('double negation and parentheses', () => {
    expect(parseCondition('not not a', ['a'])).toEqual({ type: 'not', child: { type: 'not', child: { type: 'ref', name: 'a' } } });
    expect(parseCondition('((a))', ['a'])).toEqual({ type: 'ref', name: 'a' });
    expect(parseCondition('not(a)', ['a'])).toEqual({ type: 'not', child: { type: 'ref', name: 'a' } });
  });

  it('x of pattern selects identifiers by wildcard', () => {
    const ids = ['selection1', 'selection_2', 'filter_a', 'selection'];
    expect(parseCondition('1 of selection*', ids)).toEqual({ type: 'of', quantifier: 'any', names: ['selection1', 'selection_2', 'selection'] });
    expect(parseCondition('all of selection*', ids)).toEqual({ type: 'of', quantifier: 'all', names: ['selection1', 'selection_2', 'selection'] });
    expect(parseCondition('any of filter_*', ids)).toEqual({ type: 'of', quantifier: 'any', names: ['filter_a'] });
    expect(parseCondition('2 of *_*', ids)).toEqual({ type: 'of', quantifier: 2, names: ['selection_2', 'filter_a'] });
    expect(parseCondition('1 of sel*tion', ids)).toEqual({ type: 'of', quantifier: 'any', names: ['selection'] });
  });

  it('them is every identifier not starting with an underscore', () => {
    const ids = ['selection', '_helper', 'keywords'];
    expect(parseCondition('1 of them', ids)).toEqual({ type: 'of', quantifier: 'any', names: ['selection', 'keywords'] });
    expect(parseCondition('all of them', ids)).toEqual({ type: 'of', quantifier: 'all', names: ['selection', 'keywords'] });
    // but a pattern may still name underscore identifiers
    expect(parseCondition('1 of _*', ids)).toEqual({ type: 'of', quantifier: 'any', names: ['_helper'] });
    expect(parseCondition('_helper', ids)).toEqual({ type: 'ref', name: '_helper' });
  });

  it('pattern metacharacters other than * are literal', () => {
    expect(parseCondition('1 of sel.*', ['sel.a', 'selXa'])).toEqual({ type: 'of', quantifier: 'any', names: ['sel.a'] });
  });

  it('keywords are case-insensitive, identifiers are not', () => {
    expect(parseCondition('a AND NOT b OR c', ['a', 'b', 'c'])).toEqual(parseCondition('a and not b or c', ['a', 'b', 'c']));
    expect(parseCondition('ALL OF Them', ['a', 'b'])).toEqual({ type: 'of', quantifier: 'all', names: ['a', 'b'] });
    expect(parseCondition('1 OF sel*', ['sel1'])).toEqual({ type: 'of', quantifier: 'any', names: ['sel1'] });
    expect(conditionError('Selection', ['selection']).reason).toBe('invalid_condition');
  });

  it('accepts trailing whitespace and a trailing newline (YAML block scalars end in one)', () => {
    expect(parseCondition('selection ', ['selection'])).toEqual({ type: 'ref', name: 'selection' });
    expect(parseCondition('selection and not filter\n', ['selection', 'filter'])).toEqual({
      type: 'and',
      children: [{ type: 'ref', name: 'selection' }, { type: 'not', child: { type: 'ref', name: 'filter' } }],
    });
    expect(parseCondition('(a)\t\n', ['a'])).toEqual({ type: 'ref', name: 'a' });
  });

  it('tolerates extra whitespace and newlines', () => {
    expect(parseCondition('  a\n  and\t( b  or c )  ', ['a', 'b', 'c'])).toEqual({
      type: 'and',
      children: [{ type: 'ref', name: 'a' }, { type: 'or', children: [{ type: 'ref', name: 'b' }, { type: 'ref', name: 'c' }] }],
    });
  });
});

describe('parseCondition: errors', () => {
  it('unknown identifier, with its position', () => {
    const err = conditionError('selection and filtr', ['selection', 'filter']);
    expect(err.reason).toBe('invalid_condition');
    expect(err.position).toBe(14);
    expect(err.message).toContain('filtr');
  });

  it('a pattern that matches nothing', () => {
    const err = conditionError('sel and 1 of filter*', ['sel']);
    expect(err.position).toBe(13);
  });

  it('them with no identifier to select', () => {
    expect(conditionError('all of them', ['_a', '_b']).reason).toBe('invalid_condition');
    expect(conditionError('1 of them', ['_only']).reason).toBe('invalid_condition');
  });

  it('an unclosed parenthesis is reported at the end', () => {
    const text = '(a and b';
    const err = conditionError(text, ['a', 'b']);
    expect(err.position).toBe(text.length);
    expect(err.message).toContain('")"');
  });

  it('a stray closing parenthesis is reported where it is', () => {
    expect(conditionError('a and b)', ['a', 'b']).position).toBe(7);
    expect(conditionError(')a', ['a']).position).toBe(0);
    expect(conditionError('()', ['a']).position).toBe(1);
  });

  it('trailing tokens', () => {
    const err = conditionError('a b', ['a', 'b']);
    expect(err.position).toBe(2);
    expect(err.message).toContain('"b"');
    expect(conditionError('a and b not', ['a', 'b']).position).toBe(8);
  });

  it('dangling operators and misplaced keywords', () => {
    expect(conditionError('a and', ['a']).position).toBe(5);
    expect(conditionError('or a', ['a']).position).toBe(0);
    expect(conditionError('not', ['a']).position).toBe(3);
    expect(conditionError('a and or b', ['a', 'b']).position).toBe(6);
    expect(conditionError('1 of', ['a']).position).toBe(4);
    expect(conditionError('all of (a)', ['a']).position).toBe(7);
    expect(conditionError('', ['a']).position).toBe(0);
  });

  it('pipes (v1 aggregations) are not identifiers', () => {
    expect(conditionError('selection | count() > 5', ['selection']).reason).toBe('invalid_condition');
    expect(conditionError('selection|count', ['selection']).reason).toBe('invalid_condition');
  });
});

describe('compileCondition: evaluation', () => {
  it('a or b and not c, over every combination', () => {
    const f = evaluator('a or b and not c', ['a', 'b', 'c']);
    for (const hits of subsets(['a', 'b', 'c'])) {
      const [a, b, c] = ['a', 'b', 'c'].map((n) => hits.includes(n));
      expect(f(hits), hits.join(',')).toBe(a || (b && !c));
    }
  });

  it('parentheses override precedence: (a or b) and not c', () => {
    const f = evaluator('(a or b) and not c', ['a', 'b', 'c']);
    for (const hits of subsets(['a', 'b', 'c'])) {
      const [a, b, c] = ['a', 'b', 'c'].map((n) => hits.includes(n));
      expect(f(hits), hits.join(',')).toBe((a || b) && !c);
    }
  });

  it('not (a and b) versus not a and b', () => {
    const f = evaluator('not (a and b)', ['a', 'b']);
    const g = evaluator('not a and b', ['a', 'b']);
    for (const hits of subsets(['a', 'b'])) {
      const [a, b] = ['a', 'b'].map((n) => hits.includes(n));
      expect(f(hits)).toBe(!(a && b));
      expect(g(hits)).toBe(!a && b);
    }
  });

  it('1 of selection* and not 1 of filter* (spec example)', () => {
    const ids = ['selection_a', 'selection_b', 'filter_x', 'filter_y'];
    const f = evaluator('1 of selection* and not 1 of filter*', ids);
    for (const hits of subsets(ids)) {
      const sel = hits.some((h) => h.startsWith('selection'));
      const filt = hits.some((h) => h.startsWith('filter'));
      expect(f(hits), hits.join(',')).toBe(sel && !filt);
    }
  });

  it('all of selection*', () => {
    const f = evaluator('all of selection*', ['selection1', 'selection2', 'other']);
    expect(f(['selection1', 'selection2'])).toBe(true);
    expect(f(['selection1', 'other'])).toBe(false);
  });

  it('1 of them and all of them ignore underscore identifiers', () => {
    const ids = ['a', 'b', '_c'];
    const one = evaluator('1 of them', ids);
    const all = evaluator('all of them', ids);
    expect(one(['_c'])).toBe(false);
    expect(one(['b'])).toBe(true);
    expect(all(['a', 'b'])).toBe(true);
    expect(all(['a', '_c'])).toBe(false);
  });

  it('N of counts matching identifiers', () => {
    const ids = ['s1', 's2', 's3', 's4'];
    const f = evaluator('2 of s*', ids);
    for (const hits of subsets(ids)) expect(f(hits), hits.join(',')).toBe(hits.length >= 2);
    const three = evaluator('3 of them', ids);
    for (const hits of subsets(ids)) expect(three(hits), hits.join(',')).toBe(hits.length >= 3);
  });

  it('x of inside a larger expression (spec: 1 of selection* and keywords)', () => {
    const f = evaluator('1 of selection* and keywords', ['selection1', 'selection2', 'keywords']);
    expect(f(['selection2', 'keywords'])).toBe(true);
    expect(f(['selection2'])).toBe(false);
    expect(f(['keywords'])).toBe(false);
  });
});
