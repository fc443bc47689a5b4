// The root keys against someone who holds the token PIN and talks to the HSM directly (issue 15 #1): a
// stored HSM-level blob must not become a readable object through any unwrapping key on the token.
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, InternalError, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import * as pkcs11js from "pkcs11js";
import { createTestToken } from "../testing/softhsm-token";
import type { TestToken } from "../testing/softhsm-token";
import { readAttributes } from "./attributes";
import { hsmCall } from "./errors";
import { HsmBackend } from "./hsm-backend";
import type { HsmBackendOptions } from "./hsm-backend";
import { wireBackend } from "../testing/wire-backend";
import type { WireBackend } from "../testing/wire-backend";

jest.setTimeout(60_000);

const { KeySpec, ProtectionLevel } = kmsResources;
const KWP = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD };

let token: TestToken;
let options: HsmBackendOptions;
let backend: WireBackend<HsmBackend>;
/** The attacker's own logged-in session on the token. */
let session: pkcs11js.Handle;

beforeAll(async () => {
  token = createTestToken("root-key-test");
  options = { module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, rootKeyLabel: "pin-root", keyCacheSize: 4 };
  backend = wireBackend(await HsmBackend.open(options));
  session = backend.lib.C_OpenSession(backend.pool.slotId, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    backend.lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
  } catch (err) {
    if ((err as pkcs11js.Pkcs11Error).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw err;
  }
});

afterAll(async () => {
  backend.lib.C_CloseSession(session);
  await backend.close();
  token.remove();
});

/** The CKR_* name a pkcs11js call failed with (its message starts with it: "CKR_ATTRIBUTE_READ_ONLY:16"). */
function code(err: unknown): string {
  return (err as Error).message.split(":")[0]!;
}

/** Every secret key on the token that may unwrap, by label: what an attacker with the PIN would try. */
function unwrappingKeys(): Map<string, pkcs11js.Handle> {
  const lib = backend.lib;
  lib.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_UNWRAP, value: true },
  ]);
  const handles = lib.C_FindObjects(session, 64);
  lib.C_FindObjectsFinal(session);
  return new Map(handles.map((h) => [readAttributes(lib, session, h, [pkcs11js.CKA_LABEL], "label").get(pkcs11js.CKA_LABEL)!.toString(), h]));
}

/** The blob as stored, and every slice of it that could be a bare RFC 5649 wrap (header and tag cut off). */
function candidates(blob: Uint8Array): Map<string, Buffer> {
  const b = Buffer.from(blob);
  const out = new Map<string, Buffer>([["whole blob", b]]);
  for (let start = 0; start < 8; start++) {
    for (let end = b.length; end > b.length - 40; end--) {
      const slice = b.subarray(start, end);
      if (slice.length >= 16 && slice.length % 8 === 0 && !(start === 0 && end === b.length)) out.set(`[${start}, ${end})`, slice);
    }
  }
  return out;
}

/** Tries to unwrap `bytes` under `key` into a readable object and read its value; the outcome, by name. */
function tryReadOut(key: pkcs11js.Handle, bytes: Buffer, keyType: number): string {
  const lib = backend.lib;
  let handle: pkcs11js.Handle;
  try {
    handle = lib.C_UnwrapKey(session, KWP, key, bytes, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: keyType },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: false },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    ]);
  } catch {
    return "unwrap refused";
  }
  try {
    const value = lib.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_VALUE }])[0]?.value as Buffer | undefined;
    return value !== undefined && value.length > 0 ? `READ ${value.length} BYTES` : "empty";
  } catch (err) {
    return `read refused: ${code(err)}`;
  } finally {
    lib.C_DestroyObject(session, handle);
  }
}

