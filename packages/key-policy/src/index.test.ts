import { status } from "@grpc/grpc-js";
import { KmsError } from "@kms/errors";
import { PolicyEngine, conditionValues, defaultPolicy, evaluate, parsePolicy } from "./index";
import { grantAllows } from "./grants";
import type { GrantTerms } from "./grants";

const doc = (statements: unknown[]) => JSON.stringify({ Version: "1", Statement: statements });
const allow = (principal: unknown, action: unknown, extra: object = {}) => ({ Effect: "Allow", Principal: principal, Action: action, Resource: "*", ...extra });
const req = (principal: string, action: string, encryptionContext: Record<string, string> = {}) => ({
  principal,
  action,
  values: conditionValues({ principal, keyOrigin: "ORIGIN_KMS", encryptionContext }),
});

function invalid(text: string): string {
  try {
    parsePolicy(text);
  } catch (err) {
    expect(err).toBeInstanceOf(KmsError);
    expect((err as KmsError).status).toBe(status.INVALID_ARGUMENT);
    return (err as KmsError).message;
  }
  throw new Error("expected the policy to be refused");
}

describe("evaluate", () => {
  it("allows a listed principal, refuses others", () => {
    const p = parsePolicy(doc([allow(["alice"], "kms:Encrypt")]));
    expect(evaluate(p, req("alice", "kms:Encrypt"))).toBe("Allow");
    expect(evaluate(p, req("bob", "kms:Encrypt"))).toBe("NoAllow");
    expect(evaluate(p, req("alice", "kms:Decrypt"))).toBe("NoAllow");
  });

  it("matches action wildcards, case-insensitively", () => {
    const p = parsePolicy(doc([allow("*", ["kms:GenerateDataKey*", "KMS:describe*"])]));
    expect(evaluate(p, req("x", "kms:GenerateDataKey"))).toBe("Allow");
    expect(evaluate(p, req("x", "kms:GenerateDataKeyWithoutPlaintext"))).toBe("Allow");
    expect(evaluate(p, req("x", "kms:DescribeKey"))).toBe("Allow");
    expect(evaluate(p, req("x", "kms:Encrypt"))).toBe("NoAllow");
  });

  it("lets an explicit Deny win over Allow", () => {
    const p = parsePolicy(doc([allow("*", "kms:*"), { Effect: "Deny", Principal: "mallory", Action: "kms:Decrypt" }]));
    expect(evaluate(p, req("mallory", "kms:Decrypt"))).toBe("Deny");
    expect(evaluate(p, req("mallory", "kms:Encrypt"))).toBe("Allow");
    expect(evaluate(p, req("alice", "kms:Decrypt"))).toBe("Allow");
  });

  it("tests the encryption context", () => {
    const p = parsePolicy(doc([allow("app", "kms:Decrypt", { Condition: { StringEquals: { "kms:EncryptionContext:tenant": ["acme", "initech"] } } })]));
    expect(evaluate(p, req("app", "kms:Decrypt", { tenant: "acme" }))).toBe("Allow");
    expect(evaluate(p, req("app", "kms:Decrypt", { tenant: "globex" }))).toBe("NoAllow");
    expect(evaluate(p, req("app", "kms:Decrypt", {}))).toBe("NoAllow");
  });

  it("treats a missing key as passing the negated operators", () => {
    const p = parsePolicy(doc([allow("*", "kms:Encrypt", { Condition: { StringNotEquals: { "kms:EncryptionContext:env": "prod" }, StringNotLike: { "kms:EncryptionContext:team": "ops-*" } } })]));
    expect(evaluate(p, req("x", "kms:Encrypt", {}))).toBe("Allow");
    expect(evaluate(p, req("x", "kms:Encrypt", { env: "prod" }))).toBe("NoAllow");
    expect(evaluate(p, req("x", "kms:Encrypt", { team: "ops-db" }))).toBe("NoAllow");
    expect(evaluate(p, req("x", "kms:Encrypt", { team: "dev" }))).toBe("Allow");
  });

  it("supports StringLike on the principal and Bool", () => {
    const p = parsePolicy(doc([allow("*", "kms:Encrypt", { Condition: { StringLike: { "kms:CallerPrincipal": "spiffe://example.org/ns/prod/*" }, Bool: { "kms:MutualTLS": true } } })]));
    const ok = { principal: "spiffe://example.org/ns/prod/sa/web", action: "kms:Encrypt", values: conditionValues({ principal: "spiffe://example.org/ns/prod/sa/web", mutualTls: true }) };
    expect(evaluate(p, ok)).toBe("Allow");
    expect(evaluate(p, { ...ok, values: conditionValues({ principal: ok.principal, mutualTls: false }) })).toBe("NoAllow");
    const other = "spiffe://example.org/ns/dev/sa/web";
    expect(evaluate(p, { principal: other, action: "kms:Encrypt", values: conditionValues({ principal: other, mutualTls: true }) })).toBe("NoAllow");
  });

  it("evaluates the most wildcards a pattern may hold against the longest context value at once", () => {
    // Before: `^.*a.*a…b$` against 8192 a's backtracked through 8192^15 splits (the replica froze).
    const p = parsePolicy(doc([allow("*", "kms:Decrypt", { Condition: { StringLike: { "kms:EncryptionContext:t": "*a".repeat(15) + "*b" } } })]));
    expect(evaluate(p, req("x", "kms:Decrypt", { t: "a".repeat(8192) }))).toBe("NoAllow");
    expect(evaluate(p, req("x", "kms:Decrypt", { t: "a".repeat(8191) + "b" }))).toBe("Allow");
  });

  it("lets `*` match newlines, so a value cannot slip past a Deny on a pattern", () => {
    // Before: `.*` stopped at "\n", so team "ops-\nx" escaped this Deny and was allowed.
    const p = parsePolicy(doc([allow("*", "kms:*"), { Effect: "Deny", Principal: "*", Action: "kms:Decrypt", Condition: { StringLike: { "kms:EncryptionContext:team": "ops-*" } } }]));
    expect(evaluate(p, req("x", "kms:Decrypt", { team: "ops-\nx" }))).toBe("Deny");
    expect(evaluate(p, req("x", "kms:Decrypt", { team: "dev" }))).toBe("Allow");
  });

  it("gives the creator and admins everything by default", () => {
    const p = parsePolicy(defaultPolicy("alice", ["root", "alice"]));
    expect(evaluate(p, req("alice", "kms:ScheduleKeyDeletion"))).toBe("Allow");
    expect(evaluate(p, req("root", "kms:SetKeyPolicy"))).toBe("Allow");
    expect(evaluate(p, req("bob", "kms:Encrypt"))).toBe("NoAllow");
  });
});

