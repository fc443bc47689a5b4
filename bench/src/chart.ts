// Draws a run as SVG: for each figure, the measured value against the limit it is compared with,
// with its ratio and target, so the README can show the latest run at a glance.
import { formatValue } from "./figures";
import type { Figure } from "./figures";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

export function chartSvg(title: string, figures: Figure[]): string {
  const rowH = 46;
  const left = 400;
  const barW = 420;
  const width = left + barW + 320;
  const height = 60 + figures.length * rowH;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="12" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left}" y="44" fill="#555">grey: the limit measured in the same run; blue/red: measured (red: target not met); black mark: the target</text>`,
  ];
  figures.forEach((f, i) => {
    const y = 56 + i * rowH;
    const scale = Math.max(f.measured, f.baseline ?? 0, f.targetValue) || 1;
    const w = (v: number) => Math.max(1, (v / scale) * barW);
    parts.push(`<text x="12" y="${y + 15}">${esc(f.name)}</text>`);
    if (f.baseline !== undefined) parts.push(`<rect x="${left}" y="${y}" width="${w(f.baseline)}" height="12" fill="#ccc"/>`);
    parts.push(`<rect x="${left}" y="${y + 14}" width="${w(f.measured)}" height="14" fill="${f.met ? "#3572b0" : "#c0392b"}"/>`);
    // The target, where it falls on this row's scale.
    const t = left + w(f.targetValue);
    parts.push(`<line x1="${t}" y1="${y - 2}" x2="${t}" y2="${y + 30}" stroke="#222" stroke-width="2"/>`);
    const label = `${formatValue(f.measured)} ${f.unit}${f.ratio !== undefined ? ` · ratio ${f.ratio.toFixed(2)}` : ""} · target ${f.targetText}`;
    parts.push(`<text x="${left + barW + 8}" y="${y + 26}">${esc(label)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
