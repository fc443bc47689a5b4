// Peak resident memory of the services under load, sampled from /proc.
import { readFileSync } from "node:fs";

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples the summed RSS of `pids` every `everyMs` until stopped; returns the peak in bytes. */
export function sampleRss(pids: number[], everyMs = 200): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, pids.reduce((sum, pid) => sum + rssBytes(pid), 0));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}
