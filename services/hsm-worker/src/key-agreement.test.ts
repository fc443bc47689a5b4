// DeriveSharedSecret in the worker, both backends: ECDH agrees with node:crypto on the peer's side, bad peer
// keys are refused before any ECDH, and what SoftHSM 2.6.1 does with CKA_DERIVE (docs/security.md, "Key
// agreement in the HSM") is measured here, so a module that behaves otherwise shows up.
import { createPublicKey, diffieHellman, ECDH, generateKeyPairSync } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import * as pkcs11js from "pkcs11js";
import type { Backend } from "./backend";
import { deriveSharedSecret } from "./handlers";
import { HsmBackend } from "./pkcs11/hsm-backend";
import { forcedHsmTemplate, HSM_UNWRAP_TEMPLATE } from "./pkcs11/root-key";
import { SoftwareRootBackend } from "./software/software-root";
import { createTestToken } from "./testing/softhsm-token";
import type { TestToken } from "./testing/softhsm-token";
import { wireBackend } from "./testing/wire-backend";
import type { WireBackend } from "./testing/wire-backend";

jest.setTimeout(60_000);

const { KeySpec, ProtectionLevel } = kmsResources;
const CURVES = [
  { spec: KeySpec.EC_P256, curve: "P-256", node: "prime256v1", bytes: 32 },
  { spec: KeySpec.EC_P384, curve: "P-384", node: "secp384r1", bytes: 48 },
] as const;

let token: TestToken;
let softwareDir: string;
let backends: { name: string; level: kmsResources.ProtectionLevel; backend: WireBackend<Backend> }[];

beforeAll(async () => {
  token = createTestToken("key-agreement-test");
  const hsmBackend = await HsmBackend.open({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, rootKeyLabel: "ka-root", keyCacheSize: 4 });
  softwareDir = mkdtempSync(path.join(os.tmpdir(), "key-agreement-"));
  const softwareRoot = SoftwareRootBackend.open(path.join(softwareDir, "data"), 4);
  backends = [
    { name: "HSM level, PKCS#11 backend", level: ProtectionLevel.HSM, backend: wireBackend(hsmBackend) },
    { name: "SOFTWARE level, PKCS#11 backend", level: ProtectionLevel.SOFTWARE, backend: wireBackend(hsmBackend) },
    { name: "SOFTWARE level, software-root backend", level: ProtectionLevel.SOFTWARE, backend: wireBackend(softwareRoot) },
  ];
});

afterAll(async () => {
  await backends[0]!.backend.close();
  await backends[2]!.backend.close();
  token.remove();
  rmSync(softwareDir, { recursive: true, force: true });
});

async function newKey(backend: WireBackend<Backend>, id: string, keySpec: kmsResources.KeySpec, protectionLevel: kmsResources.ProtectionLevel) {
  const generated = await backend.generateKeyMaterial(keySpec, protectionLevel, id);
  const key = create(hsm.WrappedKeySchema, { keyVersionId: id, keySpec, protectionLevel, wrappedMaterial: generated.wrappedMaterial, rootKeyId: backend.status().rootKeyId });
  return { key, publicKey: createPublicKey({ key: Buffer.from(generated.publicKey), format: "der", type: "spki" }) };
}

const spki = (k: KeyObject) => k.export({ type: "spki", format: "der" });

async function refusal(promise: Promise<unknown>): Promise<KmsError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(KmsError);
    return err as KmsError;
  }
  throw new Error("expected a refusal");
}

