// Key policies: who may do what with a key, and under which conditions. Pure functions, no I/O.
//
//   { "Version": "1",
//     "Statement": [ { "Sid": "...", "Effect": "Allow" | "Deny",
//                      "Principal": ["spiffe://…/sa/web"] | "*",
//                      "Action": ["kms:Encrypt", "kms:GenerateDataKey*"] | "kms:*",
//                      "Resource": "*",
//                      "Condition": { "StringEquals": { "kms:EncryptionContext:tenant": "acme" } } } ] }
//
// An explicit Deny wins; without an Allow the answer is no.
import { createHash } from "node:crypto";
import { invalidArgument } from "@kms/errors";
import { Glob, globProblem } from "./glob";

export { Glob, MAX_GLOB_CHARACTERS, MAX_GLOB_STARS } from "./glob";
export { CONTEXT_OPERATIONS, GRANT_OPERATIONS, grantAllows } from "./grants";
export type { GrantTerms } from "./grants";
export type { StepCounter } from "./glob";

export const MAX_POLICY_BYTES = 32 * 1024;
const MAX_STATEMENTS = 100;

/** Every action a policy can name (the RPC names, plus ReEncrypt's two halves). */
export const ACTIONS = [
  "CreateKey", "DescribeKey", "ListKeys", "UpdateKeyDescription", "EnableKey", "DisableKey", "ScheduleKeyDeletion",
  "CancelKeyDeletion", "SetDeletionProtection", "CreateKeyVersion", "DescribeKeyVersion", "ListKeyVersions",
  "UpdateRotationPolicy", "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
  "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "AsymmetricSign", "AsymmetricVerify", "AsymmetricEncrypt", "AsymmetricDecrypt",
  "GetPublicKey", "GenerateMac", "VerifyMac", "GetParametersForImport", "ImportKeyMaterial", "DeleteKeyMaterial",
  "CreateAlias", "UpdateAlias", "DeleteAlias", "ListAliasesByKeyId", "TagResource", "UntagResource",
  "ListResourceTags", "GetKeyPolicy", "SetKeyPolicy", "CreateGrant", "ListGrants", "RetireGrant", "RevokeGrant",
  // Key agreement.
  "DeriveSharedSecret",
].map((a) => `kms:${a}`);

export const OPERATORS = ["StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "Bool"] as const;
type Operator = (typeof OPERATORS)[number];

/** Condition keys a policy may test; kms:EncryptionContext:<key> takes any context key. */
export const CONDITION_KEYS = ["kms:CallerPrincipal", "kms:KeyOrigin", "kms:KeySpec", "kms:KeyUsage", "kms:ProtectionLevel", "kms:MutualTLS"];
const CONTEXT_PREFIX = "kms:EncryptionContext:";

interface Condition {
  operator: Operator;
  key: string;
  values: string[];
  /** StringLike / StringNotLike: the values compiled. */
  globs: Glob[];
}

interface Statement {
  effect: "Allow" | "Deny";
  principals: string[];
  actions: Glob[];
  conditions: Condition[];
}

export interface Policy {
  statements: Statement[];
  /** SHA-256 of the document text: identifies it in decision caches. */
  digest: string;
  /** The condition keys its statements test, sorted: the only request values a decision depends on. */
  conditionKeys: string[];
}

export interface PolicyRequest {
  principal: string;
  /** "kms:Encrypt" etc. */
  action: string;
  /** Condition key → value (absent when the request has no such value). */
  values: Readonly<Record<string, string>>;
}

export type Decision = "Allow" | "Deny" | "NoAllow";

function bad(path: string, problem: string): never {
  throw invalidArgument("policy", path ? `${path}: ${problem}` : problem);
}

/** A pattern within the caps (length, number of `*`), compiled. */
function compileGlob(pattern: string, path: string, ignoreCase = false): Glob {
  const problem = globProblem(pattern);
  if (problem !== undefined) bad(path, problem);
  return new Glob(pattern, { ignoreCase });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A string or a non-empty list of strings. */
function stringList(v: unknown, path: string): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.length > 0 && v.length <= 100 && v.every((x) => typeof x === "string")) return v as string[];
  return bad(path, "must be a string or a list of 1 to 100 strings");
}

function onlyFields(o: Record<string, unknown>, allowed: string[], path: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(path ? `${path}.${k}` : k, "unknown field");
}

