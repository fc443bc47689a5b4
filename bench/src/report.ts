// Where a run happened: the commit and the machine, recorded with every result.
import { execFileSync } from "node:child_process";
import os from "node:os";

export function gitCommit(cwd: string): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unknown";
  }
}

export function machine(): { cpu: string; cpus: number; node: string; platform: string } {
  const cpus = os.cpus();
  return { cpu: cpus[0]?.model.trim() ?? "unknown", cpus: cpus.length, node: process.version, platform: `${os.platform()} ${os.release()}` };
}
