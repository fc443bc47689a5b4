// verify-restore's checks: does a restored database, with the HSM (or root file) the worker holds, make a
// working KMS? Checked before traffic reaches it:
//   - every key version, PAGE at a time (bounded memory), goes to the worker's CheckWrappedKeys: it must
//     authenticate and unwrap under a root the worker holds (unwrapped and discarded, never used);
//   - the audit chain verifies up to its head and through its last signed checkpoint, whose signature must
//     verify with the worker's checkpoint key (another HSM has another key);
//   - reconcile's token and primary-version checks.
// It only reads: it never creates a root key (nor anything else), and says so when the worker's root looks new.
import { verifyCheckpoint } from "@kms/audit-chain";
import { AuditReader, CheckpointStore, keysWithoutPrimaryVersion, keyVersionsAfter } from "@kms/db";
import type { KeyWithoutPrimary, Sql } from "@kms/db";
import { ErrorCode, KmsError } from "@kms/errors";
import { hsm } from "@kms/proto/internal";
import { strayHsmObjects } from "./reconcile";
import type { WorkerClient } from "./worker-client";

/** Key versions sent to the worker per call (it takes up to 100; RSA unwraps are the slow ones). */
const PAGE = 50;
/** Versions listed per missing root and bad versions listed in all: the report stays small whatever the count. */
const MAX_LISTED = 20;

const NEVER_CREATE =
  "restore the backup of the HSM token/partition this database was used with and start the worker on it with KMS_CREATE_ROOT_KEY=false (a new root key cannot unwrap old material)";

export interface VersionRef {
  keyId: string;
  keyVersionId: string;
}

export interface RestoreReport {
  worker: { description: string; rootKeyId: string; legacyRootKeyId: string; retiringRootKeyIds: string[] };
  keyVersions: {
    checked: number;
    ok: number;
    /** Versions wrapped under the worker's root or its legacy root, whatever their result. */
    underWorkerRoots: number;
    missingRoots: { rootKeyId: string; versions: number; examples: VersionRef[] }[];
    bad: (VersionRef & { problem: string })[];
    badCount: number;
  };
  audit: {
    ok: boolean;
    verifiedCount: number;
    firstBadSequence: number;
    problem: string;
    /** The newest stored checkpoint; null when there is none yet. */
    lastCheckpoint: { sequence: number; time: string; keyId: string; signatureValid: boolean } | null;
    checkpointMatched: boolean;
  };
  strayHsmObjects: { class: string; label: string; id: string }[] | null;
  keysWithoutPrimary: KeyWithoutPrimary[];
  /** One sentence per problem, naming what is missing and what to do. */
  problems: string[];
  ok: boolean;
}

export async function checkRestore(sql: Sql, worker: WorkerClient): Promise<RestoreReport> {
  const status = await worker.getStatus();
  const problems: string[] = [];
  const root = status.rootKeyId;
  const legacy = status.legacyRootKeyId;
  if (root === "") problems.push(`the worker holds no root key (${status.description}): ${NEVER_CREATE}`);

  // Root sets a rotation is retiring are the worker's too: their versions unwrap until it destroys them; so
  // is a source root file (KMS_SOURCE_ROOT_KEY_FILE) until a rotation has moved its versions onto the token.
  const retiring = status.retiringRootKeyIds;
  const keyVersions = await checkKeyVersions(sql, worker, [root, ...retiring, ...status.sourceRootKeyIds, legacy].filter((id) => id !== ""));
  for (const m of keyVersions.missingRoots) {
    problems.push(`${m.versions} key version(s) are wrapped under root key ${m.rootKeyId}, which the worker does not hold: ${NEVER_CREATE}`);
  }
  if (root !== "" && keyVersions.checked > 0 && keyVersions.underWorkerRoots === 0) {
    problems.push(
      `the worker's root key ${root} wraps none of the ${keyVersions.checked} key version(s): it looks new (a worker started with KMS_CREATE_ROOT_KEY=true on an empty or another token makes one); ${NEVER_CREATE}`,
    );
  }
  if (keyVersions.badCount > 0) {
    const first = keyVersions.bad[0]!;
    problems.push(`${keyVersions.badCount} key version(s) name a root the worker holds but do not unwrap under it (first: ${first.keyVersionId} of key ${first.keyId}: ${first.problem})`);
  }

  const audit = await checkAudit(sql, worker);
  if (audit.lastCheckpoint !== null && !audit.lastCheckpoint.signatureValid) {
    problems.push(
      `the last audit checkpoint (sequence ${audit.lastCheckpoint.sequence}) does not verify with the worker's checkpoint key: it was signed by key ${audit.lastCheckpoint.keyId} (another HSM, or the checkpoint key is missing from this one)`,
    );
  }
  if (!audit.ok) problems.push(`the audit chain does not verify: sequence ${audit.firstBadSequence}: ${audit.problem}`);

  const stray = await strayHsmObjects(worker, root, legacy, retiring);
  if (stray !== null && stray.length > 0) problems.push(`${stray.length} unexpected object(s) on the token (see strayHsmObjects; reconcile explains them)`);
  const keysWithoutPrimary = await keysWithoutPrimaryVersion(sql);
  if (keysWithoutPrimary.length > 0) problems.push(`${keysWithoutPrimary.length} key(s) have no usable primary version (see keysWithoutPrimary)`);

  return {
    worker: { description: status.description, rootKeyId: root, legacyRootKeyId: legacy, retiringRootKeyIds: [...retiring] },
    keyVersions,
    audit,
    strayHsmObjects: stray,
    keysWithoutPrimary,
    problems,
    ok: problems.length === 0,
  };
}

