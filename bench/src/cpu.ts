// CPU time of processes from /proc: what `bench:profile` and the bench's CPU-per-call row divide by
// the calls made. CPU per call moves far less than calls/s on a shared machine.
import { readFileSync, readdirSync } from "node:fs";

/** utime + stime of a process, in ms (from /proc/<pid>/stat; clock ticks are 10 ms on Linux). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Busy CPU time of the whole machine, in ms (all cores; /proc/stat's first line, 10 ms ticks). */
export function machineBusyMs(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) * 10;
}

/** CPU ms of every process whose command name is `name` (e.g. all Postgres backends). */
export function cpuOfCommand(name: string): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) total += cpuMs(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return total;
}

/** Starts counting the CPU of `pids`; stop() returns each one's ms since. */
export function cpuMeter(pids: number[]): { stop(): number[] } {
  const before = pids.map(cpuMs);
  return { stop: () => pids.map((pid, i) => cpuMs(pid) - before[i]!) };
}
