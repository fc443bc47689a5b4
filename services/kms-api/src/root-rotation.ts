// Root key rotation (`kms admin rotate-root`, the RotateRootKey RPC; docs/operations.md, "Root rotation"),
// driven from the database so that a run stopped anywhere (the CLI killed, kms-api killed mid-step)
// resumes where it was: each call does one bounded step of the unfinished rotation row.
//   1. switch: the worker makes a new root set current on the token and marks the old one retiring
//      (idempotent); every replica is told (NOTIFY roots:) to have its worker read the sets again;
//   2. re-wrap: versions under the old roots in id order, a batch per call, through the worker's RewrapKeys
//      (nothing in the clear leaves it); each re-wrapped blob replaces the stored one by compare-and-set on
//      (version id, old root id, old blob), with one audit row per version, committed with the batch's
//      progress. A version changed meanwhile keeps its blob (both work) and the pass is run again;
//   3. retire: no earlier than KMS_ROOT_RETIRE_DELAY_MS after the last re-wrap (replicas' metadata caches
//      and in-flight calls may hold old blobs until then), each old root that no stored version names,
//      checked right before, is destroyed on the token. HSM-level format 2 versions cannot move (their
//      material is non-extractable): their root set stays, the rotation ends RETAINING with the count and
//      the reason, and a later run destroys the set once no version names it.
// A worker started with a source root file (KMS_SOURCE_ROOT_KEY_FILE: the software root of a deployment
// that ran without an HSM) makes the rotation a move instead: its old roots are the file's two ids, its new
// root is the token's current set (nothing to switch), and "retiring" the file is only forgetting it: the
// worker cannot destroy a file, the operator deletes it.
import { randomUUID } from "node:crypto";
import { ROTATION_STATE } from "@kms/db";
import type { RootRotationRecord } from "@kms/db";
import { ErrorCode, invalidArgument, KmsError } from "@kms/errors";
import { hsm } from "@kms/proto/internal";
import type { CallContext, Services } from "./context";
import { faultPoint } from "./fault-injection";

export const DEFAULT_BATCH = 50;
/** The worker's RewrapKeys limit. */
export const MAX_BATCH = 100;

export interface RotationStep extends RootRotationRecord {
  remainingVersions: number;
  /** The source root file's id when this rotation moves keys off one, else "". */
  sourceRootKeyId: string;
}

export async function rotateRootStep(s: Services, ctx: CallContext, rotationId: string, batchSize: number): Promise<RotationStep> {
  let r: RootRotationRecord | undefined;
  if (rotationId !== "") {
    r = await s.rotations.get(rotationId);
    if (r === undefined) throw invalidArgument("rotation_id", "names no root rotation");
  } else {
    r = (await s.rotations.unfinished()) ?? (await start(s, ctx));
  }
  if (r.state === ROTATION_STATE.REWRAPPING && r.newRootKeyId === "") r = await switchRoots(s, ctx, r);
  else if (r.state === ROTATION_STATE.REWRAPPING) r = await rewrapBatch(s, ctx, r, batchSize);
  else if (r.state === ROTATION_STATE.RETIRING) r = await retire(s, ctx, r);
  const source = (await s.worker.getStatus(ctx.deadline)).sourceRootKeyIds.includes(r.oldRootKeyId) ? r.oldRootKeyId : "";
  return { ...r, remainingVersions: await remaining(s, r), sourceRootKeyId: source };
}