describe.each([0, 1, 2])("DeriveSharedSecret (%#)", (i) => {
  it.each(CURVES)("agrees with node:crypto on the peer's side, $curve", async ({ spec, node, bytes }) => {
    const { backend, level, name } = backends[i]!;
    const { key, publicKey } = await newKey(backend, `ka-${i}-${spec}`, spec, level);
    const peer = generateKeyPairSync("ec", { namedCurve: node });
    const ours = await backend.deriveSharedSecret(key, spki(peer.publicKey));
    const theirs = diffieHellman({ privateKey: peer.privateKey, publicKey });
    expect({ name, length: ours.length }).toEqual({ name, length: bytes });
    expect(ours.equals(theirs)).toBe(true);
    // Twice: a second call works the same (the HSM object of the first was destroyed, the KeyObject cached).
    expect((await backend.deriveSharedSecret(key, spki(peer.publicKey))).equals(theirs)).toBe(true);
  });

  it("refuses bad peer keys before any ECDH, naming public_key", async () => {
    const { backend, level } = backends[i]!;
    const { key } = await newKey(backend, `ka-bad-${i}`, KeySpec.EC_P256, level);
    const good = spki(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey);
    const offCurve = Buffer.from(good);
    offCurve[offCurve.length - 1]! ^= 1;
    const identity = Buffer.from("3019301306072a8648ce3d020106082a8648ce3d030107030200" + "00", "hex");
    const compressed = Buffer.concat([
      Buffer.from("3039301306072a8648ce3d020106082a8648ce3d030107032200", "hex"),
      ECDH.convertKey(good.subarray(26), "prime256v1", undefined, undefined, "compressed") as Buffer,
    ]);
    const otherCurve = spki(generateKeyPairSync("ec", { namedCurve: "secp384r1" }).publicKey);
    const cases: [string, Uint8Array, RegExp][] = [
      ["off the curve", offCurve, /^public_key: is not a point on P-256$/],
      ["the identity", identity, /^public_key: must be the DER SubjectPublicKeyInfo of an uncompressed P-256 point/],
      ["compressed", compressed, /^public_key: must be the DER SubjectPublicKeyInfo of an uncompressed P-256 point/],
      ["on P-384", otherCurve, /^public_key: is a P-384 key; this key agrees on P-256 only$/],
      ["trailing bytes", Buffer.concat([good, Buffer.from([0])]), /^public_key: must be the DER SubjectPublicKeyInfo/],
      ["empty", Buffer.alloc(0), /^public_key: is required/],
      ["an RSA key", spki(generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey), /^public_key: must be the DER SubjectPublicKeyInfo/],
    ];
    for (const [what, bytes, message] of cases) {
      const err = await refusal(backend.deriveSharedSecret(key, bytes));
      expect({ what, code: err.status, message: err.message }).toEqual({ what, code: status.INVALID_ARGUMENT, message: expect.stringMatching(message) });
    }
  });

  it("refuses keys that cannot agree: secp256k1, RSA, AES", async () => {
    const { backend, level } = backends[i]!;
    const peer = spki(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey);
    const k1 = await newKey(backend, `ka-k1-${i}`, KeySpec.EC_P256K, ProtectionLevel.SOFTWARE);
    const aes = await newKey(backend, `ka-aes-${i}`, KeySpec.AES_256, level).catch(() => undefined);
    for (const key of [k1.key, ...(aes ? [aes.key] : [])]) {
      const err = await refusal(backend.deriveSharedSecret(key, peer));
      expect(err.status).toBe(status.INVALID_ARGUMENT);
      expect(err.message).toMatch(/^key\.key_spec: .*DeriveSharedSecret/);
    }
  });
});

describe("the worker's DeriveSharedSecret handler", () => {
  it("answers the secret and wipes it after the send", async () => {
    const { backend, level } = backends[0]!;
    const { key, publicKey } = await newKey(backend, "ka-handler", KeySpec.EC_P384, level);
    const peer = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    const reply = await deriveSharedSecret(backend.checked, create(hsm.DeriveSharedSecretRequestSchema, { key, publicKey: spki(peer.publicKey) }));
    expect(Buffer.from(reply.response.sharedSecret).equals(diffieHellman({ privateKey: peer.privateKey, publicKey }))).toBe(true);
    expect(reply.wipeAfterSend).toEqual([reply.response.sharedSecret]);
  });
});

