/** A small line chart of HR@K per channel, as a self-contained SVG. */
export function hrChartSvg(
  series: Array<{ name: string; hr: Record<number, number> }>,
  ks: readonly number[],
): string {
  const W = 640;
  const H = 360;
  const left = 60;
  const right = 150;
  const top = 30;
  const bottom = 50;
  const maxY = Math.max(0.05, ...series.flatMap((s) => ks.map((k) => s.hr[k] ?? 0))) * 1.1;
  const x = (k: number) =>
    left +
    ((Math.log10(k) - Math.log10(ks[0]!)) / (Math.log10(ks[ks.length - 1]!) - Math.log10(ks[0]!))) *
      (W - left - right);
  const y = (v: number) => H - bottom - (v / maxY) * (H - top - bottom);
  const colors = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    "<title>Hit rate at K per recall channel</title>",
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14">Hit rate @K, full-corpus ranking (MovieLens, per-user last-event split)</text>`,
    `<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}" stroke="black"/>`,
  ];
  for (const k of ks) {
    parts.push(`<text x="${x(k)}" y="${H - bottom + 18}" text-anchor="middle">${k}</text>`);
  }
  parts.push(`<text x="${(left + W - right) / 2}" y="${H - 12}" text-anchor="middle">K (log scale)</text>`);
  for (let t = 0; t <= 4; t++) {
    const v = (maxY * t) / 4;
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
    parts.push(`<line x1="${left}" y1="${y(v)}" x2="${W - right}" y2="${y(v)}" stroke="#eee"/>`);
  }
  series.forEach((s, i) => {
    const color = colors[i % colors.length];
    const points = ks.map((k) => `${x(k).toFixed(1)},${y(s.hr[k] ?? 0).toFixed(1)}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`);
    for (const k of ks) parts.push(`<circle cx="${x(k)}" cy="${y(s.hr[k] ?? 0)}" r="3" fill="${color}"/>`);
    parts.push(`<rect x="${W - right + 12}" y="${top + i * 20}" width="12" height="12" fill="${color}"/>`);
    parts.push(`<text x="${W - right + 30}" y="${top + i * 20 + 10}">${s.name}</text>`);
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
