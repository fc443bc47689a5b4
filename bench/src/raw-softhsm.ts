// The limits for AsymmetricSign and the batch rows: SoftHSM's own rate through pkcs11js, with no service
// in between, measured in this process (run it as its own process). Same module, as many sessions as
// the worker's pool. Signing uses async calls (libuv's pool), as the bench's worker does for RSA; AES-GCM
// is called the way the worker calls it (KMS_PKCS11_CALL_MODE: inline by default in the bench, one
// synchronous call after another on this thread; thread-pool: async calls, one loop per session), with
// a fresh 12-byte IV from randomBytes and 256 bytes of plaintext, as an Encrypt of the bench carries.
//   node raw-softhsm.js '{"module","confPath","pinFile","label","algorithm","sessions","seconds","warmupSeconds","callMode"}'
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import * as pkcs11js from "pkcs11js";

export interface RawArgs {
  module: string;
  confPath: string;
  pinFile: string;
  label: string;
  algorithm: "ECDSA_P256" | "RSA_2048_PSS" | "AES_GCM_ENCRYPT" | "AES_GCM_DECRYPT";
  sessions: number;
  seconds: number;
  warmupSeconds: number;
  /** AES-GCM only: the worker's KMS_PKCS11_CALL_MODE. */
  callMode?: "inline" | "thread-pool";
}

type SignAlgorithm = "ECDSA_P256" | "RSA_2048_PSS";

function findSlot(p11: pkcs11js.PKCS11, label: string): pkcs11js.Handle {
  for (const slot of p11.C_GetSlotList(true)) {
    if (p11.C_GetTokenInfo(slot).label.replace(/[\0 ]+$/, "") === label) return slot;
  }
  throw new Error(`no token labelled ${label}`);
}

function generate(p11: pkcs11js.PKCS11, session: pkcs11js.Handle, algorithm: SignAlgorithm) {
  const common = [{ type: pkcs11js.CKA_TOKEN, value: false }];
  if (algorithm === "ECDSA_P256") {
    return p11.C_GenerateKeyPair(
      session,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      [...common, { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }, { type: pkcs11js.CKA_VERIFY, value: true }],
      [...common, { type: pkcs11js.CKA_SIGN, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true }],
    );
  }
  return p11.C_GenerateKeyPair(
    session,
    { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
    [...common, { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: pkcs11js.CKA_VERIFY, value: true }],
    [...common, { type: pkcs11js.CKA_SIGN, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true }],
  );
}

/** A measurement loop: runs while more(), counts the operations that end while inWindow() (after the warm-up). */
type Loop = (inWindow: () => boolean, more: () => boolean) => Promise<number>;

async function main(args: RawArgs): Promise<void> {
  process.env.SOFTHSM2_CONF = args.confPath;
  const p11 = new pkcs11js.PKCS11();
  p11.load(args.module);
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const slot = findSlot(p11, args.label);
    const sessions = Array.from({ length: args.sessions }, () => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION));
    p11.C_Login(sessions[0]!, pkcs11js.CKU_USER, readFileSync(args.pinFile, "utf8").trim());
    const loop = args.algorithm === "AES_GCM_ENCRYPT" || args.algorithm === "AES_GCM_DECRYPT" ? aesLoop(p11, sessions, args) : signLoop(p11, sessions, args.algorithm);
    const start = Date.now();
    const measureFrom = start + args.warmupSeconds * 1000;
    const end = measureFrom + args.seconds * 1000;
    const counted = await loop(() => Date.now() >= measureFrom, () => Date.now() < end);
    process.stdout.write(JSON.stringify({ opsPerSec: counted / args.seconds }) + "\n");
  } finally {
    p11.C_Finalize();
  }
}

function signLoop(p11: pkcs11js.PKCS11, sessions: pkcs11js.Handle[], algorithm: SignAlgorithm): Loop {
  const { privateKey } = generate(p11, sessions[0]!, algorithm);
  const mechanism: pkcs11js.Mechanism =
    algorithm === "ECDSA_P256"
      ? { mechanism: pkcs11js.CKM_ECDSA }
      : {
          mechanism: pkcs11js.CKM_RSA_PKCS_PSS,
          parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, saltLen: 32 } as pkcs11js.RsaPSS,
        };
  const digest = randomBytes(32);
  return async (inWindow, more) => {
    let counted = 0;
    await Promise.all(
      sessions.map(async (session) => {
        const out = Buffer.alloc(512);
        while (more()) {
          p11.C_SignInit(session, mechanism, privateKey);
          await p11.C_SignAsync(session, digest, out);
          if (inWindow()) counted++;
        }
      }),
    );
    return counted;
  };
}

function aesLoop(p11: pkcs11js.PKCS11, sessions: pkcs11js.Handle[], args: RawArgs): Loop {
  const key = p11.C_GenerateKey(sessions[0]!, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
  ]);
  const aad = randomBytes(48); // about what a key version id and an encryption context make
  const gcm = (iv: Buffer): pkcs11js.Mechanism => ({
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_AES_GCM, iv, aad, ivBits: 96, tagBits: 128 } as pkcs11js.AesGCM,
  });
  const plaintext = randomBytes(256);
  const encrypting = args.algorithm === "AES_GCM_ENCRYPT";
  const sealedIv = randomBytes(12);
  p11.C_EncryptInit(sessions[0]!, gcm(sealedIv), key);
  const sealed = Buffer.from(p11.C_Encrypt(sessions[0]!, plaintext, Buffer.alloc(plaintext.length + 16)));
  // One operation, as the worker does it: Init with the IV (fresh for encryption), then the one-shot call.
  const once = (session: pkcs11js.Handle, out: Buffer): Buffer | Promise<Buffer> => {
    if (encrypting) {
      p11.C_EncryptInit(session, gcm(randomBytes(12)), key);
      return args.callMode === "thread-pool" ? p11.C_EncryptAsync(session, plaintext, out) : p11.C_Encrypt(session, plaintext, out);
    }
    p11.C_DecryptInit(session, gcm(sealedIv), key);
    return args.callMode === "thread-pool" ? p11.C_DecryptAsync(session, sealed, out) : p11.C_Decrypt(session, sealed, out);
  };
  return async (inWindow, more) => {
    let counted = 0;
    if (args.callMode === "thread-pool") {
      await Promise.all(
        sessions.map(async (session) => {
          const out = Buffer.alloc(plaintext.length + 16);
          while (more()) {
            await once(session, out);
            if (inWindow()) counted++;
          }
        }),
      );
      return counted;
    }
    // Inline: the sessions in turn, on this thread, as the worker's inline calls run.
    const out = Buffer.alloc(plaintext.length + 16);
    for (let i = 0; more(); i++) {
      once(sessions[i % sessions.length]!, out);
      if (inWindow()) counted++;
    }
    return counted;
  };
}

main(JSON.parse(process.argv[2] ?? "{}") as RawArgs).catch((err: unknown) => {
  process.stderr.write(`raw-softhsm: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
