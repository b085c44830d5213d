#!/usr/bin/env node
/**
 * Summarises V8 .cpuprofile files (from `npm run loadtest -- --cpu-prof`):
 * per file, self time by function and by package/area, so "where does the
 * time go" has an answer without opening DevTools.
 *
 *   node loadtest/dist/src/cpuprof.js <dir-or-file.cpuprofile>... [--top 25]
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  /** Sampled time not idle, not GC, not "(program)". */
  readonly busyMs: number;
  readonly idleMs: number;
  readonly gcMs: number;
  readonly programMs: number;
  readonly byFunction: ReadonlyArray<{ name: string; ms: number }>;
  readonly byArea: ReadonlyArray<{ area: string; ms: number }>;
  /**
   * Busy time by the innermost `services/<name>` frame on the sampled stack
   * (shared and library code counted for the service that called it; "-"
   * when no service frame is on the stack: transport, timers, GC). This is
   * what tells the stages apart in a co-located process.
   */
  readonly byService: ReadonlyArray<{ service: string; ms: number }>;
}

/** Coarse area of a script URL: a package name, a repo folder, or node's internals. */
export function areaOf(url: string): string {
  if (!url) return "(native/builtin)";
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "/node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const m = /\/(services\/[^/]+|shared|deploy\/[^/]+|loadtest)\/dist\/(.*)$/.exec(url);
  if (m) return m[1] === "shared" && m[2]!.startsWith("gen/") ? "shared/gen" : `${m[1]}/${m[2]}`;
  return url.replace(/^file:\/\//, "");
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const serviceOfNode = new Map<number, string>();
  const serviceOf = (id: number): string => {
    let s = serviceOfNode.get(id);
    if (s !== undefined) return s;
    const m = /\/services\/([^/]+)\/dist\//.exec(byId.get(id)?.callFrame.url ?? "");
    const up = parent.get(id);
    s = m ? m[1]! : up === undefined ? "-" : serviceOf(up);
    serviceOfNode.set(id, s);
    return s;
  };
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  const service = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let program = 0;
  let total = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    const name = node.callFrame.functionName;
    if (name === "(idle)") {
      idle += us;
      continue;
    }
    if (name === "(garbage collector)") gc += us;
    if (name === "(program)") program += us;
    const where = areaOf(node.callFrame.url);
    const key = `${name || "(anonymous)"} ${where}${node.callFrame.url ? `:${node.callFrame.lineNumber + 1}` : ""}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    area.set(where, (area.get(where) ?? 0) + us);
    const svc = serviceOf(id);
    service.set(svc, (service.get(svc) ?? 0) + us);
  }
  const sorted = <K>(m: Map<K, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return {
    file,
    totalMs: total / 1000,
    busyMs: (total - idle) / 1000,
    idleMs: idle / 1000,
    gcMs: gc / 1000,
    programMs: program / 1000,
    byFunction: sorted(fn)
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000 })),
    byArea: sorted(area)
      .slice(0, top)
      .map(([a, us]) => ({ area: a, ms: us / 1000 })),
    byService: sorted(service).map(([s, us]) => ({ service: s, ms: us / 1000 })),
  };
}

function files(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (statSync(a).isDirectory()) {
      // one subdirectory per service; worker threads write profiles of their own (CPU.<date>.<pid>.<thread>...)
      for (const f of readdirSync(a, { recursive: true }).map(String).sort())
        if (f.endsWith(".cpuprofile")) out.push(join(a, f));
    } else out.push(a);
  }
  return out;
}

function print(s: ProfileSummary): void {
  const pct = (ms: number) => `${((100 * ms) / Math.max(1e-9, s.busyMs)).toFixed(1)}%`.padStart(6);
  const lines = [
    `\n### ${s.file.split("/").slice(-2).join("/")}: ${s.busyMs.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms sampled ` +
      `(GC ${s.gcMs.toFixed(0)} ms, (program) ${s.programMs.toFixed(0)} ms)`,
    "  by service (innermost services/<name> frame on the stack, % of busy):",
    ...s.byService.map((x) => `  ${pct(x.ms)} ${x.ms.toFixed(0).padStart(7)} ms  ${x.service}`),
    "  by area (self time, % of busy):",
    ...s.byArea.map((a) => `  ${pct(a.ms)} ${a.ms.toFixed(0).padStart(7)} ms  ${a.area}`),
    "  by function:",
    ...s.byFunction.map((f) => `  ${pct(f.ms)} ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}`),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const i = args.indexOf("--top");
  const top = i >= 0 ? Number(args[i + 1]) : 25;
  if (i >= 0) args.splice(i, 2);
  if (args.length === 0) {
    process.stderr.write("usage: node loadtest/dist/src/cpuprof.js <dir|file.cpuprofile>... [--top N]\n");
    process.exit(2);
  }
  for (const f of files(args)) print(summarizeProfile(f, top));
}
