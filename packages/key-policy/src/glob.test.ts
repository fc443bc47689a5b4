import fc from "fast-check";
import { Glob, MAX_GLOB_CHARACTERS, MAX_GLOB_STARS, globProblem } from "./glob";
import type { StepCounter } from "./glob";

/** The textbook dynamic programme over code points: obviously right, O(pattern × text), fine for small inputs. */
function reference(pattern: string, text: string, ignoreCase = false): boolean {
  const fold = (s: string) => (ignoreCase ? s.replace(/[A-Z]/g, (c) => c.toLowerCase()) : s);
  const p = [...fold(pattern)];
  const t = [...fold(text)];
  // at[j] = the first i pattern characters match the first j text characters (row i, rolling).
  let at = t.map(() => false);
  at.unshift(true);
  for (const pc of p) {
    const next = [pc === "*" && at[0]!];
    for (let j = 1; j <= t.length; j++) {
      next[j] = pc === "*" ? at[j]! || next[j - 1]! : at[j - 1]! && (pc === "?" || pc === t[j - 1]);
    }
    at = next;
  }
  return at[t.length]!;
}

/** What policies used before: `*` → `.*`, `?` → `.` (no dotAll, no unicode flag). */
function oldRegex(pattern: string, flags = ""): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`, flags);
}

function steps(pattern: string, text: string): { matched: boolean; steps: number } {
  const counter: StepCounter = { steps: 0 };
  const matched = new Glob(pattern).test(text, counter);
  return { matched, steps: counter.steps };
}

describe("Glob", () => {
  it.each([
    ["", "", true],
    ["", "a", false],
    ["*", "", true],
    ["*", "anything at all", true],
    ["?", "", false],
    ["?", "x", true],
    ["?", "xy", false],
    ["a*b", "ab", true],
    ["a*b", "a-long-way-b", true],
    ["a*b", "a-long-way-c", false],
    ["ops-*", "ops-db", true],
    ["ops-*", "dev-ops-db", false],
    ["*-db", "ops-db", true],
    ["a?c", "abc", true],
    ["a?c", "ac", false],
    ["**", "x", true],
    ["*a*a*a*b", "aaaaab", true],
    ["*a*a*a*b", "aaaaaa", false],
    ["spiffe://example.org/ns/prod/*", "spiffe://example.org/ns/prod/sa/web", true],
    ["spiffe://example.org/ns/prod/*", "spiffe://example.org/ns/dev/sa/web", false],
    ["a.c", "abc", false], // no regex syntax
    ["(x)+[y]", "(x)+[y]", true],
    ["ops-*", "ops-\nanything", true], // `*` takes newlines too (the old `.*` did not)
    ["?", "😀", true], // one character, not one UTF-16 unit
    ["a?b", "a😀b", true],
    ["😀*", "😀😀", true],
  ])("%j against %j is %s", (pattern, text, expected) => {
    expect(new Glob(pattern).test(text)).toBe(expected);
    expect(reference(pattern, text)).toBe(expected);
  });

  it("folds ASCII case only when asked", () => {
    expect(new Glob("KMS:describe*", { ignoreCase: true }).test("kms:DescribeKey")).toBe(true);
    expect(new Glob("KMS:describe*").test("kms:DescribeKey")).toBe(false);
    expect(new Glob("ß", { ignoreCase: true }).test("SS")).toBe(false);
  });

  it("spans many machine words (patterns longer than 32 tokens)", () => {
    const long = "x".repeat(100) + "*" + "y".repeat(100);
    expect(new Glob(long).test("x".repeat(100) + "zzz" + "y".repeat(100))).toBe(true);
    expect(new Glob(long).test("x".repeat(100) + "zzz" + "y".repeat(99))).toBe(false);
    const edge = "?".repeat(31) + "a" + "?".repeat(31) + "b";
    expect(new Glob(edge).test("-".repeat(31) + "a" + "-".repeat(31) + "b")).toBe(true);
    expect(new Glob(edge).test("-".repeat(31) + "a" + "-".repeat(31) + "c")).toBe(false);
  });

  it("agrees with the reference on random small patterns and texts", () => {
    const char = fc.constantFrom("a", "b", "A", "*", "?", "\n", "😀");
    const textChar = fc.constantFrom("a", "b", "A", "B", "\n", "😀", "*", "?");
    fc.assert(
      fc.property(fc.array(char, { maxLength: 10 }), fc.array(textChar, { maxLength: 12 }), fc.boolean(), (p, t, ignoreCase) => {
        const pattern = p.join("");
        const text = t.join("");
        expect(new Glob(pattern, { ignoreCase }).test(text)).toBe(reference(pattern, text, ignoreCase));
      }),
      { numRuns: 2000 },
    );
  });

  it("agrees with the regex it replaces wherever that one was right (no newlines, no astral characters)", () => {
    const char = fc.constantFrom("a", "b", "k", "M", ".", "(", "*", "?");
    fc.assert(
      fc.property(fc.array(char, { maxLength: 8 }), fc.array(fc.constantFrom("a", "b", "K", "m", ".", "("), { maxLength: 10 }), (p, t) => {
        const pattern = p.join("");
        const text = t.join("");
        expect(new Glob(pattern).test(text)).toBe(oldRegex(pattern).test(text));
        expect(new Glob(pattern, { ignoreCase: true }).test(text)).toBe(oldRegex(pattern, "i").test(text));
      }),
      { numRuns: 1000 },
    );
  });

  it("takes one word update per text character and 32 pattern tokens, even on pathological inputs", () => {
    // `*a*a*…*a*b` (16 stars, as many as a policy may hold) against 8192 a's: the regex this replaces
    // tries every way of splitting the text (8192^15 of them); this takes 8192 × 1 word updates.
    const pathological = "*a".repeat(MAX_GLOB_STARS - 1) + "*b";
    const text = "a".repeat(8192);
    const run = steps(pathological, text);
    expect(run.matched).toBe(false);
    expect(run.steps).toBe(text.length); // 16 tokens + the start state fit one word
    expect(run.steps).toBeLessThanOrEqual((pathological.length + 1) * (text.length + 1));

    // The longest pattern allowed: 256 characters, 16 of them `*`, so 240 tokens = 241 states = 8 words.
    const longest = ("*" + "a".repeat(14)).repeat(MAX_GLOB_STARS) + "a".repeat(MAX_GLOB_CHARACTERS - 15 * MAX_GLOB_STARS - 1) + "b";
    expect([...longest].length).toBe(MAX_GLOB_CHARACTERS);
    expect(globProblem(longest)).toBeUndefined();
    const worst = steps(longest, text);
    expect(worst.matched).toBe(false);
    expect(worst.steps).toBe(text.length * 8);

    // Linear in the text: twice the text, exactly twice the steps.
    expect(steps(longest, text + text).steps).toBe(2 * worst.steps);
  });

  it("stops as soon as no state is left", () => {
    expect(steps("abc", "xbc" + "c".repeat(10_000))).toEqual({ matched: false, steps: 1 });
  });
});

describe("globProblem", () => {
  it("accepts what real policies hold", () => {
    expect(globProblem("kms:GenerateDataKey*")).toBeUndefined();
    expect(globProblem("spiffe://example.org/ns/*/sa/*")).toBeUndefined();
    expect(globProblem("*".repeat(MAX_GLOB_STARS))).toBeUndefined();
    expect(globProblem("?".repeat(MAX_GLOB_CHARACTERS))).toBeUndefined();
  });

  it("refuses long patterns and too many stars, counting characters, not UTF-16 units", () => {
    expect(globProblem("x".repeat(MAX_GLOB_CHARACTERS + 1))).toBe("must be at most 256 characters, got 257");
    expect(globProblem("😀".repeat(MAX_GLOB_CHARACTERS))).toBeUndefined();
    expect(globProblem("*a".repeat(MAX_GLOB_STARS + 1))).toBe('must have at most 16 "*" wildcards, got 17');
  });
});
