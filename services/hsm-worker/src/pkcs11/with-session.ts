// Runs work on a pooled session, with PKCS#11 failures turned into the worker's error types: a lost HSM is
// UNAVAILABLE (retry is safe), any other module failure is internal; KmsErrors pass through.
import type * as pkcs11js from "pkcs11js";
import { InternalError, KmsError, unavailable } from "@kms/errors";
import { Pkcs11CallError } from "./errors";
import { HsmUnavailableError } from "./session-pool";
import type { PooledSession, SessionPool } from "./session-pool";

export async function withSession<T>(pool: SessionPool, operation: (session: PooledSession) => Promise<T>): Promise<T> {
  try {
    return await pool.run(operation);
  } catch (err) {
    if (err instanceof KmsError || err instanceof InternalError) throw err;
    if (err instanceof HsmUnavailableError) throw Object.assign(unavailable("HSM"), { cause: err });
    if (err instanceof Pkcs11CallError) throw new InternalError(err.message, { cause: err });
    throw new InternalError("HSM backend failure", { cause: err });
  }
}

/** Best-effort C_DestroyObject: a session object we fail to destroy still dies with its session. */
export function destroyObject(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, handle: pkcs11js.Handle): void {
  try {
    lib.C_DestroyObject(session, handle);
  } catch {
    // ignored on purpose (see above)
  }
}
