/**
 * `npm test` runs the smoke profile for real: its own LocalStack (every
 * service as a process) on a free base port, ~20 s of the full traffic mix at
 * a modest rate, thresholds asserted, stack stopped. About 30 s in all.
 * Needs `bash scripts/setup.sh` (data, Swing model); `npm test` does that.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { LocalStack } from "@recsys/local";
import { freeBasePort, loadProfile, runPlain, Session } from "./runner.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");

describe("load test: smoke profile against a LocalStack", { timeout: 90_000 }, () => {
  let stack: LocalStack | undefined;
  let session: Session | undefined;
  const results = mkdtempSync(join(tmpdir(), "recsys-smoke-"));
  const state = mkdtempSync(join(tmpdir(), "recsys-smoke-state-"));

  before(async () => {
    assert.ok(
      existsSync(join(ROOT, "data", "ml-latest-small", "interactions.tsv")),
      "run `bash scripts/setup.sh` first",
    );
    const basePort = await freeBasePort(Number(process.env.RECSYS_LOADTEST_BASE_PORT ?? 57051));
    stack = await LocalStack.start({
      rootDir: ROOT,
      basePort,
      logDir: join(ROOT, "var", "log", "loadtest-smoke"),
      stateDir: state,
    });
    session = await Session.open({ rootDir: ROOT, stack, resultsDir: results, progressEvery: 0 });
  });

  after(async () => {
    await session?.close();
    await stack?.stopAll();
    rmSync(results, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });

  it("holds its thresholds and writes the JSON summary and the HTML report", async (t) => {
    const profile = await loadProfile("smoke");
    const outcome = await runPlain(session!, profile, profile.defaults);
    const summary = JSON.parse(readFileSync(join(outcome.dir, "summary.json"), "utf8")) as {
      passed: boolean;
      thresholds: Array<{ key: string; expr: string; actual: number; ok: boolean }>;
      scenarios: Array<{ name: string; requests: number }>;
      skipped: Array<{ scenario: string; reason: string }>;
      stack?: { cpu: unknown[] };
      machineLoad?: { foreignPercentOfCore: number };
    };
    // Latency thresholds mean nothing when other work took the CPU (a shared 2-core
    // machine): then only errors, checks, drops and counts are held, and the test says so.
    const foreign = summary.machineLoad?.foreignPercentOfCore ?? 0;
    const contended = foreign > 50;
    const failed = summary.thresholds.filter(
      (x) => !x.ok && !(contended && x.key.startsWith("grpc_req_duration")),
    );
    if (contended && !summary.passed) {
      t.diagnostic(
        `other processes used ${foreign.toFixed(0)}% of a core: latency thresholds reported, not asserted`,
      );
    }
    assert.deepEqual(failed, [], `smoke thresholds failed:\n${outcome.text}`);
    if (!contended) assert.equal(summary.passed, true);
    const names = summary.scenarios.map((s) => s.name);
    for (const n of ["recommend", "recommend_query", "feedback"]) assert.ok(names.includes(n), `${n} ran`);
    // The catalog scenario runs only where CatalogService exists; either way it is accounted for.
    assert.ok(
      names.includes("catalog_upsert") || summary.skipped.some((s) => s.scenario === "catalog_upsert"),
    );
    assert.equal(summary.stack?.cpu.length, stack!.services.length, "CPU of every service is reported");
    const html = readFileSync(join(outcome.dir, "report.html"), "utf8");
    assert.match(html, /<svg/);
    assert.doesNotMatch(html, /<(script|link)\b|src="http/, "self-contained");
  });
});
