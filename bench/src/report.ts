// Turns the measurements into the printed table and the JSON file kept under bench/results/.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { LoadResult } from "./load";

export interface Row extends LoadResult {
  operation: string;
  /** "HSM", "SOFTWARE", or "-" for the echo baseline. */
  protection: string;
  /** ops/s divided by the echo server's ops/s in the same run. */
  ratioToEcho: number;
}

export interface Report {
  date: string;
  commit: string;
  machine: { cpu: string; cpus: number; node: string; platform: string };
  settings: { concurrency: number; channels: number; warmupSeconds: number; seconds: number; plaintextBytes: number };
  rows: Row[];
}

export function gitCommit(cwd: string): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unknown";
  }
}

export function machine(): Report["machine"] {
  const cpus = os.cpus();
  return { cpu: cpus[0]?.model.trim() ?? "unknown", cpus: cpus.length, node: process.version, platform: `${os.platform()} ${os.release()}` };
}

export function formatTable(report: Report): string {
  const header = ["operation", "protection", "ops/s", "p50 ms", "p99 ms", "ratio to echo", "errors"];
  const body = report.rows.map((r) => [
    r.operation,
    r.protection,
    r.opsPerSec.toFixed(0),
    r.p50Ms.toFixed(2),
    r.p99Ms.toFixed(2),
    r.ratioToEcho.toFixed(3),
    String(r.errors),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ");
  const s = report.settings;
  return [
    `machine: ${report.machine.cpu} x ${report.machine.cpus}, node ${report.machine.node}, ${report.machine.platform}`,
    `commit:  ${report.commit}`,
    `load:    ${s.concurrency} in flight over ${s.channels} channel(s), ${s.warmupSeconds} s warm-up, ${s.seconds} s measured per row`,
    "",
    line(header),
    widths.map((w) => "-".repeat(w)).join("-|-"),
    ...body.map(line),
  ].join("\n");
}

/** Writes results/<ISO date>-<commit>.json and returns its path. */
export function writeReport(dir: string, report: Report): string {
  mkdirSync(dir, { recursive: true });
  // Colons are legal on Linux but awkward everywhere else.
  const file = path.join(dir, `${report.date.replace(/[:.]/g, "-")}-${report.commit}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}