/** A new rotation of the worker's current root; earlier rotations' kept root sets are retired first if nothing names them now. */
async function start(s: Services, ctx: CallContext): Promise<RootRotationRecord> {
  for (const kept of await s.rotations.retaining()) await retireUnused(s, ctx, kept, ROTATION_STATE.RETAINING);
  const status = await s.worker.refreshStatus(ctx.deadline);
  if (status.backend !== hsm.Backend.PKCS11) {
    throw new KmsError(ErrorCode.HsmUnsupported, "root rotation needs the worker on a PKCS#11 token (this one uses the software root key file)");
  }
  if (status.rootKeyId === "") throw new KmsError(ErrorCode.RootKeyMismatch, "the worker holds no root key: nothing to rotate");
  const [sourceId, sourceLegacyId] = status.sourceRootKeyIds;
  const started = await s.rotations.start({
    rotationId: randomUUID(),
    startedBy: ctx.principal,
    startTime: s.clock(),
    // A source root file: the move off it (its format 2 and format 1 ids) instead of a rotation of the token's set.
    oldRootKeyId: sourceId ?? status.rootKeyId,
    legacyRootKeyId: sourceId === undefined ? status.legacyRootKeyId : (sourceLegacyId ?? ""),
  });
  // Another admin started one at the same moment: continue theirs.
  const r = started ?? (await s.rotations.unfinished());
  if (r === undefined) throw new KmsError(ErrorCode.Unavailable, "a root rotation finished while this one started; call again");
  return r;
}

/** Step 1 (idempotent on the worker: a run stopped after it but before the update finds the same new set). */
async function switchRoots(s: Services, ctx: CallContext, r: RootRotationRecord): Promise<RootRotationRecord> {
  const status = await s.worker.refreshStatus(ctx.deadline);
  if (status.sourceRootKeyIds.includes(r.oldRootKeyId)) {
    // A move off the source file: the token's current set is already the target.
    const updated = await s.rotations.update(r.rotationId, { newRootKeyId: status.rootKeyId });
    await audit(s, ctx, "RootKeySwitch", { "kms:fromRootKeyId": r.oldRootKeyId, "kms:toRootKeyId": status.rootKeyId, "kms:sourceRootKeyFile": "true" });
    return updated;
  }
  const begun = await s.worker.beginRootRotation({ fromRootKeyId: r.oldRootKeyId }, ctx.deadline);
  const updated = await s.rotations.update(r.rotationId, { newRootKeyId: begun.rootKeyId });
  await s.rotations.notifyRootsChanged(begun.rootKeyId);
  await audit(s, ctx, "RootKeySwitch", { "kms:fromRootKeyId": r.oldRootKeyId, "kms:toRootKeyId": begun.rootKeyId });
  return updated;
}

function oldRoots(r: RootRotationRecord): string[] {
  return [r.oldRootKeyId, r.legacyRootKeyId].filter((id) => id !== "");
}

async function remaining(s: Services, r: RootRotationRecord): Promise<number> {
  let n = 0;
  for (const id of oldRoots(r)) if (!r.destroyedRootKeyIds.split(",").includes(id)) n += await s.rotations.countUnder(id);
  return n;
}

/** Thrown inside a batch's transaction to roll it back when another step has recorded the same page. */
const PAGE_TAKEN = new Error("another step recorded this page");

/** Step 2: one batch. */
async function rewrapBatch(s: Services, ctx: CallContext, r: RootRotationRecord, batchSize: number): Promise<RootRotationRecord> {
  const page = await s.rotations.versionsUnder(oldRoots(r), r.cursorVersionId, batchSize);
  if (page.length === 0) {
    // The pass is over. Anything under the old roots beyond what it left (a version written meanwhile by a
    // worker not yet switched, a compare-and-set lost to a concurrent change) gets another pass.
    if ((await remaining(s, r)) > r.retainedVersions) return s.rotations.update(r.rotationId, { cursorVersionId: null, retainedVersions: 0, retainedReason: "" });
    return s.rotations.update(r.rotationId, { state: ROTATION_STATE.RETIRING, retireTime: new Date(s.clock().getTime() + s.rootRetireDelayMs) });
  }
  const { results } = await s.worker.rewrapKeys(
    { keys: page.map((v) => ({ keyVersionId: v.keyVersionId, keySpec: v.keySpec, protectionLevel: v.protectionLevel, wrappedMaterial: v.wrappedMaterial, rootKeyId: v.rootKeyId })) },
    ctx.deadline,
  );
  if (results.length !== page.length) throw new Error(`the worker answered ${results.length} re-wraps for ${page.length} key versions`);
  faultPoint("crash-after-rewrap"); // test-only, off by default
  const retained = results.filter((res) => res.outcome !== hsm.RewrapOutcome.REWRAPPED && res.outcome !== hsm.RewrapOutcome.CURRENT);
  const reason = retained.map((res) => (res.outcome === hsm.RewrapOutcome.RETAINED ? res.problem : `a version does not unwrap under its root (${res.problem}); run verify-restore`)).find((r) => r !== "") ?? "";
  try {
    await s.transactions.run(async (work) => {
      // First: it locks the rotation row, and a step that raced this one for the same page gives way.
      if (!(await work.advanceRotation(r.rotationId, r.cursorVersionId, page[page.length - 1]!.keyVersionId, retained.length, reason))) throw PAGE_TAKEN;
      for (const [i, v] of page.entries()) {
        const res = results[i]!;
        if (res.outcome !== hsm.RewrapOutcome.REWRAPPED) continue;
        const moved = { keyVersionId: v.keyVersionId, oldRootKeyId: v.rootKeyId, oldMaterial: v.wrappedMaterial, newRootKeyId: res.rootKeyId, newMaterial: Buffer.from(res.wrappedMaterial), fingerprint: Buffer.from(res.fingerprint) };
        const keyId = await work.rewrapKeyVersion(moved, r.rotationId);
        if (keyId !== undefined) {
          await work.appendAudit(auditEvent(s, ctx, "RootKeyRewrap", { "kms:fromRootKeyId": v.rootKeyId, "kms:toRootKeyId": res.rootKeyId }, keyId, v.keyVersionId));
        }
      }
    });
  } catch (err) {
    if (err !== PAGE_TAKEN) throw err; // rolled back either way; PAGE_TAKEN: the other step's work stands
  }
  return (await s.rotations.get(r.rotationId))!;
}

