import { SiqError } from '../../../errors.js';

/**
 * The search language (Lucene/KQL style), parsed by hand with positions so every error says
 * where and what was expected, and so IPv6 addresses and CIDR blocks (full of `:` and `/`) can be
 * values without quoting — which Lucene-syntax libraries do not allow.
 *
 *   query    := or
 *   or       := and (("OR" | "||") and)*
 *   and      := not (("AND" | "&&")? not)*        adjacent terms are ANDed
 *   not      := ("NOT" | "!" | "-") not | primary
 *   primary  := "(" or ")" | "_exists_:" field | field ":" fieldValue | value
 *   fieldValue := "(" values joined by AND/OR/NOT ")" | range | (">=" | "<=" | ">" | "<") value | value
 *   range    := ("[" | "{") bound "TO" bound ("]" | "}")     bound may be "*"
 *   value    := quoted phrase | word, with * and ? wildcards and \ escapes
 *
 * Precedence: NOT binds tighter than AND, AND tighter than OR.
 */
export type QueryNode =
  | { type: 'all' }
  | { type: 'and' | 'or'; left: QueryNode; right: QueryNode }
  | { type: 'not'; child: QueryNode }
  | { type: 'term'; field: string | null; value: string; phrase: boolean; wildcard: string | null; position: number }
  | { type: 'range'; field: string; lower: string | null; upper: string | null; includeLower: boolean; includeUpper: boolean; position: number }
  | { type: 'exists'; field: string; position: number };

export class QuerySyntaxError extends SiqError {
  constructor(readonly position: number, readonly expected: string, found: string) {
    super('SIQ_QUERY_SYNTAX', `Expected ${expected} at position ${position}${found ? `, found ${JSON.stringify(found)}` : ' (end of query)'}.`, { details: { position, expected } });
  }
}

const SPECIAL = new Set(['(', ')', '"', ' ', '\t', '\n', '\r']);

class Parser {
  pos = 0;
  constructor(private readonly text: string) {}