describe("parsePolicy", () => {
  it.each([
    ["not json", "{", "policy: is not valid JSON"],
    ["an array", "[]", "policy: must be a JSON object"],
    ["no version", JSON.stringify({ Statement: [allow("*", "kms:*")] }), 'policy: Version: must be "1"'],
    ["empty statements", doc([]), "policy: Statement: must be a list of 1 to 100 statements"],
    ["bad effect", doc([{ ...allow("*", "kms:*"), Effect: "Maybe" }]), 'policy: Statement[0].Effect: must be "Allow" or "Deny"'],
    ["unknown action", doc([allow("*", "kms:*"), allow("*", ["kms:Encrypt", "kms:Explode"])]), 'policy: Statement[1].Action[1]: "kms:Explode" matches no kms action'],
    ["other service", doc([allow("*", "s3:*")]), 'policy: Statement[0].Action[0]: "s3:*" matches no kms action'],
    ["no principal", doc([{ Effect: "Allow", Action: "kms:*" }]), "policy: Statement[0].Principal: must be a string or a list of 1 to 100 strings"],
    ["other resource", doc([allow("*", "kms:*", { Resource: "arn:x" })]), 'policy: Statement[0].Resource: must be "*" (a key policy applies to its own key)'],
    ["unknown operator", doc([allow("*", "kms:*", { Condition: { NumericEquals: { "kms:KeySpec": "1" } } })]), "policy: Statement[0].Condition.NumericEquals: unknown operator; use one of StringEquals, StringNotEquals, StringLike, StringNotLike, Bool"],
    ["unknown key", doc([allow("*", "kms:*", { Condition: { StringEquals: { "aws:SourceIp": "1" } } })]), "policy: Statement[0].Condition.StringEquals.aws:SourceIp: unknown condition key"],
    ["unknown field", doc([{ ...allow("*", "kms:*"), NotAction: "kms:Decrypt" }]), "policy: Statement[0].NotAction: unknown field"],
    ["bad bool", doc([allow("*", "kms:*", { Condition: { Bool: { "kms:MutualTLS": "yes" } } })]), "policy: Statement[0].Condition.Bool.kms:MutualTLS: must be true or false"],
    ["an action with 17 stars", doc([allow("*", ["kms:Encrypt", "kms:" + "*?".repeat(17) + "#"])]), 'policy: Statement[0].Action[1]: must have at most 16 "*" wildcards, got 17'],
    ["a 257-character action", doc([allow("*", "kms:Encrypt" + "*".repeat(10) + "x".repeat(236))]), "policy: Statement[0].Action[0]: must be at most 256 characters, got 257"],
    [
      "a StringNotLike value with 18 stars",
      doc([allow("*", "kms:*"), allow("*", "kms:Decrypt", { Condition: { StringNotLike: { "kms:EncryptionContext:t": ["ok", "*a".repeat(17) + "*b"] } } })]),
      'policy: Statement[1].Condition.StringNotLike.kms:EncryptionContext:t[1]: must have at most 16 "*" wildcards, got 18',
    ],
    [
      "a 257-character StringLike value",
      doc([allow("*", "kms:*", { Condition: { StringLike: { "kms:CallerPrincipal": "spiffe://" + "x".repeat(248) } } })]),
      "policy: Statement[0].Condition.StringLike.kms:CallerPrincipal[0]: must be at most 256 characters, got 257",
    ],
  ])("refuses %s naming the path", (_name, text, message) => {
    expect(invalid(text)).toBe(message);
  });

  it("refuses documents over 32 KiB and deep nesting without crashing", () => {
    expect(invalid(doc([allow("*", "kms:*", { Sid: "x".repeat(33 * 1024) })]))).toBe("policy: must be at most 32768 bytes");
    expect(invalid("[".repeat(30000) + "]".repeat(2000))).toMatch(/^policy: /);
  });
});

