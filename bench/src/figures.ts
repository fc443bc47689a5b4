// One line of the benchmark's verdict: a measured value, what it is compared with, and the target.
export interface Figure {
  name: string;
  unit: string;
  measured: number;
  /** The limit measured in the same run (echo server, raw SoftHSM, one replica); absent for absolute targets. */
  baseline?: number;
  ratio?: number;
  /** The number the ratio (or, without a baseline, the measured value) is held against. */
  target: number;
  targetText: string;
  lowerIsBetter?: boolean;
  /** The target as a value in `unit` (for the chart's target mark). */
  targetValue: number;
  met: boolean;
}

/** At least `target` × the limit (throughput). */
export function ratioFigure(name: string, unit: string, measured: number, baseline: number, target: number): Figure {
  const ratio = baseline > 0 ? measured / baseline : 0;
  return { name, unit, measured, baseline, ratio, target, targetText: `≥ ${target} ×`, targetValue: baseline * target, met: ratio >= target };
}

/** At most `target` × the limit (CPU per call, p99 against p50). */
export function ceilingRatioFigure(name: string, unit: string, measured: number, baseline: number, target: number): Figure {
  const ratio = baseline > 0 ? measured / baseline : Infinity;
  return { name, unit, measured, baseline, ratio, target, targetText: `≤ ${target} ×`, lowerIsBetter: true, targetValue: baseline * target, met: ratio <= target };
}

/** At most the limit plus `over` (a latency against the echo's with the same client). */
export function overheadFigure(name: string, unit: string, measured: number, baseline: number, over: number): Figure {
  return { name, unit, measured, baseline, target: over, targetText: `≤ limit + ${over} ${unit}`, lowerIsBetter: true, targetValue: baseline + over, met: measured <= baseline + over };
}

/** At most `ceiling`; `reference`, if given, is shown as the limit (e.g. the echo's p99) but not held against. */
export function ceilingFigure(name: string, unit: string, measured: number, ceiling: number, reference?: number): Figure {
  return {
    name,
    unit,
    measured,
    ...(reference === undefined ? {} : { baseline: reference }),
    target: ceiling,
    targetText: `≤ ${ceiling} ${unit}`,
    lowerIsBetter: true,
    targetValue: ceiling,
    met: measured <= ceiling,
  };
}

/** Enough digits for 20,000 calls/s and for 0.064 ms of CPU alike. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1 || v === 0) return v.toFixed(2);
  return v.toFixed(3);
}

export function formatFigures(figures: Figure[]): string {
  const rows = figures.map((f) => [
    f.name,
    `${formatValue(f.measured)} ${f.unit}`,
    f.baseline === undefined ? "" : `${formatValue(f.baseline)} ${f.unit}`,
    f.ratio === undefined ? "" : f.ratio.toFixed(2),
    f.targetText,
    f.met ? "met" : "NOT met",
  ]);
  const header = ["figure", "measured", "limit (same run)", "ratio", "target", ""];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}
