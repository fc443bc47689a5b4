// A fixed number of logged-in PKCS#11 sessions. SoftHSM (and most HSMs) allow one active operation per
// session, so each session serves one call at a time; callers beyond the pool size wait in FIFO order.
// A call that fails because its session (or the whole token) went away is retried once on a fresh one.
import * as pkcs11js from "pkcs11js";
import { hasCode, hsmCall, isSessionLoss, needsReinitialize, Pkcs11CallError } from "./errors";
import type { Pkcs11Module } from "./module";

export interface PooledSession {
  /** Unique for the life of the process; identifies the objects this session created. */
  readonly id: number;
  readonly handle: pkcs11js.Handle;
  /** Pool generation at open time: a session from an older generation is not reused. */
  readonly generation: number;
  /** Module epoch at open time: after C_Finalize the handle means nothing and is never passed to the module. */
  readonly epoch: number;
  /** Set when a call failed in a way that may leave an operation active: the session is replaced on release. */
  broken: boolean;
}

/** Every attempt lost its session: the HSM is unreachable for now. The edge turns it into UNAVAILABLE. */
export class HsmUnavailableError extends Error {
  override readonly name = "HsmUnavailableError";
  constructor(options?: { cause?: unknown }) {
    super("HSM sessions were lost twice in a row", options);
  }
}

/** A place in the pool; its session is opened lazily and replaced when it goes stale. */
interface Seat {
  session: PooledSession | undefined;
}

export interface SessionPoolOptions {
  tokenLabel: string;
  /** Never logged. */
  pin: string;
  size: number;
}

let nextSessionId = 1;

export class SessionPool {
  /** Bumped when a session loss is detected: every session opened before is replaced. */
  generation = 0;
  /** Sessions opened so far. SoftHSM forgets object handles when a slot's last session closes, so a
   * change here tells users to look token objects up again. */
  opened = 0;
  /** Called when sessions were lost: objects they created are gone, so handle caches must drop them. */
  onSessionsLost: () => void = () => {};
  /** Called when one session is closed or forgotten, with its id. */
  onSessionClosed: (sessionId: number) => void = () => {};