describe("PolicyEngine", () => {
  it("caches decisions by policy content, so a changed policy is never served stale", () => {
    const engine = new PolicyEngine();
    const v1 = doc([allow("alice", "kms:Encrypt")]);
    const v2 = doc([allow("bob", "kms:Encrypt")]);
    expect(engine.decide(v1, req("alice", "kms:Encrypt"))).toBe("Allow");
    expect(engine.decide(v1, req("alice", "kms:Encrypt"))).toBe("Allow");
    expect(engine.hits).toBe(1);
    expect(engine.decide(v2, req("alice", "kms:Encrypt"))).toBe("NoAllow");
    expect(engine.misses).toBe(2);
    // v1 tests no condition: another context is the same decision, served from the cache.
    expect(engine.decide(v1, req("alice", "kms:Encrypt", { t: "1" }))).toBe("Allow");
    expect(engine.misses).toBe(2);
  });

  it("keys cached decisions on every value the policy tests: absent, empty and NUL-laden values stay apart", () => {
    const engine = new PolicyEngine();
    const policy = doc([
      allow("*", "kms:Decrypt", { Condition: { StringEquals: { "kms:EncryptionContext:tenant": "a\u0000b", "kms:EncryptionContext:app": "" } } }),
    ]);
    const decide = (context: Record<string, string>) => engine.decide(policy, req("svc", "kms:Decrypt", context));
    for (let round = 0; round < 2; round++) {
      expect(decide({ tenant: "a\u0000b", app: "" })).toBe("Allow");
      expect(decide({ tenant: "a\u0000b" })).toBe("NoAllow"); // app absent, not empty
      expect(decide({ tenant: "a", app: "\u0000b" })).toBe("NoAllow");
      expect(decide({ tenant: "a\u0000b", app: "", other: "x" })).toBe("Allow"); // untested values do not matter
    }
    expect(engine.misses).toBe(3);
    expect(engine.hits).toBe(5);
  });
});

