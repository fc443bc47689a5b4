// Why root rotation leaves HSM-level format 2 material under its old /hsm root (docs/operations.md, "Root
// rotation"): measured on SoftHSM, not asserted. Such material unwraps only through the /hsm root, whose
// CKA_UNWRAP_TEMPLATE makes it non-extractable (security finding #1), so nothing can wrap it again:
//   1. C_WrapKey of the unwrapped object under a new root: CKR_KEY_UNEXTRACTABLE;
//   2. CKA_EXTRACTABLE cannot be set back to true (PKCS#11 makes that one-way): refused;
//   3. the standard way out, a CKA_TRUSTED wrapping key, needs CKA_TRUSTED=true, which the user cannot set;
//   4. the SO, who may set it, cannot create or see private objects, so a trusted root would be a public
//      object (stored unencrypted in SoftHSM's token files) and could not reach the user's material anyway;
//      and even a trusted key does not wrap a non-extractable object.
// While the legacy (format 1) root, which has no template, still unwraps into an extractable session
// object that the new /hsm root can wrap inside the HSM: what rotate-root does with format 1 rows.
import { spawnSync } from "node:child_process";
import * as pkcs11js from "pkcs11js";
import { createTestToken } from "../testing/softhsm-token";
import type { TestToken } from "../testing/softhsm-token";
import { forcedHsmTemplate, findOrCreateRootSet } from "./root-key";
import type { RootSet } from "./root-key";

jest.setTimeout(60_000);

const KWP = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD };
const SO_PIN = "so-pin-rotation-limits";
const SECOND = "rotation-limits-so";

let token: TestToken;
let lib: pkcs11js.PKCS11;
let user: pkcs11js.Handle;
let roots: RootSet;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message.split(":")[0]!;
  }
  return "CKR_OK";
}

function slotOf(label: string): pkcs11js.Handle {
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === label);
  if (slot === undefined) throw new Error(`no token ${label}`);
  return slot;
}

function aesTemplate(extra: pkcs11js.Template): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_TOKEN, value: false },
    ...extra,
  ];
}

/** A wrapping key as a new root would be (here a session object; the token object changes nothing). */
function newWrappingKey(session: pkcs11js.Handle, extra: pkcs11js.Template = []): pkcs11js.Handle {
  return lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    ...aesTemplate([{ type: pkcs11js.CKA_VALUE_LEN, value: 32 }]),
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_WRAP, value: true },
    { type: pkcs11js.CKA_UNWRAP, value: true },
    ...extra,
  ]);
}

/** HSM-level format 2 material as the worker makes it: generated, wrapped under the /hsm root, then unwrapped as the engine does. */
function hsmLevelObject(extra: pkcs11js.Template = []): pkcs11js.Handle {
  const key = lib.C_GenerateKey(user, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    ...aesTemplate([{ type: pkcs11js.CKA_VALUE_LEN, value: 32 }]),
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
  ]);
  const kwp = Buffer.from(lib.C_WrapKey(user, KWP, roots.hsm, key, Buffer.alloc(64)));
  lib.C_DestroyObject(user, key);
  return lib.C_UnwrapKey(user, KWP, roots.hsm, kwp, forcedHsmTemplate(aesTemplate([{ type: pkcs11js.CKA_ENCRYPT, value: true }, ...extra])));
}

