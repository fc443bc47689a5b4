// Starts the bench's own child processes: the echo server and the load generator.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import type { LoadArgs, LoadResult } from "./load";

export interface EchoServer {
  address: string;
  /** For its CPU time (/proc). */
  pid: number;
  stop(): Promise<void>;
}

/** Spawns echo-server.js and resolves once it has printed its port. */
export function startEcho(): Promise<EchoServer> {
  const child = spawn(process.execPath, [path.join(__dirname, "echo-server.js")], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`echo-server exited with code ${code} before listening`)));
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n")[0];
      if (!out.includes("\n") || line === undefined) return;
      const { port } = JSON.parse(line) as { port: number };
      child.removeAllListeners("exit");
      resolve({ address: `127.0.0.1:${port}`, pid: child.pid!, stop: () => stopChild(child) });
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** Runs load.js in its own process for one measurement window and returns what it reports. */
export function measure(args: LoadArgs, signal?: AbortSignal): Promise<LoadResult> {
  const child = spawn(process.execPath, [path.join(__dirname, "load.js"), JSON.stringify(args)], {
    stdio: ["ignore", "pipe", "inherit"],
    // Aborting kills the generator: an interrupted run should not keep loading stopped services.
    ...(signal ? { signal } : {}),
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with code ${code}`));
      resolve(JSON.parse(out) as LoadResult);
    });
  });
}
