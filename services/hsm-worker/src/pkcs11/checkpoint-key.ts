// The audit checkpoint key on the HSM: an EC P-256 pair of token objects labelled KMS_ROOT_KEY_LABEL +
// "-audit-checkpoint". The private key is sensitive, not extractable and can only sign; it is found (or
// made, on the first start) once and looked up by label for each signature, so a re-initialised module
// (new handles) needs nothing special. Checkpoints are rare: one lookup per signature costs nothing.
import * as pkcs11js from "pkcs11js";
import { InternalError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { rawToDer } from "../asymmetric/ecdsa-signature";
import type { CheckpointSigner } from "../checkpoint-signer";
import { keyFamily } from "../key-spec";
import { bool, readAttributes } from "./attributes";
import { EC_PARAMS } from "./ec";
import { hsmPublicKey } from "./key-objects";
import { hsmCall, hsmCallAsync } from "./errors";
import type { SessionPool } from "./session-pool";

export const checkpointKeyLabel = (rootKeyLabel: string): string => `${rootKeyLabel}-audit-checkpoint`;

function findKeys(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string, cls: number): pkcs11js.Handle[] {
  hsmCall("C_FindObjectsInit(checkpoint key)", () =>
    lib.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: cls },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]),
  );
  try {
    return hsmCall("C_FindObjects(checkpoint key)", () => lib.C_FindObjects(session, 4));
  } finally {
    hsmCall("C_FindObjectsFinal(checkpoint key)", () => lib.C_FindObjectsFinal(session));
  }
}

/** The one private key labelled `label`; refuses one that could leave the HSM. */
function privateKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string): pkcs11js.Handle | undefined {
  const found = findKeys(lib, session, label, pkcs11js.CKO_PRIVATE_KEY);
  if (found.length > 1) throw new InternalError(`${found.length} private keys on the token are labelled ${JSON.stringify(label)}; keep exactly one`);
  const key = found[0];
  if (key === undefined) return undefined;
  const a = readAttributes(lib, session, key, [pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE, pkcs11js.CKA_EC_PARAMS], "checkpoint key attributes");
  if (!bool(a.get(pkcs11js.CKA_SENSITIVE)) || bool(a.get(pkcs11js.CKA_EXTRACTABLE)) || !a.get(pkcs11js.CKA_EC_PARAMS)?.equals(EC_PARAMS["P-256"])) {
    throw new InternalError(`checkpoint key ${JSON.stringify(label)} is unusable: it must be a sensitive, non-extractable P-256 key`);
  }
  return key;
}

async function generate(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string): Promise<void> {
  await hsmCallAsync("C_GenerateKeyPair(checkpoint key)", () =>
    lib.C_GenerateKeyPairAsync(
      session,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_EC_PARAMS, value: EC_PARAMS["P-256"] },
        { type: pkcs11js.CKA_VERIFY, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
      ],
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_SIGN, value: true },
        { type: pkcs11js.CKA_DECRYPT, value: false },
        { type: pkcs11js.CKA_UNWRAP, value: false },
        { type: pkcs11js.CKA_DERIVE, value: false },
        { type: pkcs11js.CKA_LABEL, value: label },
      ],
    ),
  );
}

export class Pkcs11CheckpointKey implements CheckpointSigner {
  private constructor(
    private readonly pool: SessionPool,
    private readonly label: string,
    readonly publicKey: Buffer,
  ) {}

  /** Finds the pair labelled `label`, making it on the first start. */
  static async open(pool: SessionPool, label: string): Promise<Pkcs11CheckpointKey> {
    const lib = pool.module.lib;
    const publicKey = await pool.run(async (s) => {
      if (privateKey(lib, s.handle, label) === undefined) await generate(lib, s.handle, label);
      if (privateKey(lib, s.handle, label) === undefined) throw new InternalError(`checkpoint key ${JSON.stringify(label)} missing after generation`);
      const publics = findKeys(lib, s.handle, label, pkcs11js.CKO_PUBLIC_KEY);
      if (publics.length !== 1) throw new InternalError(`${publics.length} public keys on the token are labelled ${JSON.stringify(label)}; keep exactly one`);
      return hsmPublicKey(lib, s.handle, publics[0]!, keyFamily(kmsResources.KeySpec.EC_P256, "key_spec"));
    });
    return new Pkcs11CheckpointKey(pool, label, publicKey);
  }

  signDigest(digest: Buffer): Promise<Buffer> {
    const lib = this.pool.module.lib;
    return this.pool.run(async (s) => {
      const key = privateKey(lib, s.handle, this.label);
      if (key === undefined) throw new InternalError(`checkpoint key ${JSON.stringify(this.label)} is gone from the token`);
      hsmCall("C_SignInit(checkpoint)", () => lib.C_SignInit(s.handle, { mechanism: pkcs11js.CKM_ECDSA }, key));
      const raw = await hsmCallAsync("C_Sign(checkpoint)", () => lib.C_SignAsync(s.handle, digest, Buffer.alloc(64)));
      return rawToDer(Buffer.from(raw));
    });
  }
}