describe("a holder of the PIN, at the HSM", () => {
  it.each([
    ["AES_256", KeySpec.AES_256, pkcs11js.CKK_AES],
    ["HMAC_SHA256", KeySpec.HMAC_SHA256, pkcs11js.CKK_GENERIC_SECRET],
  ] as const)("cannot unwrap a stored HSM-level %s blob into a readable object under any key on the token", async (_n, spec, keyType) => {
    const { wrappedMaterial } = await backend.generateKeyMaterial(spec, ProtectionLevel.HSM, "kv-target");
    const keys = unwrappingKeys();
    expect(keys.size).toBeGreaterThan(0);
    const outcomes = new Set<string>();
    for (const [label, key] of keys) {
      for (const [slice, bytes] of candidates(wrappedMaterial)) {
        for (const type of [keyType, pkcs11js.CKK_GENERIC_SECRET]) {
          const outcome = tryReadOut(key, bytes, type);
          outcomes.add(outcome.startsWith("READ") ? `${outcome} with ${label} from ${slice}` : outcome);
        }
      }
    }
    // Nothing on the token turns the blob into a readable object: every attempt is refused by the HSM.
    expect([...outcomes]).toEqual(["unwrap refused"]);
  });

  it("gets only a sensitive, non-extractable object from the HSM root, which it can neither read, wrap out nor loosen", async () => {
    const { wrappedMaterial } = await backend.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.HSM, "kv-target-2");
    const lib = backend.lib;
    const keys = unwrappingKeys();
    const hsmRoot = keys.get("pin-root/hsm")!;
    const softwareRoot = keys.get("pin-root/software")!;
    const kwp = Buffer.from(wrappedMaterial).subarray(1, wrappedMaterial.length - 32);
    // The HSM root refuses any template that does not say sensitive, non-extractable, no derivation.
    const refused = (template: pkcs11js.Template) => {
      try {
        lib.C_DestroyObject(session, lib.C_UnwrapKey(session, KWP, hsmRoot, kwp, template));
        return "unwrapped";
      } catch (err) {
        return code(err);
      }
    };
    const base = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: false },
    ];
    const sensitive = { type: pkcs11js.CKA_SENSITIVE, value: true };
    const unextractable = { type: pkcs11js.CKA_EXTRACTABLE, value: false };
    const noDerive = { type: pkcs11js.CKA_DERIVE, value: false };
    expect([
      refused(base),
      refused([...base, sensitive, unextractable]),
      refused([...base, sensitive, { type: pkcs11js.CKA_EXTRACTABLE, value: true }, noDerive]),
      refused([...base, { type: pkcs11js.CKA_SENSITIVE, value: false }, unextractable, noDerive]),
      refused([...base, sensitive, unextractable, { type: pkcs11js.CKA_DERIVE, value: true }]),
    ]).toEqual(["CKR_TEMPLATE_INCONSISTENT", "CKR_TEMPLATE_INCONSISTENT", "CKR_TEMPLATE_INCONSISTENT", "CKR_TEMPLATE_INCONSISTENT", "CKR_TEMPLATE_INCONSISTENT"]);

    const object = lib.C_UnwrapKey(session, KWP, hsmRoot, kwp, [...base, sensitive, unextractable, noDerive]);
    try {
      const attempt = (f: () => unknown) => {
        try {
          f();
          return "done";
        } catch (err) {
          return code(err);
        }
      };
      expect({
        read: attempt(() => lib.C_GetAttributeValue(session, object, [{ type: pkcs11js.CKA_VALUE }])),
        wrapOut: attempt(() => lib.C_WrapKey(session, KWP, softwareRoot, object, Buffer.alloc(64))),
        loosen: attempt(() => lib.C_SetAttributeValue(session, object, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }])),
        unsensitive: attempt(() => lib.C_SetAttributeValue(session, object, [{ type: pkcs11js.CKA_SENSITIVE, value: false }])),
        copyLoose: attempt(() => lib.C_CopyObject(session, object, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }])),
      }).toEqual({
        read: "CKR_ATTRIBUTE_SENSITIVE",
        wrapOut: "CKR_KEY_UNEXTRACTABLE",
        loosen: "CKR_ATTRIBUTE_READ_ONLY",
        unsensitive: "CKR_ATTRIBUTE_READ_ONLY",
        copyLoose: "CKR_ATTRIBUTE_READ_ONLY",
      });
    } finally {
      lib.C_DestroyObject(session, object);
    }
  });
});

