// The audit rows of refused calls (UNAUTHENTICATED, and RESOURCE_EXHAUSTED Throttling), aggregated so
// that a flood of them cannot grow the audit table by one row per call.
//
// Refusals are tallied per (principal, or the peer when there is none; operation; result; error code) and
// per window (KMS_AUDIT_REFUSAL_WINDOW_MS). The first refusal of a tally in a window gets its own row, as
// any call does (its request id, durable before the answer), so a single failure stays visible at once;
// the others are answered at once and counted, and when the window ends (and at shutdown) each tally that
// counted any appends one summary row through the same chained audit writer. Both kinds carry the peer in
// the row's encryption context (refused calls have none of their own: they are refused before the request
// is parsed), a summary also the count and the first and last time:
//   {"kms:peer": "ip:10.0.0.7", "kms:refusals": "4711", "kms:first": "<ISO time>", "kms:last": "<ISO time>"}
// A summary row's time is its last refusal's and its request id that call's. So the refusals a window saw
// are the first rows (1 each) plus the summaries' kms:refusals. At most MAX_TALLIES tallies are open per
// window; refusals that would open another are counted in one overflow tally per reason, with peer
// "(others)": a flood from many peers costs at most 2 × (MAX_TALLIES + 1) rows per window.
import type { AuditEvent } from "@kms/db";
import { describeError } from "@kms/telemetry";
import type { Logger } from "@kms/telemetry";

const MAX_TALLIES = 1000;
export const OTHER_PEERS = "(others)";

export interface Refusal {
  time: Date;
  requestId: string;
  /** "" when the caller was not (yet) authenticated. */
  principal: string;
  peer: string;
  operation: string;
  resultCode: string;
  errorCode: string;
}

interface Tally {
  /** The refusal that opened the tally (it got its own row): its principal, peer, operation, reason. */
  first: Refusal;
  /** Refusals after that one, the time of the earliest and the latest of them. */
  counted: number;
  firstCounted: Date | undefined;
  last: Refusal | undefined;
}

interface AuditAppender {
  append(event: AuditEvent): Promise<void>;
}

export class RefusalAudit {
  private tallies = new Map<string, Tally>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly audit: AuditAppender,
    private readonly windowMs: number,
    private readonly log: Logger,
  ) {}

  /** Ends a window every windowMs from now on. */
  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.windowMs);
    this.timer.unref();
  }

  /** Stops the windows and writes what the current one counted (shutdown). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /**
   * Audits one refused call. Resolves when its row is durable (the first of its tally in this window),
   * or at once (counted for the window's summary row). Rejects only if its own row cannot be written.
   */
  record(refusal: Refusal): Promise<void> {
    let key = tallyKey(refusal);
    if (!this.tallies.has(key) && this.tallies.size >= MAX_TALLIES) {
      // Too many tallies this window: count it with every other newcomer of its reason.
      refusal = { ...refusal, principal: "", peer: OTHER_PEERS, operation: "" };
      key = tallyKey(refusal);
    }
    const tally = this.tallies.get(key);
    if (tally !== undefined) {
      tally.counted++;
      tally.firstCounted ??= refusal.time;
      tally.last = refusal;
      return Promise.resolve();
    }
    this.tallies.set(key, { first: refusal, counted: 0, firstCounted: undefined, last: undefined });
    return this.audit.append(row(refusal, { "kms:peer": refusal.peer }));
  }

  /** Ends the window: one summary row per tally that counted refusals after its first. */
  async flush(): Promise<void> {
    const ended = [...this.tallies.values()];
    this.tallies = new Map();
    await Promise.all(
      ended.map(async (t) => {
        if (t.last === undefined || t.firstCounted === undefined) return;
        const context = {
          "kms:peer": t.first.peer,
          "kms:refusals": String(t.counted),
          "kms:first": t.firstCounted.toISOString(),
          "kms:last": t.last.time.toISOString(),
        };
        try {
          await this.audit.append(row({ ...t.last, principal: t.first.principal, operation: t.first.operation }, context));
        } catch (err) {
          // Not lost: the next window's summary carries them (the first row of that window is written anyway).
          this.log.error("refusal summary not written; kept for the next window", { refusals: t.counted, ...describeError(err) });
          this.keep(t);
        }
      }),
    );
  }

  /** Puts an unwritten summary back into the current window. */
  private keep(t: Tally): void {
    const key = tallyKey(t.first);
    const now = this.tallies.get(key);
    if (now === undefined) {
      this.tallies.set(key, t);
      return;
    }
    now.counted += t.counted;
    now.firstCounted = t.firstCounted;
    now.last ??= t.last;
  }
}

/** An authenticated caller's refusals are tallied by principal, an anonymous one's by peer. */
function tallyKey(r: Refusal): string {
  return JSON.stringify([r.principal, r.principal === "" ? r.peer : "", r.operation, r.resultCode, r.errorCode]);
}

function row(r: Refusal, encryptionContext: Record<string, string>): AuditEvent {
  return {
    time: r.time,
    requestId: r.requestId,
    principal: r.principal,
    operation: r.operation,
    keyId: "",
    keyVersionId: "",
    encryptionContext,
    resultCode: r.resultCode,
    errorCode: r.errorCode,
  };
}