/** Step 3. */
async function retire(s: Services, ctx: CallContext, r: RootRotationRecord): Promise<RootRotationRecord> {
  if (r.retireTime !== null && s.clock() < r.retireTime) return r;
  // Checked right before destroying: a version that appeared under an old root since the pass goes back to step 2.
  if ((await remaining(s, r)) > r.retainedVersions) {
    return s.rotations.update(r.rotationId, { state: ROTATION_STATE.REWRAPPING, cursorVersionId: null, retainedVersions: 0, retainedReason: "" });
  }
  return retireUnused(s, ctx, r, ROTATION_STATE.RETIRING);
}

/** Destroys each old root of `r` that no stored version names; DONE when all are gone, else RETAINING. */
async function retireUnused(s: Services, ctx: CallContext, r: RootRotationRecord, state: number): Promise<RootRotationRecord> {
  const destroyed = r.destroyedRootKeyIds === "" ? [] : r.destroyedRootKeyIds.split(",");
  let kept = 0;
  for (const id of oldRoots(r)) {
    if (destroyed.includes(id)) continue;
    const n = await s.rotations.countUnder(id);
    if (n > 0) {
      kept += n;
      continue;
    }
    await s.worker.retireRoot({ rootKeyId: id }, ctx.deadline);
    destroyed.push(id);
    await audit(s, ctx, "RootKeyRetire", { "kms:rootKeyId": id });
  }
  if (destroyed.join(",") !== r.destroyedRootKeyIds) await s.rotations.notifyRootsChanged(r.newRootKeyId);
  if (state === ROTATION_STATE.RETAINING && kept > 0) return s.rotations.update(r.rotationId, { destroyedRootKeyIds: destroyed.join(","), retainedVersions: kept });
  return s.rotations.update(r.rotationId, {
    state: kept > 0 ? ROTATION_STATE.RETAINING : ROTATION_STATE.DONE,
    destroyedRootKeyIds: destroyed.join(","),
    retainedVersions: kept,
    ...(kept === 0 ? { retainedReason: "" } : {}),
    endTime: s.clock(),
  });
}

function auditEvent(s: Services, ctx: CallContext, operation: string, context: Record<string, string>, keyId = "", keyVersionId = "") {
  return { time: s.clock(), requestId: ctx.requestId, principal: ctx.principal, operation, keyId, keyVersionId, encryptionContext: context, resultCode: "OK", errorCode: "" };
}

async function audit(s: Services, ctx: CallContext, operation: string, context: Record<string, string>): Promise<void> {
  await s.audit.append(auditEvent(s, ctx, operation, context));
}
