// The objects stored on the worker's token (class, label, id; never values), for the reconciler (kms-api's
// reconcile.ts, through the ListTokenObjects RPC): the root keys (root-key.ts) and the checkpoint key pair
// should be the only ones, since the worker keeps generated and unwrapped keys as session objects, which
// die with their sessions.
import * as pkcs11js from "pkcs11js";
import { readAttributes, ulong } from "./attributes";
import { hsmCall } from "./errors";
import type { SessionPool } from "./session-pool";
import { withSession } from "./with-session";

export interface TokenObject {
  class: string;
  label: string;
  /** Hex of CKA_ID. */
  id: string;
}

export interface TokenListing {
  tokenLabel: string;
  rootKeyLabel: string;
  checkpointKeyLabel: string;
  objects: TokenObject[];
}

/** Lists the token's objects; the software root has no token and no inventory. */
export interface TokenInventory {
  list(): Promise<TokenListing>;
}

const CLASS_NAMES: Record<number, string> = {
  [pkcs11js.CKO_SECRET_KEY]: "secret key",
  [pkcs11js.CKO_PRIVATE_KEY]: "private key",
  [pkcs11js.CKO_PUBLIC_KEY]: "public key",
  [pkcs11js.CKO_CERTIFICATE]: "certificate",
  [pkcs11js.CKO_DATA]: "data",
};

export function listTokenObjects(lib: pkcs11js.PKCS11, session: pkcs11js.Handle): TokenObject[] {
  hsmCall("C_FindObjectsInit(token objects)", () => lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_TOKEN, value: true }]));
  const handles: pkcs11js.Handle[] = [];
  try {
    for (;;) {
      const batch = hsmCall("C_FindObjects(token objects)", () => lib.C_FindObjects(session, 256));
      if (batch.length === 0) break;
      handles.push(...batch);
    }
  } finally {
    hsmCall("C_FindObjectsFinal(token objects)", () => lib.C_FindObjectsFinal(session));
  }
  return handles.map((handle) => {
    const a = readAttributes(lib, session, handle, [pkcs11js.CKA_CLASS, pkcs11js.CKA_LABEL, pkcs11js.CKA_ID], "token object");
    const cls = ulong(a.get(pkcs11js.CKA_CLASS));
    return { class: CLASS_NAMES[cls] ?? `0x${cls.toString(16)}`, label: a.get(pkcs11js.CKA_LABEL)?.toString("utf8") ?? "", id: a.get(pkcs11js.CKA_ID)?.toString("hex") ?? "" };
  });
}

/** The inventory of the token the pool is logged in to. */
export class Pkcs11TokenInventory implements TokenInventory {
  constructor(
    private readonly pool: SessionPool,
    private readonly labels: Omit<TokenListing, "objects">,
  ) {}

  list(): Promise<TokenListing> {
    return withSession(this.pool, async (session) => ({ ...this.labels, objects: listTokenObjects(this.pool.module.lib, session.handle) }));
  }
}
