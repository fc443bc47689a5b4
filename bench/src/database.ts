// A fresh Postgres database for one run, so the figures never depend on what an earlier run left.
import postgres from "postgres";

export interface BenchDatabase {
  /** DATABASE_URL for kms-api. */
  url: string;
  drop(): Promise<void>;
}

/** adminUrl: a role allowed to CREATE DATABASE (trust auth on loopback in the dev setup). */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `kms_bench_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } catch (err) {
    await admin.end();
    throw err;
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      try {
        // FORCE: a kms-api that did not stop cleanly may still hold connections.
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
