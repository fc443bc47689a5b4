// The Authorizer on its own: a key's default policy (its creator and the administrators), its own
// policy, and the access lists for operations on no key.
import type { KeyRecord } from "@kms/db";
import { ErrorCode } from "@kms/errors";
import { PolicyEngine } from "@kms/key-policy";
import type { CallContext } from "../context";
import { newCallContext } from "../pipeline/pipeline";
import { Authorizer } from "./authorize";

const access = { admins: ["root"], creators: ["alice"], auditors: ["carol"], aliasPrefixes: {} };
const as = (principal: string, operation = "Encrypt"): CallContext => ({ ...newCallContext("r", operation, undefined), principal });
const key = (creator: string, policy: string | null = null) => ({ keyId: "k1", creator, policy, keySpec: 1, keyUsage: 1, origin: 1, protectionLevel: 1 }) as KeyRecord;
const refusal = (f: () => void) => {
  try {
    f();
    return "allowed";
  } catch (err) {
    return (err as { code: string }).code;
  }
};

describe("Authorizer", () => {
  const authorizer = new Authorizer(new PolicyEngine(), access);

  it("lets a key's creator and the administrators use it under the default policy, nobody else", () => {
    expect(["alice", "root", "bob"].map((p) => refusal(() => authorizer.key(as(p), key("alice"))))).toEqual(["allowed", "allowed", ErrorCode.PermissionDenied]);
  });

  it("follows a key's own policy instead, for the action asked", () => {
    const policy = JSON.stringify({ Version: "1", Statement: [{ Effect: "Allow", Principal: ["bob"], Action: "kms:Decrypt", Resource: "*" }] });
    expect([refusal(() => authorizer.key(as("bob", "Decrypt"), key("alice", policy))), refusal(() => authorizer.key(as("bob"), key("alice", policy)))]).toEqual([
      "allowed",
      ErrorCode.PermissionDenied,
    ]);
    expect(refusal(() => authorizer.key(as("alice"), key("alice", policy)))).toBe(ErrorCode.PermissionDenied);
  });

  it("decides operations on no key by the access lists", () => {
    expect(["alice", "root", "carol"].map((p) => refusal(() => authorizer.creator(as(p, "CreateKey"))))).toEqual(["allowed", "allowed", ErrorCode.PermissionDenied]);
    expect(["carol", "root", "alice"].map((p) => refusal(() => authorizer.auditor(as(p, "ListAuditEvents"))))).toEqual(["allowed", "allowed", ErrorCode.PermissionDenied]);
  });
});