beforeAll(() => {
  token = createTestToken("rotation-limits");
  // A second token with a known SO PIN, for what the SO may and may not do.
  const init = spawnSync("softhsm2-util", ["--init-token", "--free", "--label", SECOND, "--so-pin", SO_PIN, "--pin", token.pin], {
    env: { ...process.env, SOFTHSM2_CONF: token.confPath },
    encoding: "utf8",
  });
  if (init.status !== 0) throw new Error(`softhsm2-util: ${init.stderr}`);
  lib = new pkcs11js.PKCS11();
  lib.load(token.module);
  lib.C_Initialize();
  user = lib.C_OpenSession(slotOf(token.label), pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  lib.C_Login(user, pkcs11js.CKU_USER, token.pin);
  roots = findOrCreateRootSet(lib, user, "limits-root", true)!;
});

afterAll(() => {
  lib.C_Finalize();
  token.remove();
});

describe("HSM-level format 2 material cannot be wrapped again under a new root", () => {
  it("C_WrapKey under a new root: CKR_KEY_UNEXTRACTABLE", () => {
    const object = hsmLevelObject();
    const next = newWrappingKey(user);
    expect(code(() => lib.C_WrapKey(user, KWP, next, object, Buffer.alloc(64)))).toBe("CKR_KEY_UNEXTRACTABLE");
    // Nor under the /hsm root itself, or the /software root: nothing wraps it.
    expect(code(() => lib.C_WrapKey(user, KWP, roots.software, object, Buffer.alloc(64)))).toBe("CKR_KEY_UNEXTRACTABLE");
  });

  it("CKA_EXTRACTABLE cannot be set back to true", () => {
    const object = hsmLevelObject();
    expect(code(() => lib.C_SetAttributeValue(user, object, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }]))).toBe("CKR_ATTRIBUTE_READ_ONLY");
    // A copy cannot be made extractable either.
    expect(code(() => lib.C_CopyObject(user, object, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }]))).toBe("CKR_ATTRIBUTE_READ_ONLY");
  });

  it("the user cannot make a CKA_TRUSTED wrapping key (at creation or after)", () => {
    expect(code(() => newWrappingKey(user, [{ type: pkcs11js.CKA_TRUSTED, value: true }]))).toBe("CKR_ATTRIBUTE_READ_ONLY");
    const next = newWrappingKey(user);
    expect(code(() => lib.C_SetAttributeValue(user, next, [{ type: pkcs11js.CKA_TRUSTED, value: true }]))).toBe("CKR_ATTRIBUTE_READ_ONLY");
  });

  it("the SO may mark a key trusted only if it is public: it cannot create (or see) private objects", () => {
    const so = lib.C_OpenSession(slotOf(SECOND), pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      lib.C_Login(so, pkcs11js.CKU_SO, SO_PIN);
      // A private (CKA_PRIVATE=true) token key, as every root is: refused to the SO.
      expect(code(() => newWrappingKey(so, [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_TRUSTED, value: true }]))).toBe(
        "CKR_USER_NOT_LOGGED_IN",
      );
      // A public one it can make trusted: stored unencrypted in the token files, which is why no root is public.
      const trusted = newWrappingKey(so, [{ type: pkcs11js.CKA_PRIVATE, value: false }, { type: pkcs11js.CKA_TRUSTED, value: true }]);
      lib.C_DestroyObject(so, trusted);
    } finally {
      lib.C_CloseSession(so);
    }
  });

  it("even a trusted wrapping key does not wrap a non-extractable object", () => {
    // On the second token: the SO makes a public trusted wrapping key, then the user (who sees public
    // objects) tries it on a non-extractable key that asks to be wrapped only with trusted keys.
    const session = lib.C_OpenSession(slotOf(SECOND), pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      lib.C_Login(session, pkcs11js.CKU_SO, SO_PIN);
      const trusted = newWrappingKey(session, [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: false }, { type: pkcs11js.CKA_TRUSTED, value: true }]);
      lib.C_Logout(session);
      lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
      const object = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        ...aesTemplate([{ type: pkcs11js.CKA_VALUE_LEN, value: 32 }]),
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_WRAP_WITH_TRUSTED, value: true },
      ]);
      expect(code(() => lib.C_WrapKey(session, KWP, trusted, object, Buffer.alloc(64)))).toBe("CKR_KEY_UNEXTRACTABLE");
      lib.C_DestroyObject(session, trusted);
    } finally {
      lib.C_CloseSession(session);
    }
  });
});

describe("legacy (format 1) material can move inside the HSM", () => {
  it("unwraps under an untemplated root into an extractable session object that a new /hsm root wraps", () => {
    const legacy = newWrappingKey(user);
    const key = lib.C_GenerateKey(user, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      ...aesTemplate([{ type: pkcs11js.CKA_VALUE_LEN, value: 32 }]),
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    ]);
    const format1 = Buffer.from(lib.C_WrapKey(user, KWP, legacy, key, Buffer.alloc(64)));
    lib.C_DestroyObject(user, key);
    const inside = lib.C_UnwrapKey(user, KWP, legacy, format1, aesTemplate([{ type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: true }]));
    const rewrapped = Buffer.from(lib.C_WrapKey(user, KWP, roots.hsm, inside, Buffer.alloc(64)));
    lib.C_DestroyObject(user, inside);
    expect(rewrapped.length).toBe(40);
    // And under the /hsm root it is now non-extractable like all HSM-level material.
    const after = lib.C_UnwrapKey(user, KWP, roots.hsm, rewrapped, forcedHsmTemplate(aesTemplate([{ type: pkcs11js.CKA_ENCRYPT, value: true }])));
    expect(code(() => lib.C_WrapKey(user, KWP, roots.software, after, Buffer.alloc(64)))).toBe("CKR_KEY_UNEXTRACTABLE");
  });
});
