/**
 * The rank service as a real process over gRPC, serving the real em3
 * quick-profile version of RECSYS_TEST_MODEL_STORE (default
 * var/test-models; `bash scripts/test-models.sh` trains it): the rank RPC
 * contract (same count and order, click and like in (0, 1), the em3
 * version named, unknown candidates scored through the OOV index), and the
 * CPU fallback when the CUDA execution provider is requested on a machine
 * without it (logged and exported as recsys_onnx_execution_provider).
 */
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { checkHealth } from "@recsys/local";
import {
  type ClientOf,
  createClient,
  currentVersion,
  decodeCandidates,
  EventType,
  encodeCandidates,
  encodeUser,
  loadInteractions,
  newCandidate,
} from "@recsys/shared";
import { RankService } from "@recsys/shared/gen/recsys/rank/v1/rank_service_pb.js";
import { type ServiceProcess, startServiceProcess } from "@recsys/shared/testing";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const STORE = resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models");
const DATA = join(ROOT, "data", "ml-latest-small");
const BASE_PORT = Number(process.env.RECSYS_RANK_E2E_BASE_PORT ?? 56351);

interface RankProcess extends ServiceProcess {
  readonly target: string;
  readonly metricsPort: number;
}

/** Starts the rank service on `port` (metrics on port + 100) and waits until it reports SERVING. */
async function startRank(port: number, env: Record<string, string> = {}): Promise<RankProcess> {
  const target = `127.0.0.1:${port}`;
  const metricsPort = port + 100;
  const p = await startServiceProcess({
    rootDir: ROOT,
    service: "rank",
    env: {
      RECSYS_RANK_ADDR: target,
      RECSYS_METRICS_PORT: String(metricsPort),
      RECSYS_MODEL_STORE: STORE,
      RECSYS_DATA_DIR: DATA,
      RECSYS_LOG_LEVEL: "info",
      ...env,
    },
    ready: async () => (await checkHealth(target)) === "SERVING",
  });
  return Object.assign(p, { target, metricsPort });
}

const scrape = async (p: RankProcess) => (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text();

describe("rank service over gRPC (real em3 version)", { concurrency: false }, () => {
  let rank: RankProcess | undefined;
  let client: ClientOf<typeof RankService>;
  let version: string;
  let user: ReturnType<typeof encodeUser>;
  let itemIds: string[];

  before(async () => {
    const current = currentVersion(STORE, "em3");
    assert.ok(current, `no em3 version in ${STORE}: run bash scripts/test-models.sh`);
    version = current;
    const interactions = await loadInteractions(DATA);
    const history = interactions
      .filter((r) => r.userId === "15")
      .map((r) => ({
        itemId: r.itemId,
        timestampMs: r.timestampMs,
        type: EventType.RATING,
        value: r.rating,
      }));
    user = encodeUser({ userId: "15", known: true, blockedItemIds: [], earlierSeenItemIds: [], history });
    itemIds = [...new Set(interactions.slice(0, 5_000).map((r) => r.itemId))].slice(0, 299);
    rank = await startRank(BASE_PORT);
    client = createClient(RankService, rank.target);
  });

  after(async () => {
    client?.close();
    await rank?.stop();
  });

  it("keeps the request's count and order; click and like in (0, 1); names the em3 version", async () => {
    // Shuffled so that order is not the catalogue's; one id the model and the catalogue never saw.
    const ids = [...itemIds.slice(150), "rank-e2e-unknown-item", ...itemIds.slice(0, 150)];
    const res = await client.rank(
      {
        user,
        candidates: encodeCandidates(ids.map((id, i) => newCandidate(id, { prerankScore: 1 / (1 + i) }))),
      },
      { timeoutMs: 5_000 },
    );
    assert.equal(res.modelVersion, version);
    assert.deepEqual(res.degradations, []);
    const out = decodeCandidates(res.candidates);
    assert.deepEqual(
      out.map((c) => c.itemId),
      ids,
    );
    for (const c of out) {
      const { click, like } = c.taskScores;
      assert.ok(click! > 0 && click! < 1, `${c.itemId} click ${click}`);
      assert.ok(like! > 0 && like! < 1, `${c.itemId} like ${like}`);
      assert.equal(c.score, click);
    }
    // The scores depend on the user: a stranger without history gets other ones.
    const stranger = await client.rank(
      {
        user: encodeUser({
          userId: "nobody",
          known: false,
          blockedItemIds: [],
          earlierSeenItemIds: [],
          history: [],
        }),
        candidates: encodeCandidates(ids.map((id) => newCandidate(id))),
      },
      { timeoutMs: 5_000 },
    );
    const theirs = decodeCandidates(stranger.candidates);
    assert.ok(theirs.some((c, i) => Math.abs(c.score - out[i]!.score) > 1e-6));
  });

  it("scores an unknown candidate through the OOV index instead of rejecting it, and counts it", async () => {
    const res = await client.rank(
      { user, candidates: encodeCandidates([newCandidate("oov-only-1"), newCandidate("oov-only-2")]) },
      { timeoutMs: 5_000 },
    );
    assert.equal(res.modelVersion, version);
    const out = decodeCandidates(res.candidates);
    assert.deepEqual(
      out.map((c) => c.itemId),
      ["oov-only-1", "oov-only-2"],
    );
    assert.ok(out.every((c) => c.taskScores.click! > 0 && c.taskScores.click! < 1));
    const metrics = await scrape(rank!);
    const m = /recsys_oov_candidates_total\{[^}]*model="em3"[^}]*\} (\d+)/.exec(metrics);
    assert.ok(m && Number(m[1]) >= 3, `OOV counter: ${m?.[0]}`);
    assert.match(
      metrics,
      /recsys_onnx_execution_provider\{[^}]*model="em3",requested="cpu",provider="cpu"[^}]*\} 1/,
    );
  });
});

describe("rank service asked for CUDA on a machine without it", () => {
  let rank: RankProcess | undefined;

  after(async () => {
    await rank?.stop();
  });

  it("serves on the CPU provider and says so in its log and metrics", async (t) => {
    rank = await startRank(BASE_PORT + 1, { RECSYS_RANK_EXECUTION_PROVIDER: "cuda" });
    const metrics = await scrape(rank);
    const line = /recsys_onnx_execution_provider\{[^}]*model="em3"[^}]*\} 1/.exec(metrics)?.[0] ?? "";
    if (line.includes('provider="cuda"')) {
      t.skip("this machine has a working CUDA provider: nothing to fall back from");
      return;
    }
    assert.match(line, /requested="cuda",provider="cpu"/);
    const logLine = rank
      .log()
      .split("\n")
      .find((l) => l.includes("onnx execution provider"));
    assert.ok(logLine, "the provider choice is logged");
    const entry = JSON.parse(logLine) as Record<string, unknown>;
    assert.equal(entry.requested, "cuda");
    assert.equal(entry.provider, "cpu");
    assert.equal(typeof entry.reason, "string");
    const client = createClient(RankService, rank.target);
    try {
      const res = await client.rank(
        {
          user: encodeUser({
            userId: "15",
            known: true,
            blockedItemIds: [],
            earlierSeenItemIds: [],
            history: [],
          }),
          candidates: encodeCandidates([newCandidate("1"), newCandidate("2")]),
        },
        { timeoutMs: 5_000 },
      );
      assert.equal(res.modelVersion, currentVersion(STORE, "em3"));
      assert.deepEqual(res.degradations, []);
    } finally {
      client.close();
    }
  });
});
