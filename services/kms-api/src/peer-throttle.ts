// Failed authentications, throttled per peer BEFORE authenticating: a flood of forged tokens is refused
// with RESOURCE_EXHAUSTED (Throttling) once its peer has spent its budget, without a signature check.
//
// A peer is the client certificate's SHA-256 fingerprint when the connection showed a trusted one, else
// the client's address (without the port: a new connection must not be a new peer; an IPv6 address by its
// /64, the smallest block one host or site is usually given, so that one host cannot be 2^64 peers). Each peer has a token
// bucket (KMS_AUTH_FAILURES_PER_SECOND refill, KMS_AUTH_FAILURE_BURST size). Every authentication holds
// one of its peer's tokens while it runs and gives it back when it succeeds, so only failures spend the
// budget, and concurrent attempts cannot all start before the first failure is counted: at most the
// bucket's worth of verifications are ever in progress or failed per peer. Callers that authenticate
// never spend it; callers sharing an address with a flooder are refused with it (the price of deciding
// before knowing who calls; mutual TLS gives each client a peer of its own).
import { status } from "@grpc/grpc-js";
import { isIPv6 } from "node:net";
import type { PeerCertificate } from "node:tls";
import type { LimitsConfig } from "@kms/config";
import { ErrorCode, KmsError } from "@kms/errors";

/** Peers whose bucket is kept; beyond it, full (idle) buckets are forgotten first, then the oldest. */
const MAX_TRACKED_PEERS = 100_000;

interface Budget {
  tokens: number;
  /** Monotonic milliseconds of the last refill. */
  at: number;
}

/** The peer a call comes from, as the throttle and the refusal audit name it. */
export function peerOf(remote: string, certificate: PeerCertificate | undefined): string {
  if (certificate?.fingerprint256) return `cert:${certificate.fingerprint256}`;
  // grpc-js gives "address:port" (IPv6 without brackets), or "unknown".
  return peerOfAddress(remote.replace(/:\d+$/, ""));
}

/** An address (no port) as a peer: IPv4 as it is, IPv6 by its /64 (an IPv4-mapped one as its IPv4). */
export function peerOfAddress(address: string): string {
  const bare = address.replace(/%.*$/, ""); // a zone id names an interface, not a host
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return `ip:${mapped[1]}`;
  if (!isIPv6(bare) || bare === "::1") return `ip:${bare}`;
  return `ip:${hextets(bare).slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, without leading zeros ("::" expanded, a dotted tail as two). */
function hextets(address: string): string[] {
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  const plain = dotted
    ? address.slice(0, dotted.index) + [((+dotted[1]! << 8) | +dotted[2]!).toString(16), ((+dotted[3]! << 8) | +dotted[4]!).toString(16)].join(":")
    : address;
  const [head = "", tail] = plain.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill("0");
  return [...h, ...zeros, ...t].map((g) => parseInt(g, 16).toString(16));
}

export class PeerThrottle {
  private readonly peers = new Map<string, Budget>();

  constructor(
    private readonly limits: Pick<LimitsConfig, "authFailuresPerSecond" | "authFailureBurst">,
    /** Monotonic milliseconds; tests inject their own. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Runs `authenticate` for a call from `peer`, holding one of the peer's tokens meanwhile; refuses with
   * Throttling, without running it, when the peer has none left. An UNAUTHENTICATED failure keeps the
   * token (spends the budget); success or any other failure gives it back.
   */
  async authenticate<T>(peer: string, authenticate: () => Promise<T>): Promise<T> {
    const budget = this.refilled(peer);
    if (budget.tokens < 1) throw this.throttled();
    budget.tokens -= 1;
    let failed = false;
    try {
      return await authenticate();
    } catch (err) {
      failed = err instanceof KmsError && err.status === status.UNAUTHENTICATED;
      throw err;
    } finally {
      if (!failed) {
        const b = this.refilled(peer);
        b.tokens = Math.min(this.limits.authFailureBurst, b.tokens + 1);
      }
    }
  }

  /** Tokens `peer` has left (tests). */
  remaining(peer: string): number {
    return Math.floor(this.refilled(peer).tokens);
  }

  private refilled(peer: string): Budget {
    const now = this.now();
    let budget = this.peers.get(peer);
    if (budget === undefined) {
      if (this.peers.size >= MAX_TRACKED_PEERS) this.forgetIdle(now);
      budget = { tokens: this.limits.authFailureBurst, at: now };
      this.peers.set(peer, budget);
    } else {
      budget.tokens = Math.min(this.limits.authFailureBurst, budget.tokens + ((now - budget.at) / 1000) * this.limits.authFailuresPerSecond);
      budget.at = now;
    }
    return budget;
  }

  private throttled(): KmsError {
    return new KmsError(ErrorCode.Throttled, "too many failed authentications from this peer; retry later");
  }

  /** A full bucket carries nothing worth keeping; if every peer is in debt, drop the oldest entries. */
  private forgetIdle(now: number): void {
    for (const [peer, b] of this.peers) {
      if (b.tokens + ((now - b.at) / 1000) * this.limits.authFailuresPerSecond >= this.limits.authFailureBurst) this.peers.delete(peer);
    }
    for (const peer of this.peers.keys()) {
      if (this.peers.size < MAX_TRACKED_PEERS) break;
      this.peers.delete(peer);
    }
  }
}