describe("SoftHSM 2.6.1 and CKA_DERIVE (measured)", () => {
  // Straight PKCS#11 on the same token, as a PIN holder could.
  let lib: pkcs11js.PKCS11;
  let session: pkcs11js.Handle;
  const KWP = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD };
  const ecPrivate: pkcs11js.Template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_PRIVATE, value: true },
  ];

  beforeAll(() => {
    lib = new pkcs11js.PKCS11();
    lib.load(token.module);
    try {
      lib.C_Initialize();
    } catch (err) {
      // The backend above initialised the module in this process already.
      if (!/CKR_CRYPTOKI_ALREADY_INITIALIZED/.test(String(err))) throw err;
    }
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === token.label)!;
    session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    // The login is the token's, shared with the backend's sessions.
    try {
      lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    } catch (err) {
      if (!/CKR_USER_ALREADY_LOGGED_IN/.test(String(err))) throw err;
    }
  });

  afterAll(() => {
    lib.C_CloseSession(session); // the backend's close finalises the module
  });

  it("the HSM root refuses CKA_DERIVE=true at unwrap; CKA_DERIVE can be set afterwards, CKA_SENSITIVE and CKA_EXTRACTABLE cannot", () => {
    const root = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_WRAP, value: true },
      { type: pkcs11js.CKA_UNWRAP, value: true },
      { type: pkcs11js.CKA_UNWRAP_TEMPLATE, value: HSM_UNWRAP_TEMPLATE as unknown as Buffer },
    ]);
    const pair = lib.C_GenerateKeyPair(
      session,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      [{ type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }],
      [{ type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: true }],
    );
    const wrapped = lib.C_WrapKey(session, KWP, root, pair.privateKey, Buffer.alloc(512));
    const sensitive: pkcs11js.Template = [...ecPrivate, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false }];
    // 1. The root's template is enforced exactly: CKA_DERIVE=true (or CKA_DERIVE left out) is refused.
    expect(() => lib.C_UnwrapKey(session, KWP, root, wrapped, [...sensitive, { type: pkcs11js.CKA_DERIVE, value: true }])).toThrow(/CKR_TEMPLATE_INCONSISTENT/);
    expect(() => lib.C_UnwrapKey(session, KWP, root, wrapped, sensitive)).toThrow(/CKR_TEMPLATE_INCONSISTENT/);
    // 2. As the template says, the object cannot derive...
    const key = lib.C_UnwrapKey(session, KWP, root, wrapped, forcedHsmTemplate(sensitive));
    const point = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]);
    const ecdh = { mechanism: pkcs11js.CKM_ECDH1_DERIVE, parameter: { type: pkcs11js.CK_PARAMS_EC_DH, kdf: pkcs11js.CKD_NULL, publicData: point } };
    const secret: pkcs11js.Template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    ];
    expect(() => lib.C_DeriveKey(session, ecdh, key, secret)).toThrow(/CKR_KEY_FUNCTION_NOT_PERMITTED/);
    // 3. ...until CKA_DERIVE is set (PKCS#11 2.40 lists it as modifiable): the template binds only the start.
    lib.C_SetAttributeValue(session, key, [{ type: pkcs11js.CKA_DERIVE, value: true }]);
    expect(lib.C_GetAttributeValue(session, key, [{ type: pkcs11js.CKA_DERIVE }])[0]!.value).toEqual(Buffer.from([1]));
    // 4. What keeps the material in the HSM cannot be undone.
    expect(() => lib.C_SetAttributeValue(session, key, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }])).toThrow(/CKR_ATTRIBUTE_READ_ONLY/);
    expect(() => lib.C_SetAttributeValue(session, key, [{ type: pkcs11js.CKA_SENSITIVE, value: false }])).toThrow(/CKR_ATTRIBUTE_READ_ONLY/);
    // 5. SoftHSM itself refuses a point that is not on the curve (the worker checks first anyway).
    expect(() => lib.C_DeriveKey(session, ecdh, key, secret)).toThrow(/CKR_GENERAL_ERROR/);
    for (const h of [key, pair.privateKey, pair.publicKey, root]) lib.C_DestroyObject(session, h);
  });

  it("offers no derivation that copies a key's bytes out: only ECDH, DH and the *_ENCRYPT_DATA mechanisms derive", () => {
    const slot = lib.C_GetSessionInfo(session).slotID;
    const derive = lib.C_GetMechanismList(slot).filter((m) => (lib.C_GetMechanismInfo(slot, m).flags & pkcs11js.CKF_DERIVE) !== 0);
    const names = Object.fromEntries(Object.entries(pkcs11js).filter(([k]) => k.startsWith("CKM_")).map(([k, v]) => [v, k]));
    expect(derive.map((m) => names[m as number]).sort()).toEqual([
      "CKM_AES_CBC_ENCRYPT_DATA",
      "CKM_AES_ECB_ENCRYPT_DATA",
      "CKM_DES3_CBC_ENCRYPT_DATA",
      "CKM_DES3_ECB_ENCRYPT_DATA",
      "CKM_DES_CBC_ENCRYPT_DATA",
      "CKM_DES_ECB_ENCRYPT_DATA",
      "CKM_DH_PKCS_DERIVE",
      "CKM_ECDH1_DERIVE",
    ]);
  });
});
