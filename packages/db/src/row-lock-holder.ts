// For tests: another session (e.g. the DBA) holding a key's row lock, as a slow concurrent change would.
import type { Sql } from "./connect";

/** Holds the key's row lock through `sql` until the returned function is called (and has committed). */
export async function holdKeyRowLock(sql: Sql, keyId: string): Promise<() => Promise<void>> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const holder = sql.begin(async (tx) => {
    await tx`SELECT 1 FROM keys WHERE key_id = ${keyId} FOR UPDATE`;
    locked();
    await released;
  });
  await Promise.race([isLocked, holder]);
  return async () => {
    release();
    await holder;
  };
}
