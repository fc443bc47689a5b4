// `node services/kms-api/dist/reconcile.js`: checks that the database and the HSM agree, in kms-api's
// environment (DATABASE_URL, KMS_WORKER_SOCKET). Reports, as
// one JSON object on stdout:
//   (a) unusableVersions: key versions wrapped under another root key than the worker's or its legacy
//       root (they cannot be unwrapped here: a swapped or re-initialised HSM, or rows restored from
//       another deployment);
//   (b) strayHsmObjects: token objects other than the root keys (`label`/hsm, /software, /mac of the
//       worker's root key id, and the legacy root `label`) and the audit checkpoint key pair (should be none: the worker keeps every
//       generated or unwrapped key as a session object labelled with its key version id, gone with its
//       session, so a crash between generation and the database insert leaves nothing in the HSM; the
//       wrapped material it returned is unusable without its row). Listed by the worker
//       (ListTokenObjects); null (skipped) when the worker has no PKCS#11 token (the software root);
//   (c) keysWithoutPrimary: keys outside PENDING_IMPORT with no primary version, or one whose row is missing.
// Exit code 0 when all three are empty, 3 when something was found, 1 when the check could not run.
import path from "node:path";
import { connect, keysWithoutPrimaryVersion, versionsUnderOtherRoots } from "@kms/db";
import { WorkerClient } from "./worker-client";

type TokenObject = { class: string; label: string; id: string };

export interface ReconcileReport {
  workerRootKeyId: string;
  unusableVersions: { keyId: string; keyVersionId: string; rootKeyId: string }[];
  strayHsmObjects: TokenObject[] | null;
  keysWithoutPrimary: { keyId: string; keyState: number; primaryKeyVersionId: string | null }[];
  ok: boolean;
}

/** Where kms-api's tools find the database and the worker: DATABASE_URL, KMS_WORKER_SOCKET (or under KMS_DATA_DIR). */
export function toolEnvironment(env: NodeJS.ProcessEnv): { databaseUrl: string; workerSocket: string } {
  const databaseUrl = env.DATABASE_URL;
  if (!databaseUrl) throw new Error("DATABASE_URL is required");
  const workerSocket = env.KMS_WORKER_SOCKET || path.join(path.resolve(env.KMS_DATA_DIR || "./.kms-data"), "run", "hsm-worker.sock");
  return { databaseUrl, workerSocket };
}


/** (b): token objects other than the worker's root keys and checkpoint key pair; null without a token. */
export async function strayHsmObjects(worker: WorkerClient, root: string, legacy: string, retiring: readonly string[] = []): Promise<TokenObject[] | null> {
  const listing = await worker.listTokenObjects();
  if (listing === null) return null;
  const label = listing.rootKeyLabel;
  const members = (prefix: string) => [`${prefix}/hsm`, `${prefix}/software`, `${prefix}/mac`];
  // A root rotation's retiring sets (root-rotation.ts) are ours too until it destroys them.
  const ours = (o: TokenObject) =>
    o.class === "secret key" &&
    ((o.id === root && members(label).includes(o.label)) ||
      (retiring.includes(o.id) && members(`${label}/retiring`).includes(o.label)) ||
      (legacy !== "" && o.id === legacy && o.label === label));
  const isCheckpointKey = (o: TokenObject) => (o.class === "private key" || o.class === "public key") && o.label === listing.checkpointKeyLabel;
  return listing.objects.filter((o) => !ours(o) && !isCheckpointKey(o));
}

export async function reconcile(env: NodeJS.ProcessEnv = process.env): Promise<ReconcileReport> {
  const { databaseUrl, workerSocket } = toolEnvironment(env);
  const worker = new WorkerClient(workerSocket, 5000);
  const sql = connect(databaseUrl, { max: 1 });
  try {
    const status = await worker.getStatus();
    const root = status.rootKeyId;
    const legacy = status.legacyRootKeyId;
    const retiring = status.retiringRootKeyIds;
    // A source root file's versions unwrap too (not token objects: no strays to count for it).
    const unusableVersions = await versionsUnderOtherRoots(sql, [root, ...retiring, ...status.sourceRootKeyIds, legacy].filter((id) => id !== ""));
    const keysWithoutPrimary = await keysWithoutPrimaryVersion(sql);
    const stray = await strayHsmObjects(worker, root, legacy, retiring);
    return {
      workerRootKeyId: root,
      unusableVersions,
      strayHsmObjects: stray,
      keysWithoutPrimary,
      ok: unusableVersions.length === 0 && keysWithoutPrimary.length === 0 && (stray?.length ?? 0) === 0,
    };
  } finally {
    worker.close();
    await sql.end({ timeout: 5 });
  }
}

if (require.main === module) {
  reconcile().then(
    (report) => {
      process.stdout.write(JSON.stringify(report) + "\n");
      process.exit(report.ok ? 0 : 3);
    },
    (err: unknown) => {
      process.stderr.write(`reconcile: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
