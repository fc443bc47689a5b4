// Property tests at the primitive level of Decrypt: the blob parser (@kms/ciphertext) and the software
// AES-GCM open (the same code the worker runs for SOFTWARE keys), with the right key and context.
// Over a million mutated valid blobs (bit flips, truncations, extensions, spliced bytes, forged headers,
// blobs of other keys and other contexts), decryption never returns plaintext and never throws anything
// but the one invalid-ciphertext error. Encryption contexts: canonical bytes are order-independent and
// injective over the contexts validation accepts. KMS_PROPERTY_RUNS overrides the million.
import { createSecretKey, randomBytes, randomUUID } from "node:crypto";
import fc from "fast-check";
import { buildAad, canonicalContext, encodeHeader, parseBlob, validateEncryptionContext } from "@kms/ciphertext";
import type { EncryptionContext } from "@kms/ciphertext";
import { ErrorCode, INVALID_CIPHERTEXT_MESSAGE, KmsError } from "@kms/errors";
import { openGcm, sealGcm } from "./aes-gcm";

jest.setTimeout(180_000);

const RUNS = Number(process.env.KMS_PROPERTY_RUNS ?? 1_000_000);
const PER_RUN = 10;

interface Sample {
  key: ReturnType<typeof createSecretKey>;
  context: EncryptionContext;
  blob: Buffer;
  plaintext: Buffer;
}

function sample(bytes: number, context: EncryptionContext, plaintextLength: number): Sample {
  const key = createSecretKey(randomBytes(bytes));
  const header = encodeHeader(randomUUID());
  const plaintext = randomBytes(plaintextLength);
  return { key, context, plaintext, blob: Buffer.concat([header, sealGcm(key, plaintext, buildAad(header, context))]) };
}

/** Decrypt as the service does it: parse, then open with the sample's own key and the given context. */
function decrypt(s: Sample, blob: Uint8Array, context: EncryptionContext = s.context): Buffer {
  const parsed = parseBlob(blob);
  return openGcm(s.key, parsed.sealed, buildAad(parsed.header, context));
}

const SAMPLES = [
  sample(32, {}, 1),
  sample(32, { tenant: "acme", purpose: "orders" }, 32),
  sample(16, { "ключ": "значение", "🔑": "✓" }, 300),
  sample(32, { a: "" }, 6144),
];

