/**
 * Just enough of the Prometheus text format to diff two scrapes of a service
 * and read quantiles from the difference, the way `histogram_quantile` does:
 * linear interpolation inside the bucket that holds the rank. Such quantiles
 * are only as fine as the buckets (shared/src/metrics.ts LATENCY_BUCKETS).
 */

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheusText(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    const raw = m[3]!;
    const value =
      raw === "+Inf" ? Number.POSITIVE_INFINITY : raw === "-Inf" ? Number.NEGATIVE_INFINITY : Number(raw);
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

export interface HistogramData {
  /** Cumulative counts by upper bound, ascending, +Inf last. */
  readonly buckets: ReadonlyArray<{ le: number; count: number }>;
  readonly sum: number;
  readonly count: number;
}

/**
 * Histogram `name` from a scrape, grouped by `groupBy(labels)` (undefined drops
 * the series). Series in the same group are added (e.g. both outcomes).
 */
export function histograms(
  samples: readonly PromSample[],
  name: string,
  groupBy: (labels: Readonly<Record<string, string>>) => string | undefined,
): Map<string, HistogramData> {
  const acc = new Map<string, { buckets: Map<number, number>; sum: number; count: number }>();
  const get = (key: string) => {
    let h = acc.get(key);
    if (!h) acc.set(key, (h = { buckets: new Map(), sum: 0, count: 0 }));
    return h;
  };
  for (const s of samples) {
    let field: "bucket" | "sum" | "count";
    if (s.name === `${name}_bucket`) field = "bucket";
    else if (s.name === `${name}_sum`) field = "sum";
    else if (s.name === `${name}_count`) field = "count";
    else continue;
    const key = groupBy(s.labels);
    if (key === undefined) continue;
    const h = get(key);
    if (field === "bucket") {
      const le = s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      h.buckets.set(le, (h.buckets.get(le) ?? 0) + s.value);
    } else if (field === "sum") h.sum += s.value;
    else h.count += s.value;
  }
  const out = new Map<string, HistogramData>();
  for (const [key, h] of acc) {
    const buckets = [...h.buckets.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([le, count]) => ({ le, count }));
    out.set(key, { buckets, sum: h.sum, count: h.count });
  }
  return out;
}

/** after - before, bucket by bucket (a series missing before counts as zero). */
export function diffHistogram(after: HistogramData, before: HistogramData | undefined): HistogramData {
  if (!before) return after;
  const prev = new Map(before.buckets.map((b) => [b.le, b.count]));
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (prev.get(b.le) ?? 0) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/**
 * Prometheus histogram_quantile: find the bucket holding rank q*total and
 * interpolate linearly between its bounds (the first bucket starts at 0). A
 * rank in the +Inf bucket returns the highest finite bound. NaN when empty.
 */
export function histogramQuantile(q: number, h: HistogramData): number {
  const buckets = h.buckets;
  if (buckets.length < 2) return Number.NaN;
  const total = buckets[buckets.length - 1]!.count;
  if (total <= 0) return Number.NaN;
  if (q <= 0) return 0;
  if (q >= 1) return buckets[buckets.length - 2]!.le;
  const rank = q * total;
  let i = 0;
  while (i < buckets.length - 1 && buckets[i]!.count < rank) i++;
  const b = buckets[i]!;
  if (b.le === Number.POSITIVE_INFINITY) return buckets[buckets.length - 2]!.le;
  const lower = i === 0 ? 0 : buckets[i - 1]!.le;
  const below = i === 0 ? 0 : buckets[i - 1]!.count;
  const inBucket = b.count - below;
  if (inBucket <= 0) return b.le;
  return lower + (b.le - lower) * ((rank - below) / inBucket);
}

/** Counter `name` grouped by one label, after - before. */
export function counterDiff(
  before: readonly PromSample[],
  after: readonly PromSample[],
  name: string,
  label: string,
): Map<string, number> {
  const sum = (samples: readonly PromSample[]) => {
    const m = new Map<string, number>();
    for (const s of samples)
      if (s.name === name) m.set(s.labels[label] ?? "", (m.get(s.labels[label] ?? "") ?? 0) + s.value);
    return m;
  };
  const a = sum(after);
  const b = sum(before);
  const out = new Map<string, number>();
  for (const [k, v] of a) {
    const d = v - (b.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}