  private skip(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private peekWord(): string {
    this.skip();
    const m = /^[^\s()"]+/.exec(this.text.slice(this.pos));
    return m ? m[0] : '';
  }

  private fail(expected: string): never {
    this.skip();
    throw new QuerySyntaxError(this.pos, expected, this.text.slice(this.pos, this.pos + 12));
  }

  private eat(token: string): boolean {
    this.skip();
    if (this.text.startsWith(token, this.pos)) {
      this.pos += token.length;
      return true;
    }
    return false;
  }

  private atKeyword(...words: string[]): string | null {
    const w = this.peekWord();
    return words.includes(w) ? w : null;
  }

  parse(): QueryNode {
    this.skip();
    if (this.pos >= this.text.length) return { type: 'all' };
    const node = this.or(null);
    this.skip();
    if (this.pos < this.text.length) this.fail(this.text[this.pos] === ')' ? 'an operator or the end of the query (unbalanced ")")' : 'an operator or the end of the query');
    return node;
  }

  private or(field: string | null): QueryNode {
    let left = this.and(field);
    for (;;) {
      const kw = this.atKeyword('OR', '||');
      if (!kw) return left;
      this.pos += kw.length;
      left = { type: 'or', left, right: this.and(field) };
    }
  }

  private startsOperand(): boolean {
    this.skip();
    if (this.pos >= this.text.length) return false;
    const c = this.text[this.pos]!;
    if (c === ')') return false;
    return !this.atKeyword('OR', '||', 'AND', '&&');
  }

  private and(field: string | null): QueryNode {
    let left = this.not(field);
    for (;;) {
      const kw = this.atKeyword('AND', '&&');
      if (kw) {
        this.pos += kw.length;
        left = { type: 'and', left, right: this.not(field) };
      } else if (this.startsOperand()) {
        left = { type: 'and', left, right: this.not(field) };
      } else {
        return left;
      }
    }
  }

  private not(field: string | null): QueryNode {
    this.skip();
    const kw = this.atKeyword('NOT');
    if (kw) {
      this.pos += 3;
      return { type: 'not', child: this.not(field) };
    }
    if (this.text[this.pos] === '!' || (this.text[this.pos] === '-' && this.pos + 1 < this.text.length && !/\s/.test(this.text[this.pos + 1]!))) {
      this.pos++;
      return { type: 'not', child: this.not(field) };
    }
    return this.primary(field);
  }

  private primary(field: string | null): QueryNode {
    this.skip();
    if (this.pos >= this.text.length) this.fail('a term, a field:value or "("');
    const c = this.text[this.pos]!;
    if (c === '(') {
      this.pos++;
      const inner = this.or(field);
      if (!this.eat(')')) this.fail('")"');
      return inner;
    }
    if (c === ')' || this.atKeyword('AND', 'OR', '&&', '||')) this.fail('a term, a field:value or "("');
    if (c === '"') return this.value(field);
    // field:… ?
    if (field === null) {
      const m = /^((?:[^\s()":\\]|\\.)+):/.exec(this.text.slice(this.pos));
      if (m) {
        const name = m[1]!.replace(/\\(.)/g, '$1');
        const position = this.pos;
        this.pos += m[0].length;
        if (name === '_exists_') {
          const target = this.peekWord();
          if (!target) this.fail('a field name after _exists_:');
          this.pos += target.length;
          return { type: 'exists', field: target, position };
        }
        return this.fieldValue(name, position);
      }
    }
    return this.value(field);
  }

  private fieldValue(field: string, position: number): QueryNode {
    this.skip();
    const c = this.text[this.pos];
    if (c === undefined || c === ' ') this.fail(`a value after "${field}:"`);
    if (c === '(') {
      this.pos++;
      const inner = this.or(field);
      if (!this.eat(')')) this.fail('")"');
      return inner;
    }
    if (c === '[' || c === '{') return this.range(field, position);
    const cmp = /^(>=|<=|>|<)/.exec(this.text.slice(this.pos));
    if (cmp) {
      this.pos += cmp[0].length;
      const bound = this.bound();
      if (bound === null) this.fail('a value after the comparison');
      const op = cmp[0];
      return {
        type: 'range', field, position,
        lower: op.startsWith('>') ? bound : null, upper: op.startsWith('<') ? bound : null,
        includeLower: op === '>=', includeUpper: op === '<=',
      };
    }
    return this.value(field);
  }

  /** A range bound: a quoted string, a bare word, or `*` (open). */
  private bound(): string | null {
    this.skip();
    if (this.text[this.pos] === '"') {
      const node = this.value('x') as { value: string };
      return node.value;
    }
    const m = /^(?:[^\s()\]}"\\]|\\.)+/.exec(this.text.slice(this.pos));
    if (!m) return null;
    this.pos += m[0].length;
    return m[0] === '*' ? '*' : m[0].replace(/\\(.)/g, '$1');
  }

  private range(field: string, position: number): QueryNode {
    const includeLower = this.text[this.pos] === '[';
    this.pos++;
    const lower = this.bound();
    if (lower === null) this.fail('a lower bound (or *)');
    if (!this.eat('TO')) this.fail('"TO"');
    const upper = this.bound();
    if (upper === null) this.fail('an upper bound (or *)');
    this.skip();
    const close = this.text[this.pos];
    if (close !== ']' && close !== '}') this.fail('"]" or "}"');
    this.pos++;
    return { type: 'range', field, position, lower: lower === '*' ? null : lower, upper: upper === '*' ? null : upper, includeLower, includeUpper: close === ']' };
  }

  private value(field: string | null): QueryNode {
    this.skip();
    const position = this.pos;
    if (this.text[this.pos] === '"') {
      let out = '';
      this.pos++;
      while (this.pos < this.text.length && this.text[this.pos] !== '"') {
        if (this.text[this.pos] === '\\' && this.pos + 1 < this.text.length) this.pos++;
        out += this.text[this.pos++];
      }
      if (this.text[this.pos] !== '"') throw new QuerySyntaxError(position, 'a closing quote for the phrase started', this.text.slice(position, position + 12));
      this.pos++;
      return { type: 'term', field, value: out, phrase: true, wildcard: null, position };
    }
    let literal = '';
    let like = '';
    let hasWildcard = false;
    while (this.pos < this.text.length && !SPECIAL.has(this.text[this.pos]!)) {
      let ch = this.text[this.pos]!;
      if (ch === '\\') {
        if (this.pos + 1 >= this.text.length) this.fail('a character after "\\"');
        ch = this.text[++this.pos]!;
        literal += ch;
        like += ch.replace(/[\\%_]/g, '\\$&');
      } else if (ch === '*' || ch === '?') {
        hasWildcard = true;
        literal += ch;
        like += ch === '*' ? '%' : '_';
      } else {
        literal += ch;
        like += ch.replace(/[\\%_]/g, '\\$&');
      }
      this.pos++;
    }
    if (!literal) this.fail('a value');
    if (literal === '*' && field === null) return { type: 'all' };
    return { type: 'term', field, value: literal, phrase: false, wildcard: hasWildcard ? like : null, position };
  }
}

/** Parses a query; throws QuerySyntaxError (SIQ_QUERY_SYNTAX) with the position and what was expected. */
export function parseQuery(text: string): QueryNode {
  if (text.length > 10_000) throw new QuerySyntaxError(10_000, 'a query of at most 10,000 characters', '');
  return new Parser(text).parse();
}
