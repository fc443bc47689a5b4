// Glob patterns for key policies: `*` matches any run of characters (newlines too), `?` exactly one
// character (a Unicode code point); everything else matches itself.
//
// A regex built from a glob backtracks: `*a*a*a*b` against "aaaa…" tries every way to split the text, which
// froze a replica for seconds. This matcher never backtracks. It runs the pattern's NFA over all of its
// states at once, 32 states to a machine word (bit-parallel "Shift-And"): each text character costs one
// update per word, ceil((tokens + 1) / 32), whatever the pattern and the text are. So a match is
// O(text × pattern / 32) steps at worst and linear in the text for a pattern of bounded length.

/** Patterns a policy may hold: far above any real one, and they keep one match to 9 words a character. */
export const MAX_GLOB_CHARACTERS = 256;
export const MAX_GLOB_STARS = 16;

export interface GlobOptions {
  /** Fold ASCII letters (actions are ASCII: `KMS:describe*` names kms:DescribeKey). */
  ignoreCase?: boolean;
}

/** Counts the matcher's steps (word updates), for tests that bound its work. */
export interface StepCounter {
  steps: number;
}

/** Why a pattern is refused (too long, too many `*`), or undefined when it is acceptable. */
export function globProblem(pattern: string): string | undefined {
  const characters = [...pattern];
  if (characters.length > MAX_GLOB_CHARACTERS) return `must be at most ${MAX_GLOB_CHARACTERS} characters, got ${characters.length}`;
  const stars = characters.filter((c) => c === "*").length;
  if (stars > MAX_GLOB_STARS) return `must have at most ${MAX_GLOB_STARS} "*" wildcards, got ${stars}`;
  return undefined;
}

const foldAscii = (code: number) => (code >= 65 && code <= 90 ? code + 32 : code);

/**
 * A compiled glob. The pattern's non-`*` characters are tokens 0..m-1; state j means "j tokens matched"
 * and state m accepts. A `*` before token j is a self-loop on state j.
 */
export class Glob {
  private readonly words: number;
  /** States with a `*` self-loop. */
  private readonly loops: Uint32Array;
  /** Bit j+1 for every `?` token j: the transitions any character takes. */
  private readonly anyChar: Uint32Array;
  /** Per code point: bit j+1 for every token j it matches (its literal tokens and every `?`). */
  private readonly byChar = new Map<number, Uint32Array>();
  private readonly acceptWord: number;
  private readonly acceptBit: number;
  private readonly ignoreCase: boolean;

  constructor(readonly source: string, options: GlobOptions = {}) {
    this.ignoreCase = options.ignoreCase ?? false;
    const tokens: (number | "?")[] = [];
    const loopStates: number[] = [];
    for (const ch of source) {
      if (ch === "*") loopStates.push(tokens.length);
      else tokens.push(ch === "?" ? "?" : this.code(ch));
    }
    const m = tokens.length;
    this.words = Math.floor(m / 32) + 1; // states 0..m
    this.acceptWord = m >>> 5;
    this.acceptBit = 1 << (m & 31);
    this.loops = new Uint32Array(this.words);
    for (const j of loopStates) this.loops[j >>> 5]! |= 1 << (j & 31);
    this.anyChar = new Uint32Array(this.words);
    tokens.forEach((t, j) => t === "?" && setBit(this.anyChar, j + 1));
    tokens.forEach((t, j) => {
      if (t === "?") return;
      let mask = this.byChar.get(t);
      if (mask === undefined) this.byChar.set(t, (mask = Uint32Array.from(this.anyChar)));
      setBit(mask, j + 1);
    });
  }

  /** Whether the whole of `text` matches; `counter` (if given) adds the steps taken. */
  test(text: string, counter?: StepCounter): boolean {
    const { words, loops } = this;
    let state = new Uint32Array(words);
    let next = new Uint32Array(words);
    state[0] = 1;
    let steps = 0;
    let alive = true;
    for (const ch of text) {
      const mask = this.byChar.get(this.code(ch)) ?? this.anyChar;
      let any = 0;
      // From the top word down, so the carry comes from the lower word's old value.
      for (let i = words - 1; i >= 0; i--) {
        const carry = i > 0 ? state[i - 1]! >>> 31 : 0;
        const w = (((state[i]! << 1) | carry) & mask[i]!) | (state[i]! & loops[i]!);
        next[i] = w;
        any |= w;
      }
      steps += words;
      [state, next] = [next, state];
      if (any === 0) {
        alive = false; // no state left: nothing more can match
        break;
      }
    }
    if (counter) counter.steps += steps;
    return alive && (state[this.acceptWord]! & this.acceptBit) !== 0;
  }

  private code(ch: string): number {
    const code = ch.codePointAt(0)!;
    return this.ignoreCase ? foldAscii(code) : code;
  }
}

function setBit(words: Uint32Array, bit: number): void {
  words[bit >>> 5]! |= 1 << (bit & 31);
}
