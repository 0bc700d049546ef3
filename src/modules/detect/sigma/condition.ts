import { triggerOfAll, triggerOfAny, withTrigger } from './trigger.js';

/**
 * The Sigma condition grammar:
 *
 *   expr    := and ("or" and)*
 *   and     := not ("and" not)*
 *   not     := "not" not | primary
 *   primary := "(" expr ")" | ("1" | "any" | "all" | N) "of" (pattern | "them") | identifier
 *
 * Keywords are case-insensitive; identifiers are the detection's search names, and `pattern`
 * may end in `*` (or hold `*` anywhere) to select several of them. Precedence: not > and > or.
 */
export type ConditionNode =
  | { type: 'and' | 'or'; children: ConditionNode[] }
  | { type: 'not'; child: ConditionNode }
  | { type: 'ref'; name: string }
  | { type: 'of'; quantifier: 'any' | 'all' | number; names: string[] };

export class ConditionError extends Error {
  readonly reason = 'invalid_condition';
  constructor(message: string, readonly position: number) {
    super(message);
  }
}

const TOKEN = /\s*(\(|\)|[^\s()]+)/y;

function tokenize(text: string): Array<{ text: string; position: number }> {
  const tokens: Array<{ text: string; position: number }> = [];
  // A failed sticky match resets lastIndex to 0, so the end of the last token is kept apart.
  let end = 0;
  let m: RegExpExecArray | null;
  while (end < text.length) {
    TOKEN.lastIndex = end;
    if (!(m = TOKEN.exec(text))) break;
    tokens.push({ text: m[1]!, position: m.index + m[0].length - m[1]!.length });
    end = TOKEN.lastIndex;
  }
  if (text.slice(end).trim() !== '') throw new ConditionError(`unexpected text at position ${end}`, end);
  return tokens;
}

function globToRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** Parses a condition against the search identifiers the detection defines. */
export function parseCondition(text: string, identifiers: string[]): ConditionNode {
  const tokens = tokenize(text);
  let i = 0;
  const peek = () => tokens[i]?.text;
  const lower = () => peek()?.toLowerCase();
  const fail = (expected: string): never => {
    const t = tokens[i];
    throw new ConditionError(t ? `expected ${expected} at position ${t.position}, found "${t.text}"` : `expected ${expected} at the end of the condition`, t?.position ?? text.length);
  };

  const expr = (): ConditionNode => {
    const children = [and()];
    while (lower() === 'or') {
      i++;
      children.push(and());
    }
    return children.length === 1 ? children[0]! : { type: 'or', children };
  };
  const and = (): ConditionNode => {
    const children = [not()];
    while (lower() === 'and') {
      i++;
      children.push(not());
    }
    return children.length === 1 ? children[0]! : { type: 'and', children };
  };
  const not = (): ConditionNode => {
    if (lower() === 'not') {
      i++;
      return { type: 'not', child: not() };
    }
    return primary();
  };
  const primary = (): ConditionNode => {
    const t = peek();
    if (t === undefined) return fail('a search identifier, "not", "(" or "1 of"/"all of"');
    if (t === '(') {
      i++;
      const inner = expr();
      if (peek() !== ')') fail('")"');
      i++;
      return inner;
    }
    const l = t.toLowerCase();
    if ((l === 'all' || l === 'any' || /^\d+$/.test(l)) && tokens[i + 1]?.text.toLowerCase() === 'of') {
      i += 2;
      const target = peek();
      if (target === undefined || target === '(' || target === ')') return fail('a search identifier pattern or "them"');
      i++;
      let names: string[];
      if (target.toLowerCase() === 'them') {
        names = identifiers.filter((n) => !n.startsWith('_'));
        // Without this, `all of them` over no identifier would hold for every event.
        if (names.length === 0) throw new ConditionError('"them" selects no search identifier (those starting with "_" are left out)', tokens[i - 1]!.position);
      } else {
        const re = globToRegExp(target);
        names = identifiers.filter((n) => re.test(n));
        if (names.length === 0) throw new ConditionError(`"${target}" matches no search identifier`, tokens[i - 1]!.position);
      }
      const quantifier = l === 'all' ? 'all' : l === 'any' || l === '1' ? 'any' : Number(l);
      return { type: 'of', quantifier, names };
    }
    if (['and', 'or', 'of', 'them', ')'].includes(l) || t.includes('|')) return fail('a search identifier');
    if (!identifiers.includes(t)) throw new ConditionError(`"${t}" is not a search identifier of this detection`, tokens[i]!.position);
    i++;
    return { type: 'ref', name: t };
  };

  const node = expr();
  if (i < tokens.length) fail('"and", "or" or the end of the condition');
  return node;
}

type Test<E> = ((event: E) => boolean) & { cost?: number };
const cost = <E>(t: Test<E>): number => t.cost ?? 1;
function costed<E>(t: Test<E>, n: number): Test<E> {
  t.cost = n;
  return t;
}

/**
 * Evaluates a condition tree given how each named search resolves. Searches are pure, so the
 * operands of and/or are tested cheapest first (by the cost their matchers carry).
 */
export function compileCondition<E>(node: ConditionNode, searches: Map<string, Test<E>>): Test<E> {
  switch (node.type) {
    case 'ref':
      return searches.get(node.name)!;
    case 'not': {
      // A negation holds when its operand's literals are absent: no trigger.
      const child = compileCondition(node.child, searches);
      return costed((e: E) => !child(e), cost(child));
    }
    case 'and': {
      const children = node.children.map((c) => compileCondition(c, searches)).sort((a, b) => cost(a) - cost(b));
      const total = children.reduce((n, c) => n + cost(c), 0);
      if (children.length === 2) {
        const [a, b] = children as [Test<E>, Test<E>];
        return withTrigger(costed((e: E) => a(e) && b(e), total), triggerOfAll(children));
      }
      return withTrigger(costed((e: E) => children.every((c) => c(e)), total), triggerOfAll(children));
    }
    case 'or': {
      const children = node.children.map((c) => compileCondition(c, searches)).sort((a, b) => cost(a) - cost(b));
      return withTrigger(costed((e: E) => children.some((c) => c(e)), children.reduce((n, c) => n + cost(c), 0)), triggerOfAny(children));
    }
    case 'of': {
      const children = node.names.map((n) => searches.get(n)!).sort((a, b) => cost(a) - cost(b));
      if (node.quantifier === 'all') return withTrigger((e: E) => children.every((c) => c(e)), triggerOfAll(children));
      // `any of` and `N of` both need at least one of the searches to hold.
      const anyTrigger = triggerOfAny(children);
      if (node.quantifier === 'any') return withTrigger((e: E) => children.some((c) => c(e)), anyTrigger);
      const need = node.quantifier;
      return withTrigger((e: E) => {
        let n = 0;
        for (const c of children) if (c(e) && ++n >= need) return true;
        return false;
      }, anyTrigger);
    }
  }
}
