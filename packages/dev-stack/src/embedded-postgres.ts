// The dev stack's database when DATABASE_URL is not set: PGlite (Postgres compiled to WebAssembly) with
// its files under $KMS_DATA_DIR/pg, served on a loopback TCP port by pglite-socket so that kms-api talks
// to it with postgres.js like to any other Postgres. Dev only: PGlite runs one query at a time.
import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export interface EmbeddedPostgresOptions {
  /** Directory of the database files (created if missing); the dev stack uses $KMS_DATA_DIR/pg. */
  dataDir: string;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface EmbeddedPostgres {
  /** URL for postgres.js; it carries `max=1`, see below. */
  url: string;
  host: string;
  port: number;
  dataDir: string;
  /** Stops accepting connections, then closes PGlite so that its files are consistent on disk. */
  close(): Promise<void>;
}

/**
 * Starts PGlite on `dataDir` (PGlite.create takes a few seconds) and serves it on host:port.
 *
 * One connection only: PGlite has a single session, and pglite-socket multiplexes several client
 * connections over it at query level, so two clients' transactions would interleave. The server
 * therefore accepts one connection, and the URL tells postgres.js to open one (`max=1`: postgres.js
 * 3.4.x reads pool options from the URL query).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const host = options.host ?? "127.0.0.1";
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const db = await PGlite.create(options.dataDir);
  const server = new PGLiteSocketServer({ db, host, port: options.port ?? 0, maxConnections: 1 });
  try {
    await server.start();
  } catch (err) {
    await db.close();
    throw err;
  }
  // getServerConn() reports the bound port once start() has resolved ("127.0.0.1:54321").
  const port = Number(server.getServerConn().split(":").pop());
  let closing: Promise<void> | undefined;
  return {
    url: `postgres://postgres@${host}:${port}/postgres?max=1`,
    host,
    port,
    dataDir: options.dataDir,
    close: () =>
      (closing ??= (async () => {
        await server.stop();
        await db.close();
      })()),
  };
}
