/**
 * Literal matching for many rules at once. Most Sigma values are a literal with at most a leading
 * and a trailing wildcard (`*\\cmd.exe`, `*-enc *`, `mimikatz`): contains, endswith, startswith
 * or equals. With thousands of rules reading the same fields, testing each value on its own costs
 * one string scan per value and event. Instead every such literal is registered here per field,
 * and one Aho–Corasick pass over the field's lower-cased text finds all of them at once; a rule's
 * value test becomes a lookup of where its literal occurred.
 */

/** Where a literal occurred in a field's text (bits, any element of a multi-valued field). */
export const HIT_ANYWHERE = 1;
export const HIT_AT_START = 2;
export const HIT_AT_END = 4;
export const HIT_WHOLE = 8;

interface Automaton {
  /** state → (char code → state) */
  next: Array<Map<number, number>>;
  fail: Int32Array;
  /** state → ids of literals ending here (own, not via suffix links) */
  out: Array<number[] | undefined>;
  /** state → nearest state down the fail chain with output, or -1 */
  dict: Int32Array;
  /** state → itself when it has output, else `dict` (where reporting starts) */
  report: Int32Array;
  /**
   * The full transition table over ASCII (state × 128 → state), failure links folded in. Other
   * characters take the goto/fail path; when no literal has one, they lead straight to the root.
   */
  dfa: Int32Array | Uint16Array;
  /** Whether any literal contains a non-ASCII character. */
  wide: boolean;
}

const ASCII = 128;

class FieldLiterals {
  readonly ids = new Map<string, number>();
  readonly lengths: number[] = [];
  readonly texts: string[] = [];
  private automaton: Automaton | null = null;

  add(text: string, id: number): void {
    this.ids.set(text, id);
    this.texts.push(text);
    this.lengths[id] = text.length;
    this.automaton = null;
  }

  private build(): Automaton {
    const next: Array<Map<number, number>> = [new Map()];
    const out: Array<number[] | undefined> = [undefined];
    for (const [text, id] of this.ids) {
      let s = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        let t = next[s]!.get(c);
        if (t === undefined) {
          t = next.length;
          next.push(new Map());
          out.push(undefined);
          next[s]!.set(c, t);
        }
        s = t;
      }
      (out[s] ??= []).push(id);
    }
    const fail = new Int32Array(next.length);
    const dict = new Int32Array(next.length).fill(-1);
    const queue: number[] = [];
    for (const t of next[0]!.values()) queue.push(t);
    for (let q = 0; q < queue.length; q++) {
      const s = queue[q]!;
      for (const [c, t] of next[s]!) {
        let f = fail[s]!;
        while (f !== 0 && !next[f]!.has(c)) f = fail[f]!;
        const g = next[f]!.get(c);
        fail[t] = g !== undefined && g !== t ? g : 0;
        dict[t] = out[fail[t]!] ? fail[t]! : dict[fail[t]!]!;
        queue.push(t);
      }
    }
    const report = new Int32Array(next.length);
    for (let st = 0; st < next.length; st++) report[st] = out[st] ? st : dict[st]!;
    const wide = [...this.ids.keys()].some((t) => [...t].some((ch) => ch.charCodeAt(0) >= ASCII));
    // 16-bit states when they fit: half the table, so more of it stays in cache during a scan.
    const dfa = next.length <= 0xffff ? new Uint16Array(next.length * ASCII) : new Int32Array(next.length * ASCII);
    // Breadth-first, so a state's fail target already has its row.
    for (const st of [0, ...queue]) {
      const row = st * ASCII;
      const failRow = fail[st]! * ASCII;
      for (let c = 0; c < ASCII; c++) {
        const t = next[st]!.get(c);
        dfa[row + c] = t !== undefined ? t : st === 0 ? 0 : dfa[failRow + c]!;
      }
    }
    return { next, fail, out, dict, report, dfa, wide };
  }

  /** Builds the automaton now rather than on the first scan. */
  prepare(): void {
    this.automaton ??= this.build();
  }

  get prepared(): boolean {
    return this.automaton !== null;
  }

  /** Every literal found in `texts`, with where it was found. */
  scan(texts: string[]): Map<number, number> {
    const a = (this.automaton ??= this.build());
    const hits = new Map<number, number>();
    const { dfa, report, wide } = a;
    const lengths = this.lengths;
    for (const text of texts) {
      let s = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c < ASCII) s = dfa[s * ASCII + c]!;
        else if (!wide) s = 0;
        else {
          let t = a.next[s]!.get(c);
          while (t === undefined && s !== 0) {
            s = a.fail[s]!;
            t = a.next[s]!.get(c);
          }
          s = t ?? 0;
        }
        let o = report[s]!;
        while (o > 0) {
          for (const id of a.out[o]!) {
            const start = i - lengths[id]! + 1;
            let bits = HIT_ANYWHERE;
            if (start === 0) bits |= HIT_AT_START;
            if (i === text.length - 1) bits |= start === 0 ? HIT_AT_END | HIT_WHOLE : HIT_AT_END;
            hits.set(id, (hits.get(id) ?? 0) | bits);
          }
          o = a.dict[o]!;
        }
      }
    }
    return hits;
  }
}

/** Literals of every rule of one engine, per field (`''` for keywords). */
export class LiteralIndex {
  private readonly fields = new Map<string, FieldLiterals>();
  private count = 0;
  private readonly lengths: number[] = [];

  /** Registers a lower-cased literal for a field; returns its id. */
  register(field: string, text: string): number {
    let f = this.fields.get(field);
    if (!f) this.fields.set(field, (f = new FieldLiterals()));
    const known = f.ids.get(text);
    if (known !== undefined) return known;
    const id = this.count++;
    f.add(text, id);
    this.lengths[id] = text.length;
    return id;
  }

  /** The length of a registered literal. */
  lengthOf(id: number): number | undefined {
    return this.lengths[id];
  }

  /**
   * Whether a field has enough literals for one automaton pass to beat testing them one by one
   * (decided once the rules are loaded; fields with few literals are tested directly).
   */
  indexed(field: string): boolean {
    return (this.fields.get(field)?.ids.size ?? 0) >= LiteralIndex.MIN_LITERALS;
  }

  static MIN_LITERALS = 32;

  /**
   * Builds the automata of every field that does not have one yet (they are otherwise built on
   * first use, which would put the cost on the first events that read each field). Fields with
   * few literals are scanned too, for rule triggers (see trigger.ts).
   */
  prepare(): void {
    for (const f of this.fields.values()) f.prepare();
  }

  /** Whether a field's automaton is built (false for a field without literals). */
  prepared(field: string): boolean {
    return this.fields.get(field)?.prepared ?? false;
  }

  /** Literals of `field` found in its (lower-cased) texts. */
  scan(field: string, texts: string[]): Map<number, number> {
    const f = this.fields.get(field);
    return f ? f.scan(texts) : new Map();
  }
}
