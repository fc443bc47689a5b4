// The limit for AsymmetricSign: SoftHSM's own signing rate through pkcs11js, with no service in
// between, measured in this process (run it as its own process). Same module, same async calls, as
// many sessions as the worker's pool.
//   node raw-softhsm.js '{"module","confPath","pinFile","label","algorithm","sessions","seconds","warmupSeconds"}'
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import * as pkcs11js from "pkcs11js";

export interface RawArgs {
  module: string;
  confPath: string;
  pinFile: string;
  label: string;
  algorithm: "ECDSA_P256" | "RSA_2048_PSS";
  sessions: number;
  seconds: number;
  warmupSeconds: number;
}

function findSlot(p11: pkcs11js.PKCS11, label: string): pkcs11js.Handle {
  for (const slot of p11.C_GetSlotList(true)) {
    if (p11.C_GetTokenInfo(slot).label.replace(/[\0 ]+$/, "") === label) return slot;
  }
  throw new Error(`no token labelled ${label}`);
}

function generate(p11: pkcs11js.PKCS11, session: pkcs11js.Handle, algorithm: RawArgs["algorithm"]) {
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

async function main(args: RawArgs): Promise<void> {
  process.env.SOFTHSM2_CONF = args.confPath;
  const p11 = new pkcs11js.PKCS11();
  p11.load(args.module);
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const slot = findSlot(p11, args.label);
    const sessions = Array.from({ length: args.sessions }, () => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION));
    p11.C_Login(sessions[0]!, pkcs11js.CKU_USER, readFileSync(args.pinFile, "utf8").trim());
    const { privateKey } = generate(p11, sessions[0]!, args.algorithm);
    const mechanism: pkcs11js.Mechanism =
      args.algorithm === "ECDSA_P256"
        ? { mechanism: pkcs11js.CKM_ECDSA }
        : {
            mechanism: pkcs11js.CKM_RSA_PKCS_PSS,
            parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, saltLen: 32 } as pkcs11js.RsaPSS,
          };
    const digest = randomBytes(32);
    const start = Date.now();
    const measureFrom = start + args.warmupSeconds * 1000;
    const end = measureFrom + args.seconds * 1000;
    let counted = 0;
    await Promise.all(
      sessions.map(async (session) => {
        const out = Buffer.alloc(512);
        while (Date.now() < end) {
          p11.C_SignInit(session, mechanism, privateKey);
          await p11.C_SignAsync(session, digest, out);
          if (Date.now() >= measureFrom) counted++;
        }
      }),
    );
    process.stdout.write(JSON.stringify({ opsPerSec: counted / args.seconds }) + "\n");
  } finally {
    p11.C_Finalize();
  }
}

main(JSON.parse(process.argv[2] ?? "{}") as RawArgs).catch((err: unknown) => {
  process.stderr.write(`raw-softhsm: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
