// Every PKCS#11 call goes through hsmCall/hsmCallAsync, which attaches a context message ("what were we
// doing") to the CKR_* code. Pkcs11CallError is the one error type PKCS#11 failures take inside the worker;
// the session pool and the backend decide what it means for the caller (retry, invalid ciphertext, internal).
import * as pkcs11js from "pkcs11js";

/** CKR_* name of every code pkcs11js knows, for messages ("CKR_SESSION_HANDLE_INVALID"). */
const CKR_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(pkcs11js)) {
  if (name.startsWith("CKR_") && typeof value === "number" && !CKR_NAMES.has(value)) CKR_NAMES.set(value, name);
}

export function ckrName(code: number): string {
  return CKR_NAMES.get(code) ?? `CKR_0x${code.toString(16).toUpperCase()}`;
}

/** A failed PKCS#11 call: its context and return value. Carries no key material, PIN or plaintext. */
export class Pkcs11CallError extends Error {
  override readonly name = "Pkcs11CallError";
  constructor(
    readonly context: string,
    /** The CKR_* value, or undefined when pkcs11js failed before reaching the module. */
    readonly code: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(`${context}: ${code === undefined ? "native error" : ckrName(code)}`, options);
  }
}

function wrap(context: string, err: unknown): Pkcs11CallError {
  if (err instanceof Pkcs11CallError) return err;
  const code = err instanceof pkcs11js.Pkcs11Error ? err.code : undefined;
  return new Pkcs11CallError(context, code, { cause: err });
}

/** Runs a synchronous PKCS#11 call; a failure becomes a Pkcs11CallError carrying `context`. */
export function hsmCall<T>(context: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw wrap(context, err);
  }
}

/**
 * How the short calls of the hot path (AES-GCM, HMAC, ECDSA and EdDSA signing) reach the module:
 * "inline" on the worker's own thread, or through libuv's thread pool. Inline costs the worker a third
 * less CPU per call and a quarter of the latency with a module in the same host (SoftHSM2, a PCIe card:
 * tens of microseconds a call), but a network HSM would stall every other call for a whole round trip.
 * Slow calls (RSA, key generation, wrapping) always use the thread pool.
 */
export type CallMode = "inline" | "thread-pool";

/** Runs `sync` on this thread or `async` on the thread pool; either way a failure is a rejected Pkcs11CallError. */
export async function hsmShortCall<T>(mode: CallMode, context: string, sync: () => T, async: () => Promise<T>): Promise<T> {
  return mode === "inline" ? hsmCall(context, sync) : hsmCallAsync(context, async);
}

/** Runs an asynchronous (libuv pool) PKCS#11 call; a failure becomes a Pkcs11CallError carrying `context`. */
export async function hsmCallAsync<T>(context: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw wrap(context, err);
  }
}

export function hasCode(err: unknown, ...codes: number[]): boolean {
  return err instanceof Pkcs11CallError && err.code !== undefined && codes.includes(err.code);
}

/**
 * The session is gone but the module and token are fine: open a new session and log in again. The
 * root key is the only wrapping key there is, so its handle turning invalid means the login state was
 * lost (C_Logout hides private objects) or the token changed: a new session looks it up again.
 */
const SESSION_LOST = [
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_WRAPPING_KEY_HANDLE_INVALID,
  pkcs11js.CKR_UNWRAPPING_KEY_HANDLE_INVALID,
];

/** The token or the library went away: finalize and initialize the module, find the token again. */
const MODULE_LOST = [
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_TOKEN_NOT_RECOGNIZED,
  pkcs11js.CKR_SLOT_ID_INVALID,
];

/** True when the error means the session (or the whole module) was lost, so a retry on a new one may work. */
export function isSessionLoss(err: unknown): boolean {
  return hasCode(err, ...SESSION_LOST, ...MODULE_LOST);
}

export function needsReinitialize(err: unknown): boolean {
  return hasCode(err, ...MODULE_LOST);
}
