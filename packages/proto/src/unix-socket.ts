// Serving gRPC on a Unix socket that only this user can reach (the worker's socket for kms-api, the
// Kubernetes plugin's for kube-apiserver). Whoever can write the socket's directory can replace the
// socket with their own and receive the callers' plaintexts, so the directory must be this user's and
// 0700; and the socket is born 0600 (umask 0177 while grpc-js binds), so there is no moment in which it
// is wider, as a chmod after binding would leave.
import { lstatSync, mkdirSync, unlinkSync } from "node:fs";
import path from "node:path";
import { ServerCredentials } from "@grpc/grpc-js";
import type { Server } from "@grpc/grpc-js";

/**
 * Binds `server` on unix://socketPath: the directory is created 0700 if missing, refused if it is not
 * this user's 0700 directory, and a stale socket from a previous run is removed. `refuse` turns a
 * problem with the path into the caller's error (e.g. a ConfigError naming its variable).
 */
export async function listenOnPrivateSocket(server: Server, socketPath: string, refuse: (problem: string) => Error): Promise<void> {
  prepareSocket(socketPath, refuse);
  const previousUmask = process.umask(0o177);
  try {
    await new Promise<number>((resolve, reject) =>
      server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  } finally {
    process.umask(previousUmask);
  }
}

function prepareSocket(socketPath: string, refuse: (problem: string) => Error): void {
  const dir = path.dirname(socketPath);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const dirStat = lstatSync(dir);
  const uid = process.getuid?.();
  if (!dirStat.isDirectory() || (uid !== undefined && dirStat.uid !== uid) || (dirStat.mode & 0o077) !== 0) {
    const mode = (dirStat.mode & 0o777).toString(8).padStart(4, "0");
    throw refuse(`the socket's directory ${dir} must be a directory owned by this user with mode 0700 (it has mode ${mode}, owner ${dirStat.uid})`);
  }
  let stat;
  try {
    stat = lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!stat.isSocket()) throw refuse(`${socketPath} exists and is not a socket; refusing to remove it`);
  unlinkSync(socketPath);
}