describe("PolicyEngine decision cache", () => {
  const tenantPolicy = doc([allow("*", "kms:Decrypt", { Condition: { StringEquals: { "kms:EncryptionContext:tenant": "acme" } } })]);

  it("stays at its bound with fixed-size keys when callers send 10,000 distinct 8 KB contexts", () => {
    const engine = new PolicyEngine(1000);
    const filler = "x".repeat(8192 - 10);
    for (let i = 0; i < 10_000; i++) {
      const tenant = `${String(i).padStart(10, "0")}${filler}`.slice(0, 8192);
      expect(engine.decide(tenantPolicy, req("mallory", "kms:Decrypt", { tenant }))).toBe("NoAllow");
    }
    const keys = engine.decisionKeys();
    expect(keys).toHaveLength(1000);
    expect(new Set(keys.map((k) => k.length))).toEqual(new Set([44])); // base64 SHA-256
    expect(engine.misses).toBe(10_000);
    expect(engine.hits).toBe(0);
  });

  it("evicts the least recently used decision, not one in use", () => {
    const engine = new PolicyEngine(2);
    const decide = (tenant: string) => engine.decide(tenantPolicy, req("svc", "kms:Decrypt", { tenant }));
    expect(decide("acme")).toBe("Allow");
    expect(decide("globex")).toBe("NoAllow");
    expect(decide("acme")).toBe("Allow"); // hit: acme is now the most recent
    expect(decide("initech")).toBe("NoAllow"); // evicts globex
    expect(engine.misses).toBe(3);
    expect(decide("acme")).toBe("Allow");
    expect(engine.hits).toBe(2);
    expect(decide("globex")).toBe("NoAllow");
    expect(engine.misses).toBe(4);
  });
});

describe("grantAllows", () => {
  const terms = (o: Partial<GrantTerms>): GrantTerms => ({ operations: ["Encrypt"], contextEquals: {}, contextSubset: {}, ...o });

  it("allows only the operations it names", () => {
    expect(grantAllows(terms({}), "Encrypt", {})).toBe(true);
    expect(grantAllows(terms({}), "Decrypt", {})).toBe(false);
  });

  it("subset: every pair present, more allowed", () => {
    const g = terms({ contextSubset: { app: "x" } });
    expect(grantAllows(g, "Encrypt", { app: "x", more: "1" })).toBe(true);
    expect(grantAllows(g, "Encrypt", { app: "y" })).toBe(false);
    expect(grantAllows(g, "Encrypt", {})).toBe(false);
  });

  it("equals: exactly the map", () => {
    const g = terms({ contextEquals: { app: "x" } });
    expect(grantAllows(g, "Encrypt", { app: "x" })).toBe(true);
    expect(grantAllows(g, "Encrypt", { app: "x", more: "1" })).toBe(false);
    expect(grantAllows(g, "Encrypt", { other: "x" })).toBe(false);
  });

  it("a context key named like an Object property is not found on the prototype", () => {
    expect(grantAllows(terms({ contextSubset: { constructor: "x" } }), "Encrypt", {})).toBe(false);
  });
});