  private slot: pkcs11js.Handle;
  private readonly idle: Seat[] = [];
  private readonly waiters: Array<(seat: Seat) => void> = [];
  private busy = 0;
  private readonly drained: Array<() => void> = [];
  private reinitializing: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly module: Pkcs11Module,
    private readonly options: SessionPoolOptions,
  ) {
    this.slot = module.findSlot(options.tokenLabel);
    for (let i = 0; i < options.size; i++) this.idle.push({ session: undefined });
    // Open one session now so that a wrong PIN or a missing token stops start-up.
    const first = this.idle[0];
    if (first !== undefined) first.session = this.openSession();
  }

  /** Sessions running an operation now (for metrics). */
  get inUse(): number {
    return this.busy;
  }

  /** Calls waiting for a free session now (for metrics). */
  get waiting(): number {
    return this.waiters.length;
  }

  /** The PKCS#11 slot currently holding the token (it changes after re-initialisation). */
  get slotId(): pkcs11js.Handle {
    return this.slot;
  }

  /**
   * Runs `operation` with a session of its own. On session loss the pool heals (new session; new module
   * state when the token went away) and runs it once more; a second loss gives HsmUnavailableError.
   */
  async run<T>(operation: (session: PooledSession) => Promise<T>): Promise<T> {
    let lastLoss: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      const seat = await this.acquire();
      let session: PooledSession | undefined;
      let lost = false;
      try {
        session = this.ready(seat);
        return await operation(session);
      } catch (err) {
        if (!isSessionLoss(err)) {
          // An unexpected PKCS#11 failure (CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL...) may leave the
          // operation active, and the next C_*Init would fail with CKR_OPERATION_ACTIVE.
          if (err instanceof Pkcs11CallError && session !== undefined) session.broken = true;
          throw err;
        }
        lost = true;
        lastLoss = err;
        // The lost handle may be reused by the module: forget it rather than close it.
        this.forget(seat);
      } finally {
        this.release(seat);
      }
      if (lost) {
        try {
          await this.heal(lastLoss, session?.generation ?? this.generation);
        } catch (err) {
          if (!isSessionLoss(err)) throw err;
          lastLoss = err;
        }
      }
    }
    throw new HsmUnavailableError({ cause: lastLoss });
  }

  /** Closes every session (shutdown). Waiting callers are not served afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.busy > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    for (const seat of this.idle) this.closeSession(seat);
  }

  private async acquire(): Promise<Seat> {
    while (this.reinitializing !== undefined) await this.reinitializing.catch(() => undefined);
    if (this.closed) throw new Pkcs11CallError("session pool", pkcs11js.CKR_SESSION_CLOSED);
    const seat = this.idle.shift();
    if (seat !== undefined) {
      this.busy++;
      return seat;
    }
    // release() hands its seat straight to the oldest waiter, so `busy` is unchanged.
    return new Promise<Seat>((resolve) => this.waiters.push(resolve));
  }

  private release(seat: Seat): void {
    const session = seat.session;
    if (session !== undefined && (session.broken || this.isStale(session))) this.closeSession(seat);
    const next = this.reinitializing === undefined && !this.closed ? this.waiters.shift() : undefined;
    if (next !== undefined) {
      next(seat);
      return;
    }
    this.busy--;
    this.idle.push(seat);
    if (this.busy === 0) for (const resolve of this.drained.splice(0)) resolve();
  }

  /** The seat's session, opened (and logged in) if it has none or had a stale one. */
  private ready(seat: Seat): PooledSession {
    if (seat.session !== undefined && this.isStale(seat.session)) this.closeSession(seat);
    if (seat.session === undefined) seat.session = this.openSession();
    return seat.session;
  }

  private isStale(session: PooledSession): boolean {
    return session.generation !== this.generation || session.epoch !== this.module.epoch;
  }

  private openSession(): PooledSession {
    const lib = this.module.lib;
    const handle = hsmCall("C_OpenSession", () =>
      lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION),
    );
    try {
      // Login state belongs to the application, not the session: the first session logs in for all.
      hsmCall("C_Login(user)", () => lib.C_Login(handle, pkcs11js.CKU_USER, this.options.pin));
    } catch (err) {
      if (!hasCode(err, pkcs11js.CKR_USER_ALREADY_LOGGED_IN)) {
        try {
          lib.C_CloseSession(handle);
        } catch {
          // best effort: the login failure is the error to report
        }
        // SoftHSM answers a login on a token replaced or removed under it (its files re-initialised)
        // with CKR_GENERAL_ERROR until the module is initialised again: treat it as a lost device.
        if (hasCode(err, pkcs11js.CKR_GENERAL_ERROR)) {
          throw new Pkcs11CallError("C_Login(user) failed with CKR_GENERAL_ERROR, token lost", pkcs11js.CKR_DEVICE_ERROR, { cause: err });
        }
        throw err;
      }
    }
    this.opened++;
    return { id: nextSessionId++, handle, generation: this.generation, epoch: this.module.epoch, broken: false };
  }

  /** Closes the seat's session best-effort (its session objects die with it). */
  private closeSession(seat: Seat): void {
    const session = seat.session;
    if (session === undefined) return;
    if (session.epoch === this.module.epoch) {
      try {
        this.module.lib.C_CloseSession(session.handle);
      } catch {
        // Already gone (CKR_SESSION_HANDLE_INVALID): nothing left to free.
      }
    }
    this.forget(seat);
  }

  private forget(seat: Seat): void {
    const session = seat.session;
    if (session === undefined) return;
    seat.session = undefined;
    this.onSessionClosed(session.id);
  }

  /** After a loss seen by a session of generation `seenGeneration`: replace sessions, re-initialise if needed. */
  private async heal(err: unknown, seenGeneration: number): Promise<void> {
    // Another caller already healed after this session was handed out.
    if (seenGeneration !== this.generation) return;
    this.generation++;
    this.onSessionsLost();
    if (needsReinitialize(err)) {
      await this.reinitialize();
      return;
    }
    // Close idle sessions now (their objects are dropped from caches); busy ones close on release.
    for (const seat of this.idle) this.closeSession(seat);
  }

  private reinitialize(): Promise<void> {
    if (this.reinitializing !== undefined) return this.reinitializing;
    this.reinitializing = (async () => {
      // C_Finalize under a running operation is undefined behaviour: wait until no session is in use.
      while (this.busy > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
      this.module.reinitialize();
      for (const seat of this.idle) this.forget(seat);
      this.slot = this.module.findSlot(this.options.tokenLabel);
    })().finally(() => {
      this.reinitializing = undefined;
      this.dispatchWaiters();
    });
    return this.reinitializing;
  }

  private dispatchWaiters(): void {
    while (this.waiters.length > 0 && this.idle.length > 0) {
      const seat = this.idle.shift() as Seat;
      const next = this.waiters.shift() as (seat: Seat) => void;
      this.busy++;
      next(seat);
    }
  }
}