/** Parses and validates a policy document; INVALID_ARGUMENT naming the bad path. */
export function parsePolicy(text: string): Policy {
  if (Buffer.byteLength(text, "utf8") > MAX_POLICY_BYTES) bad("", `must be at most ${MAX_POLICY_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // Includes RangeError from absurdly deep nesting: the size cap keeps parsing itself cheap.
    return bad("", "is not valid JSON");
  }
  if (!isObject(doc)) return bad("", "must be a JSON object");
  onlyFields(doc, ["Version", "Statement"], "");
  if (doc.Version !== "1") bad("Version", 'must be "1"');
  const raw = doc.Statement;
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_STATEMENTS) bad("Statement", `must be a list of 1 to ${MAX_STATEMENTS} statements`);
  const statements = (raw as unknown[]).map((s, i) => parseStatement(s, `Statement[${i}]`));
  const conditionKeys = [...new Set(statements.flatMap((s) => s.conditions.map((c) => c.key)))].sort();
  return { statements, digest: createHash("sha256").update(text).digest("hex"), conditionKeys };
}

function parseStatement(s: unknown, path: string): Statement {
  if (!isObject(s)) return bad(path, "must be an object");
  onlyFields(s, ["Sid", "Effect", "Principal", "Action", "Resource", "Condition"], path);
  if (s.Sid !== undefined && typeof s.Sid !== "string") bad(`${path}.Sid`, "must be a string");
  if (s.Effect !== "Allow" && s.Effect !== "Deny") bad(`${path}.Effect`, 'must be "Allow" or "Deny"');
  const principals = stringList(s.Principal, `${path}.Principal`);
  principals.forEach((p, j) => p === "" && bad(`${path}.Principal[${j}]`, "must not be empty"));
  const actions = stringList(s.Action, `${path}.Action`).map((a, j) => {
    const pattern = compileGlob(a, `${path}.Action[${j}]`, true);
    if (!a.toLowerCase().startsWith("kms:") || !ACTIONS.some((known) => pattern.test(known))) {
      bad(`${path}.Action[${j}]`, `${JSON.stringify(a)} matches no kms action`);
    }
    return pattern;
  });
  const resources = stringList(s.Resource ?? "*", `${path}.Resource`);
  if (resources.some((r) => r !== "*")) bad(`${path}.Resource`, 'must be "*" (a key policy applies to its own key)');
  return { effect: s.Effect as "Allow" | "Deny", principals, actions, conditions: parseConditions(s.Condition, `${path}.Condition`) };
}

function parseConditions(c: unknown, path: string): Condition[] {
  if (c === undefined) return [];
  if (!isObject(c)) return bad(path, "must be an object");
  const out: Condition[] = [];
  for (const [operator, tests] of Object.entries(c)) {
    if (!(OPERATORS as readonly string[]).includes(operator)) bad(`${path}.${operator}`, `unknown operator; use one of ${OPERATORS.join(", ")}`);
    if (!isObject(tests) || Object.keys(tests).length === 0) bad(`${path}.${operator}`, "must be a non-empty object");
    for (const [key, value] of Object.entries(tests)) {
      const at = `${path}.${operator}.${key}`;
      if (!CONDITION_KEYS.includes(key) && !(key.startsWith(CONTEXT_PREFIX) && key.length > CONTEXT_PREFIX.length)) {
        bad(at, "unknown condition key");
      }
      let values: string[];
      if (operator === "Bool") {
        if (value !== true && value !== false && value !== "true" && value !== "false") bad(at, "must be true or false");
        values = [String(value)];
      } else {
        values = stringList(value, at);
      }
      const globs = operator === "StringLike" || operator === "StringNotLike" ? values.map((v, j) => compileGlob(v, `${at}[${j}]`)) : [];
      out.push({ operator: operator as Operator, key, values, globs });
    }
  }
  return out;
}

function conditionHolds(c: Condition, values: Readonly<Record<string, string>>): boolean {
  const actual = Object.prototype.hasOwnProperty.call(values, c.key) ? values[c.key] : undefined;
  switch (c.operator) {
    case "StringEquals":
      return actual !== undefined && c.values.includes(actual);
    case "StringNotEquals":
      return actual === undefined || !c.values.includes(actual);
    case "StringLike":
      return actual !== undefined && c.globs.some((g) => g.test(actual));
    case "StringNotLike":
      return actual === undefined || !c.globs.some((g) => g.test(actual));
    case "Bool":
      return actual !== undefined && actual === c.values[0];
  }
}

/** Explicit Deny wins; else any matching Allow allows; else no. */
export function evaluate(policy: Policy, request: PolicyRequest): Decision {
  let allowed = false;
  for (const s of policy.statements) {
    if (!s.principals.includes("*") && !s.principals.includes(request.principal)) continue;
    if (!s.actions.some((a) => a.test(request.action))) continue;
    if (!s.conditions.every((c) => conditionHolds(c, request.values))) continue;
    if (s.effect === "Deny") return "Deny";
    allowed = true;
  }
  return allowed ? "Allow" : "NoAllow";
}

/** The policy a key gets when CreateKey names none: its creator and the administrators may do anything. */
export function defaultPolicy(creator: string, admins: readonly string[]): string {
  const principals = [...new Set([creator, ...admins])];
  return JSON.stringify({
    Version: "1",
    Statement: [{ Sid: "creator-and-admins", Effect: "Allow", Principal: principals, Action: "kms:*", Resource: "*" }],
  });
}

/** Condition values of one request (the encryption context becomes kms:EncryptionContext:<key>). */
export function conditionValues(v: {
  principal: string;
  keyOrigin?: string;
  keySpec?: string;
  keyUsage?: string;
  protectionLevel?: string;
  mutualTls?: boolean;
  encryptionContext?: Readonly<Record<string, string>>;
}): Record<string, string> {
  const out: Record<string, string> = { "kms:CallerPrincipal": v.principal };
  if (v.keyOrigin) out["kms:KeyOrigin"] = v.keyOrigin;
  if (v.keySpec) out["kms:KeySpec"] = v.keySpec;
  if (v.keyUsage) out["kms:KeyUsage"] = v.keyUsage;
  if (v.protectionLevel) out["kms:ProtectionLevel"] = v.protectionLevel;
  if (v.mutualTls !== undefined) out["kms:MutualTLS"] = String(v.mutualTls);
  for (const [k, value] of Object.entries(v.encryptionContext ?? {})) out[CONTEXT_PREFIX + k] = value;
  return out;
}

/**
 * Parsed policies and decisions, cached. Both are keyed by the document's content, so a changed
 * policy (read fresh from Postgres by whichever replica serves the call) never hits a stale entry.
 * A decision is keyed by the SHA-256 of what it depends on, never by the values themselves: callers
 * choose encryption contexts (up to 8192 characters each), and 10,000 of them as keys held 170 MB.
 */
export class PolicyEngine {
  private readonly parsed = new Map<string, Policy>();
  private readonly decisions = new Map<string, Decision>();
  hits = 0;
  misses = 0;

  constructor(private readonly maxDecisions = 10_000) {}

  decide(policyText: string, request: PolicyRequest): Decision {
    const policy = this.policy(policyText);
    const cacheKey = decisionKey(policy, request);
    const cached = this.decisions.get(cacheKey);
    if (cached !== undefined) {
      this.hits++;
      // Least recently used goes first: move this one to the back.
      this.decisions.delete(cacheKey);
      this.decisions.set(cacheKey, cached);
      return cached;
    }
    this.misses++;
    const decision = evaluate(policy, request);
    remember(this.decisions, cacheKey, decision, this.maxDecisions);
    return decision;
  }

  policy(text: string): Policy {
    const found = this.parsed.get(text);
    if (found) return found;
    const policy = parsePolicy(text);
    remember(this.parsed, text, policy, 1000);
    return policy;
  }

  /** The decision cache's keys, least recently used first (for tests and debugging). */
  decisionKeys(): string[] {
    return [...this.decisions.keys()];
  }
}

/**
 * What a decision depends on: the policy, principal, action and only the values the policy tests (none,
 * for the default policy), hashed. Absent and empty stay distinct (null vs ""); JSON keeps the parts apart.
 */
function decisionKey(policy: Policy, request: PolicyRequest): string {
  const tested = policy.conditionKeys.map((k) => (Object.prototype.hasOwnProperty.call(request.values, k) ? request.values[k] : null));
  return createHash("sha256").update(JSON.stringify([policy.digest, request.principal, request.action, tested])).digest("base64");
}

/** Insert with oldest-first eviction (Map keeps insertion order). */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  if (map.size >= max) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}