type Mutation =
  | { kind: "flip"; index: number; bit: number }
  | { kind: "truncate"; length: number }
  | { kind: "extend"; extra: Uint8Array }
  | { kind: "splice"; index: number; bytes: Uint8Array }
  | { kind: "header"; versionId: Uint8Array }
  // Another key's blob (a cross-key move), presented with this sample's context.
  | { kind: "other-key"; from: number }
  | { kind: "other-context"; context: Record<string, string> };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), index: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("truncate" as const), length: fc.nat() }),
  fc.record({ kind: fc.constant("extend" as const), extra: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ kind: fc.constant("splice" as const), index: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("header" as const), versionId: fc.uint8Array({ minLength: 16, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("other-key" as const), from: fc.nat({ max: SAMPLES.length - 1 }) }),
  fc.record({ kind: fc.constant("other-context" as const), context: fc.dictionary(fc.string({ minLength: 1, maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 3 }) }),
);

/** The mutated blob and the context the caller presents. */
function apply(s: Sample, m: Mutation): { blob: Buffer; context: EncryptionContext } {
  if (m.kind === "truncate") return { blob: s.blob.subarray(0, m.length % s.blob.length), context: s.context };
  if (m.kind === "other-key") return { blob: SAMPLES[m.from]!.blob, context: s.context };
  if (m.kind === "other-context") return { blob: s.blob, context: m.context };
  const blob = Buffer.from(s.blob); // the samples are never written to
  switch (m.kind) {
    case "flip":
      blob[m.index % blob.length]! ^= 1 << m.bit;
      return { blob, context: s.context };
    case "extend":
      return { blob: Buffer.concat([blob, m.extra]), context: s.context };
    case "splice": {
      const at = m.index % blob.length;
      Buffer.from(m.bytes).copy(blob, at);
      return { blob, context: s.context };
    }
    case "header":
      Buffer.from(m.versionId).copy(blob, 1);
      return { blob, context: s.context };
  }
}

function equalContexts(x: EncryptionContext, y: EncryptionContext): boolean {
  return Object.keys(x).length === Object.keys(y).length && Object.entries(x).every(([k, v]) => Object.hasOwn(y, k) && y[k] === v);
}

function sameContext(a: EncryptionContext, b: EncryptionContext): boolean {
  return canonicalContext(a).equals(canonicalContext(b));
}

describe("Decrypt of mutated blobs (primitive level)", () => {
  it("the unmutated samples decrypt", () => {
    for (const s of SAMPLES) expect(decrypt(s, s.blob)).toEqual(s.plaintext);
  });

  it(`${RUNS} mutated blobs: never plaintext, never another error`, () => {
    let checked = 0;
    let unchanged = 0;
    fc.assert(
      // Ten mutated blobs per run: fast-check's per-run cost, not the decryption, dominated one per run.
      fc.property(fc.array(fc.tuple(fc.nat({ max: SAMPLES.length - 1 }), mutation), { minLength: PER_RUN, maxLength: PER_RUN }), (batch) => {
        for (const [which, m] of batch) check(which, m);
      }),
      { numRuns: RUNS / PER_RUN },
    );
    function check(which: number, m: Mutation): void {
      const s = SAMPLES[which]!;
      const { blob, context } = apply(s, m);
      if ((context === s.context || sameContext(context, s.context)) && blob.equals(s.blob)) {
        unchanged++; // a no-op mutation (same bytes spliced in, the same sample picked): must still decrypt
        if (!decrypt(s, blob, context).equals(s.plaintext)) throw new Error(`no-op mutation ${JSON.stringify(m)} changed the plaintext`);
        return;
      }
      let error: unknown;
      let plaintext: Buffer | undefined;
      try {
        plaintext = decrypt(s, blob, context);
      } catch (err) {
        error = err;
      }
      checked++;
      if (plaintext !== undefined) throw new Error(`mutation ${JSON.stringify(m)} of sample ${which} returned plaintext`);
      if (!(error instanceof KmsError) || error.code !== ErrorCode.InvalidCiphertext || error.message !== INVALID_CIPHERTEXT_MESSAGE) {
        throw new Error(`mutation ${JSON.stringify(m)} of sample ${which} threw ${String(error)}`);
      }
    }
    process.stdout.write(`ciphertext properties: ${RUNS} mutated blobs in ${RUNS / PER_RUN} fast-check runs, ${checked} mutated blobs refused with the one error, ${unchanged} no-op mutations\n`);
    expect(checked + unchanged).toBe(RUNS);
    expect(checked).toBeGreaterThan(RUNS * 0.9);
  });
});

describe("encryption context canonicalisation", () => {
  const text = fc.string({ unit: "binary", maxLength: 8 });
  const contexts = fc.dictionary(fc.string({ unit: "binary", minLength: 1, maxLength: 8 }), text, { maxKeys: 6 });

  it("is order-independent and injective over every context validation accepts (20k pairs)", () => {
    let refused = 0;
    fc.assert(
      fc.property(contexts, contexts, fc.infiniteStream(fc.nat()), (x, y, order) => {
        for (const c of [x, y]) {
          try {
            validateEncryptionContext(c);
          } catch (err) {
            // The only reasons for these generators: a lone surrogate, which UTF-8 cannot carry, and U+0000,
            // which the audit trail (Postgres text) cannot store.
            expect([
              "encryption_context: keys and values must be valid UTF-8",
              "encryption_context: keys and values must not contain U+0000",
            ]).toContain((err as Error).message);
            refused++;
            return;
          }
        }
        const shuffled = Object.entries(x)
          .map((e) => [order.next().value as number, e] as const)
          .sort((a, b) => a[0] - b[0])
          .map(([, e]) => e);
        expect(canonicalContext(Object.fromEntries(shuffled)).equals(canonicalContext(x))).toBe(true);
        expect(canonicalContext(x).equals(canonicalContext(y))).toBe(equalContexts(x, y));
      }),
      { numRuns: 20_000 },
    );
    process.stdout.write(`context canonicalisation: ${20_000 - refused} of 20000 pairs checked, ${refused} refused by validation\n`);
    expect(refused).toBeLessThan(10_000); // most pairs reach the property
  });

  it("tells apart a context from its near neighbours (injective on close pairs)", () => {
    fc.assert(
      fc.property(contexts, fc.string({ minLength: 1, maxLength: 3 }), (x, extra) => {
        try {
          validateEncryptionContext(x);
        } catch {
          return;
        }
        const entries = Object.entries(x);
        const neighbours: Record<string, string>[] = [{ ...x, [`${extra}\u0000`]: "" }];
        if (entries.length > 0) {
          const [k, v] = entries[0]!;
          neighbours.push({ ...x, [k]: `${v}${extra}` });
          neighbours.push(Object.fromEntries(entries.slice(1)));
          neighbours.push({ ...Object.fromEntries(entries.slice(1)), [`${k}${v}`]: "" });
        }
        for (const n of neighbours) expect(canonicalContext(n).equals(canonicalContext(x))).toBe(equalContexts(n, x));
      }),
      { numRuns: 5_000 },
    );
  });
});