describe("the root set", () => {
  it("is refused when its HSM root does not enforce an unwrap template (fail closed, nothing used)", async () => {
    const lib = backend.lib;
    const id = Buffer.from("0123456789abcdef0123456789abcdef", "hex");
    const make = (label: string, keyType: number, extra: pkcs11js.Template) =>
      hsmCall("test", () =>
        lib.C_GenerateKey(session, { mechanism: keyType === pkcs11js.CKK_AES ? pkcs11js.CKM_AES_KEY_GEN : pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: keyType },
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_LABEL, value: label },
          { type: pkcs11js.CKA_ID, value: id },
          ...extra,
        ]),
      );
    const wrapUnwrap = [
      { type: pkcs11js.CKA_WRAP, value: true },
      { type: pkcs11js.CKA_UNWRAP, value: true },
    ];
    // A root set made by hand, its HSM root without CKA_UNWRAP_TEMPLATE.
    const made = [
      make("weak/hsm", pkcs11js.CKK_AES, wrapUnwrap),
      make("weak/software", pkcs11js.CKK_AES, wrapUnwrap),
      make("weak/mac", pkcs11js.CKK_GENERIC_SECRET, [{ type: pkcs11js.CKA_SIGN, value: true }]),
    ];
    try {
      let err: unknown;
      try {
        await (await HsmBackend.open({ ...options, rootKeyLabel: "weak", createRootKey: false })).close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InternalError);
      expect((err as Error).message).toBe(
        'root key "weak/hsm" does not enforce CKA_UNWRAP_TEMPLATE: HSM material could be unwrapped readable; refusing to use it',
      );
    } finally {
      for (const h of made) lib.C_DestroyObject(session, h);
    }
  });
});

describe("a format 1 (legacy) root, as earlier releases left the token", () => {
  it("makes an upgraded worker create the root set without KMS_CREATE_ROOT_KEY, and its rows keep working", async () => {
    const lib = backend.lib;
    // The old release's root (same template as its generateRootKey) and an AES-256 HSM key under it.
    const legacyId = Buffer.from("00112233445566778899aabbccddeeff", "hex");
    const legacyRoot = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_WRAP, value: true },
      { type: pkcs11js.CKA_UNWRAP, value: true },
      { type: pkcs11js.CKA_ENCRYPT, value: false },
      { type: pkcs11js.CKA_DECRYPT, value: false },
      { type: pkcs11js.CKA_SIGN, value: false },
      { type: pkcs11js.CKA_VERIFY, value: false },
      { type: pkcs11js.CKA_LABEL, value: "old-root" },
      { type: pkcs11js.CKA_ID, value: legacyId },
    ]);
    const material = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    ]);
    const legacyBlob = Buffer.from(lib.C_WrapKey(session, KWP, legacyRoot, material, Buffer.alloc(64)));
    lib.C_DestroyObject(session, material);
    const legacyKey = create(hsm.WrappedKeySchema, {
      keyVersionId: "kv-old",
      keySpec: KeySpec.AES_256,
      protectionLevel: ProtectionLevel.HSM,
      wrappedMaterial: legacyBlob,
      rootKeyId: legacyId.toString("hex"),
    });

    const upgraded = wireBackend(await HsmBackend.open({ ...options, rootKeyLabel: "old-root", createRootKey: false }));
    try {
      expect(upgraded.status()).toMatchObject({ legacyRootKeyId: legacyId.toString("hex") });
      expect(upgraded.rootKeyId).toMatch(/^[0-9a-f]{32}$/);
      expect(upgraded.rootKeyId).not.toBe(legacyId.toString("hex"));
      const sealed = await upgraded.encrypt(legacyKey, Buffer.from("old row"), Buffer.from("aad"));
      expect((await upgraded.decrypt(legacyKey, sealed, Buffer.from("aad"))).toString()).toBe("old row");

      // A format 1 blob presented under the new root id, and a new blob under the legacy id: refused.
      const fresh = await upgraded.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.HSM, "kv-new");
      const refusals = [
        upgraded.encrypt({ ...legacyKey, rootKeyId: upgraded.rootKeyId }, Buffer.from("x"), Buffer.alloc(0)),
        upgraded.encrypt({ ...legacyKey, keyVersionId: "kv-new", wrappedMaterial: fresh.wrappedMaterial }, Buffer.from("x"), Buffer.alloc(0)),
      ];
      for (const refusal of refusals) {
        const err = await refusal.then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(KmsError);
        expect([(err as KmsError).status, (err as KmsError).code]).toEqual([status.INVALID_ARGUMENT, ErrorCode.InvalidParameter]);
      }
    } finally {
      await upgraded.close();
      lib.C_DestroyObject(session, legacyRoot);
    }
  });
});
