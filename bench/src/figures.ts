// One line of the benchmark's verdict: a measured value, what it is compared with, and the target.
export interface Figure {
  name: string;
  unit: string;
  measured: number;
  /** The limit measured in the same run (echo server, raw SoftHSM, single calls); absent for absolute targets. */
  baseline?: number;
  ratio?: number;
  /** The number the ratio (or, without a baseline, the measured value) is held against. */
  target: number;
  targetText: string;
  lowerIsBetter?: boolean;
  met: boolean;
}

export function ratioFigure(name: string, unit: string, measured: number, baseline: number, target: number): Figure {
  const ratio = baseline > 0 ? measured / baseline : 0;
  return { name, unit, measured, baseline, ratio, target, targetText: `≥ ${target} ×`, met: ratio >= target };
}

export function ceilingFigure(name: string, unit: string, measured: number, ceiling: number): Figure {
  return { name, unit, measured, target: ceiling, targetText: `≤ ${ceiling} ${unit}`, lowerIsBetter: true, met: measured <= ceiling };
}

export function formatFigures(figures: Figure[]): string {
  const rows = figures.map((f) => [
    f.name,
    `${f.measured >= 100 ? f.measured.toFixed(0) : f.measured.toFixed(2)} ${f.unit}`,
    f.baseline === undefined ? "" : `${f.baseline.toFixed(0)} ${f.unit}`,
    f.ratio === undefined ? "" : f.ratio.toFixed(2),
    f.targetText,
    f.met ? "met" : "NOT met",
  ]);
  const header = ["figure", "measured", "limit (same run)", "ratio", "target", ""];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}
