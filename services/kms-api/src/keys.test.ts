// KeyLookup with an in-memory cache and store: what a caller who may not use a key is told (the same
// for a key that does not exist), and that the audit row names the key asked for either way.
import type { KeyRecord, KeyStore } from "@kms/db";
import { ErrorCode, KmsError } from "@kms/errors";
import { PolicyEngine } from "@kms/key-policy";
import { Authorizer } from "./auth/authorize";
import type { CallContext } from "./call-context";
import type { KeyCache } from "./key-cache";
import { KeyLookup } from "./keys";
import { newCallContext } from "./pipeline/pipeline";

const ALICE_KEY = "0b7e3a52-3c2d-4c47-9c55-5d1f0f6c1a11";
const MISSING = "7d1c8a9e-2f4b-4c1e-8d5a-0a9b8c7d6e5f";
const key = { keyId: ALICE_KEY, creator: "alice", policy: null, keySpec: 1, keyUsage: 1, origin: 1, protectionLevel: 1, keyState: 1 } as KeyRecord;
const cache = {
  getKey: async (id: string) => (id === ALICE_KEY ? key : undefined),
  aliasTarget: async (name: string) => (name === "alias/alice" ? ALICE_KEY : undefined),
} as unknown as KeyCache;
const store = { getTombstone: async () => undefined } as unknown as KeyStore;
const access = { admins: ["root"], creators: ["*"], auditors: [], aliasPrefixes: { alice: ["alias/alice"] } };
const lookup = new KeyLookup(cache, store, new Authorizer(new PolicyEngine(), access));
const as = (principal: string): CallContext => ({ ...newCallContext("r", "Encrypt", undefined), principal });

async function answer(ctx: CallContext, value: string): Promise<string> {
  try {
    return (await lookup.find(ctx, value)).keyId;
  } catch (err) {
    return `${(err as KmsError).code}: ${(err as KmsError).message}`;
  }
}

describe("KeyLookup", () => {
  it("finds a key by id and by alias for a caller its policy allows", async () => {
    expect([await answer(as("alice"), ALICE_KEY), await answer(as("alice"), "alias/alice")]).toEqual([ALICE_KEY, ALICE_KEY]);
  });

  it("tells another principal the same for a forbidden key as for a missing one, and names the key for the audit row", async () => {
    const forbidden = as("bob");
    const missing = as("bob");
    expect(await answer(forbidden, ALICE_KEY)).toBe(`${ErrorCode.PermissionDenied}: kms:Encrypt on key ${ALICE_KEY} is not allowed for bob`);
    expect(await answer(missing, MISSING)).toBe(`${ErrorCode.PermissionDenied}: kms:Encrypt on key ${MISSING} is not allowed for bob`);
    expect([forbidden.audit.keyId, missing.audit.keyId]).toEqual([ALICE_KEY, MISSING]);
  });

  it("hides an alias and its target alike from a caller outside its name space", async () => {
    expect([await answer(as("bob"), "alias/alice"), await answer(as("bob"), "alias/none")]).toEqual([
      `${ErrorCode.PermissionDenied}: kms:Encrypt on alias/alice is not allowed for bob`,
      `${ErrorCode.PermissionDenied}: kms:Encrypt on alias/none is not allowed for bob`,
    ]);
    expect(await answer(as("root"), MISSING)).toBe(`${ErrorCode.KeyNotFound}: key "${MISSING}" not found`);
  });
});