async function checkKeyVersions(sql: Sql, worker: WorkerClient, workerRoots: string[]): Promise<RestoreReport["keyVersions"]> {
  const result: RestoreReport["keyVersions"] = { checked: 0, ok: 0, underWorkerRoots: 0, missingRoots: [], bad: [], badCount: 0 };
  const missing = new Map<string, RestoreReport["keyVersions"]["missingRoots"][number]>();
  let after = "";
  for (;;) {
    const page = await keyVersionsAfter(sql, after, PAGE);
    if (page.length === 0) break;
    after = page[page.length - 1]!.keyVersionId;
    const { results } = await worker.checkWrappedKeys({
      keys: page.map((v) => ({ keyVersionId: v.keyVersionId, keySpec: v.keySpec, protectionLevel: v.protectionLevel, wrappedMaterial: v.wrappedMaterial, rootKeyId: v.rootKeyId })),
    });
    if (results.length !== page.length) throw new Error(`the worker answered ${results.length} checks for ${page.length} key versions`);
    page.forEach((v, i) => {
      const r = results[i]!;
      const ref = { keyId: v.keyId, keyVersionId: v.keyVersionId };
      result.checked++;
      if (workerRoots.includes(v.rootKeyId)) result.underWorkerRoots++;
      if (r.condition === hsm.WrappedKeyCondition.OK) {
        result.ok++;
      } else if (r.condition === hsm.WrappedKeyCondition.ROOT_MISSING) {
        let m = missing.get(v.rootKeyId);
        if (m === undefined) missing.set(v.rootKeyId, (m = { rootKeyId: v.rootKeyId, versions: 0, examples: [] }));
        m.versions++;
        if (m.examples.length < MAX_LISTED) m.examples.push(ref);
      } else {
        result.badCount++;
        if (result.bad.length < MAX_LISTED) result.bad.push({ ...ref, problem: r.problem });
      }
    });
  }
  result.missingRoots = [...missing.values()];
  return result;
}

async function checkAudit(sql: Sql, worker: WorkerClient): Promise<RestoreReport["audit"]> {
  const [last] = await new CheckpointStore(sql).list(1);
  let lastCheckpoint: RestoreReport["audit"]["lastCheckpoint"] = null;
  if (last !== undefined) {
    const publicKey = await checkpointKey(worker);
    lastCheckpoint = { sequence: last.sequence, time: last.time.toISOString(), keyId: last.keyId, signatureValid: publicKey !== undefined && verifyCheckpoint(last, publicKey) };
  }
  // The chain must reach the checkpoint's head hash even when its signature failed: both are reported.
  const verified = await new AuditReader(sql).verify(0, 0, 5000, last);
  return {
    ok: verified.ok,
    verifiedCount: verified.verifiedCount,
    firstBadSequence: verified.firstBadSequence,
    problem: verified.problem,
    lastCheckpoint,
    checkpointMatched: verified.checkpointMatched ?? false,
  };
}

/** The worker's checkpoint public key (SPKI), or undefined when it has none. */
async function checkpointKey(worker: WorkerClient): Promise<Buffer | undefined> {
  try {
    return Buffer.from((await worker.getAuditCheckpointKey()).publicKey);
  } catch (err) {
    if (err instanceof KmsError && err.code === ErrorCode.Unimplemented) return undefined;
    throw err;
  }
}
