#!/usr/bin/env node
/**
 * npm run loadtest -- --profile smoke|nominal|stress|soak|bench|<compiled scenario file>
 *                     [--target host:port] [--duration 30s] [--rate N] [options]
 *
 * Without --target it starts a LocalStack (all the services) itself and also
 * reports their CPU, memory and stage metrics. Exit code 0 when every
 * threshold passed (stress: when some step held), 1 when not, 2 on a usage
 * or start-up error.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseDuration } from "./duration.js";
import { loadProfile, type Outcome, PROFILES, runBench, runPlain, runStress, Session } from "./runner.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");

const USAGE = `usage: npm run loadtest -- --profile ${PROFILES.join("|")}|<file.js|file.json> [options]

  --profile NAME      built-in profile, a compiled scenario module (default export defineProfile(...)),
                      or a JSON file of k6-style { scenarios, thresholds } options
  --target HOST:PORT  gateway to load; without it a LocalStack is started (and observed)
  --rate N            Recommend requests/s (stress: the first step's rate)
  --duration D        run length, e.g. 30s, 2m (stress: length of each step)
  --scenarios a,b     run only these scenarios of the profile
  --step N            stress: rate increment per step          --max-rate N  stress: highest rate tried
  --seed N            traffic seed (default 1)                 --data DIR    dataset (default data/ml-latest-small)
  --catalog auto|on|off   catalog_upsert scenario: probe CatalogService (default), force, or skip
  --catalog-target HOST:PORT   where CatalogService is (default: the target)
  --base-port N       LocalStack base port (default: first free from 58151)     --env K=V     extra env for the services (repeatable)
  --layout colocated|processes   LocalStack layout: the gateway and its four stages in one process
                      (default, as npm start runs it) or a process per service (gRPC hops, as on Kubernetes)
  --colocate a,b      colocated: the stages the gateway's process hosts (default all four; e.g. prerank,rank,rerank)
  --threads a,b|none  colocated: hosted stages that run on a worker thread of their own (default recall, as npm start)
  --cpu-prof          profile the services' CPU (V8 sampler); summarise with node loadtest/dist/src/cpuprof.js DIR
  --results DIR       results root (default loadtest/results)  --quiet       no progress lines`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        profile: { type: "string" },
        target: { type: "string" },
        rate: { type: "string" },
        duration: { type: "string" },
        scenarios: { type: "string" },
        step: { type: "string" },
        "max-rate": { type: "string" },
        seed: { type: "string" },
        data: { type: "string" },
        catalog: { type: "string" },
        "catalog-target": { type: "string" },
        "base-port": { type: "string" },
        env: { type: "string", multiple: true },
        "cpu-prof": { type: "boolean" },
        layout: { type: "string" },
        colocate: { type: "string" },
        threads: { type: "string" },
        results: { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const str = (k: string) => values[k] as string | undefined;
  const num = (k: string) => {
    const v = str(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) fail(`--${k}: expected a non-negative number, got "${v}"`);
    return n;
  };
  const profileName = str("profile") ?? fail("--profile is required");
  const profile = await loadProfile(profileName).catch((err: Error) => fail(err.message));
  const duration = str("duration") ?? profile.defaults.duration;
  try {
    parseDuration(duration, "--duration");
  } catch (err) {
    fail((err as Error).message);
  }
  const params = { rate: num("rate") ?? profile.stress?.startRate ?? profile.defaults.rate, duration };
  const layout = str("layout") ?? "colocated";
  if (layout !== "processes" && layout !== "colocated") fail("--layout: processes or colocated");
  if (str("layout") && str("target")) fail("--layout describes a LocalStack started here: not with --target");
  const colocate = str("colocate")
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of colocate ?? [])
    if (!["recall", "prerank", "rank", "rerank"].includes(s)) fail(`--colocate: unknown stage "${s}"`);
  if (colocate && layout !== "colocated") fail("--colocate needs --layout colocated");
  // As npm start runs it: recall on its own thread in the colocated layout ("none": no thread).
  const recallHosted = (colocate ?? ["recall"]).includes("recall");
  const threads = (
    str("threads") ?? (layout === "colocated" && !str("target") && recallHosted ? "recall" : "none")
  )
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s && s !== "none");
  for (const s of threads)
    if (!(colocate ?? ["recall", "prerank", "rank", "rerank"]).includes(s))
      fail(`--threads: "${s}" is not a stage the gateway's process hosts`);
  if (threads.length > 0 && layout !== "colocated") fail("--threads needs --layout colocated");
  const catalog = str("catalog") ?? "auto";
  if (!["auto", "on", "off"].includes(catalog)) fail("--catalog: auto, on or off");
  const stackEnv: Record<string, string> = {};
  for (const kv of (values.env as string[] | undefined) ?? []) {
    const i = kv.indexOf("=");
    if (i <= 0) fail(`--env ${kv}: expected KEY=VALUE`);
    stackEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const resultsDir = str("results") ?? join(ROOT, "loadtest", "results");
  let cpuProfDir: string | undefined;
  if (values["cpu-prof"]) {
    const stamp = new Date()
      .toISOString()
      .replace(/\.\d+Z$/, "Z")
      .replace(/:/g, "-");
    const dir = join(resultsDir, `${stamp}-${profile.name}-cpuprof`);
    cpuProfDir = dir;
    mkdirSync(dir, { recursive: true });
    process.stderr.write(
      `services run with --cpu-prof; <service>/*.cpuprofile files (one per thread) go to ${dir} when they stop\n`,
    );
  }
  if (profile.bench && str("target"))
    fail("bench observes the services' CPU and metrics: run it without --target");
  const quiet = values.quiet === true;
  const log = (line: string) => process.stderr.write(`${line}\n`);

  const session = await Session.open({
    rootDir: ROOT,
    target: str("target"),
    basePort: num("base-port"),
    dataDir: str("data"),
    seed: num("seed"),
    catalog: catalog as "auto" | "on" | "off",
    catalogTarget: str("catalog-target"),
    stackEnv,
    layout,
    colocate,
    threads,
    cpuProfDir,
    resultsDir,
    log,
    progressEvery: quiet ? 0 : 5,
  }).catch((err: Error) => {
    log(`cannot start: ${err.message}`);
    process.exit(2);
  });
  const stop = () => {
    log("interrupted: stopping");
    void session.close().then(() => process.exit(130));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const scenarios = str("scenarios")
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  let outcome: Outcome;
  try {
    if (profile.bench) outcome = await runBench(session, profile, params);
    else if (profile.stress) {
      outcome = await runStress(
        session,
        profile,
        params,
        { stepRate: num("step"), maxRate: num("max-rate") },
        scenarios,
      );
    } else outcome = await runPlain(session, profile, params, scenarios);
  } finally {
    await session.close();
  }
  process.stdout.write(
    `${outcome.text}\n\nresults: ${outcome.dir}/ (summary.json, summary.txt, report.html)\n`,
  );
  if (cpuProfDir) process.stdout.write(`CPU profiles: node loadtest/dist/src/cpuprof.js ${cpuProfDir}\n`);
  return outcome.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);
