/**
 * The prerank service as a real process over gRPC, serving the real prerank
 * quick-profile version of RECSYS_TEST_MODEL_STORE (default
 * var/test-models; `bash scripts/test-models.sh` trains it): it keeps the
 * best `keep` candidates by the model's score, best first, with
 * prerank_score = sigmoid(logit) in (0, 1), and names the model version.
 * The expected order comes from the same model run in this process.
 */
import assert from "node:assert/strict";
import { mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { checkHealth } from "@recsys/local";
import {
  type Candidate,
  type ClientOf,
  ContentTable,
  createClient,
  currentVersion,
  decodeCandidates,
  EventType,
  encodeCandidates,
  encodeUser,
  loadCatalog,
  loadRankingModel,
  newCandidate,
  OnnxPool,
  PRERANK_SPEC,
  readVerifiedManifest,
  type UserView,
  versionDir,
} from "@recsys/shared";
import { PrerankService } from "@recsys/shared/gen/recsys/prerank/v1/prerank_service_pb.js";
import { type ServiceProcess, startServiceProcess } from "@recsys/shared/testing";
import { prerankScorer } from "./model.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const STORE = resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models");
const DATA = join(ROOT, "data", "ml-latest-small");
const BASE_PORT = Number(process.env.RECSYS_PRERANK_E2E_BASE_PORT ?? 56361);

/** The prerank service as its own process on `target`, serving the model store `store`. */
function startPrerank(target: string, store: string): Promise<ServiceProcess> {
  return startServiceProcess({
    rootDir: ROOT,
    service: "prerank",
    env: {
      RECSYS_PRERANK_ADDR: target,
      RECSYS_METRICS_PORT: "0",
      RECSYS_MODEL_STORE: store,
      RECSYS_DATA_DIR: DATA,
      RECSYS_LOG_LEVEL: "warn",
    },
    ready: async () => (await checkHealth(target)) === "SERVING",
  });
}

describe("prerank service over gRPC (real prerank version)", { concurrency: false }, () => {
  let prerank: ServiceProcess | undefined;
  let client: ClientOf<typeof PrerankService>;
  let pool: OnnxPool;
  let version: string;
  let user: UserView;
  /** The request's ~1,000 recall candidates (one the model never saw), none of a reserved channel. */
  let ids: string[];
  const candidates = () =>
    ids.map((id, i) => newCandidate(id, { recallScore: 1 - i / 2000, channels: ["swing"] }));
  /** The same candidates scored by the model in this process. */
  let expected: Candidate[];
  const target = `127.0.0.1:${BASE_PORT}`;

  before(async () => {
    const current = currentVersion(STORE, "prerank");
    assert.ok(current, `no prerank version in ${STORE}: run bash scripts/test-models.sh`);
    version = current;
    const { catalog, interactions } = await loadCatalog(DATA);
    const history = interactions
      .filter((r) => r.userId === "15")
      .map((r) => ({
        itemId: r.itemId,
        timestampMs: r.timestampMs,
        type: EventType.RATING,
        value: r.rating,
      }));
    user = { userId: "15", known: true, blockedItemIds: [], earlierSeenItemIds: [], history };
    ids = [...[...catalog.items.keys()].slice(0, 999), "prerank-e2e-unknown-item"];

    pool = new OnnxPool({ threads: 1, intraOpNumThreads: 1 });
    const content = ContentTable.load(STORE);
    const model = await loadRankingModel(
      PRERANK_SPEC,
      versionDir(STORE, "prerank", version),
      readVerifiedManifest(STORE, "prerank", version),
      pool,
      { catalog, content },
    );
    const ctx = { requestId: "spec", user, scene: "", query: "", deadline: Number.POSITIVE_INFINITY };
    const scored = await prerankScorer({ catalog, current: () => model, pool }).score(ctx, candidates());
    assert.equal(scored.version, version);
    expected = scored.candidates;

    prerank = await startPrerank(target, STORE);
    client = createClient(PrerankService, target);
  });

  after(async () => {
    client?.close();
    await prerank?.stop();
    await pool?.close();
  });

  it("keeps the best `keep` by model score, best first, prerank_score = sigmoid(logit) in (0, 1)", async () => {
    const keep = 50;
    const res = await client.prerank(
      { user: encodeUser(user), candidates: encodeCandidates(candidates()), keep },
      { timeoutMs: 5_000 },
    );
    assert.equal(res.modelVersion, version);
    assert.deepEqual(res.degradations, [], "the learned model answered");
    const kept = decodeCandidates(res.candidates);
    assert.equal(kept.length, keep);
    for (const c of kept) {
      assert.ok(c.prerankScore > 0 && c.prerankScore < 1, `${c.itemId}: ${c.prerankScore}`);
      assert.equal(c.score, c.prerankScore);
    }
    for (let i = 1; i < kept.length; i++) assert.ok(kept[i - 1]!.score >= kept[i]!.score, "best first");

    const byModel = [...expected].sort((a, b) => b.score - a.score);
    const threshold = byModel[keep - 1]!.score;
    const local = new Map(expected.map((c) => [c.itemId, c.score]));
    for (const c of kept) {
      assert.ok(
        Math.abs(c.prerankScore - local.get(c.itemId)!) < 1e-6,
        `${c.itemId}: same score as the model here`,
      );
      assert.ok(c.score >= threshold - 1e-6, `${c.itemId} is among the model's best ${keep}`);
    }
    const strictlyBetter = byModel.filter((c) => c.score > threshold + 1e-6).map((c) => c.itemId);
    const keptIds = new Set(kept.map((c) => c.itemId));
    for (const id of strictlyBetter) assert.ok(keptIds.has(id), `${id} scores above the cut and is kept`);
  });

  it("the default keep applies when the request says 0; an unknown candidate is scored, not rejected", async () => {
    const res = await client.prerank(
      { user: encodeUser(user), candidates: encodeCandidates(candidates().slice(-400)), keep: 0 },
      { timeoutMs: 5_000 },
    );
    const kept = decodeCandidates(res.candidates);
    assert.equal(kept.length, 300); // RECSYS_PRERANK_KEEP's default
    assert.equal(res.modelVersion, version);
    const unknown = expected.find((c) => c.itemId === "prerank-e2e-unknown-item")!;
    assert.ok(unknown.prerankScore > 0 && unknown.prerankScore < 1);
  });
});

describe("prerank service without a learned model", { concurrency: false }, () => {
  let prerank: ServiceProcess | undefined;
  let client: ClientOf<typeof PrerankService>;
  const target = `127.0.0.1:${BASE_PORT + 1}`;

  before(async () => {
    // A model store with the content vectors but no prerank version.
    const store = mkdtempSync(join(tmpdir(), "prerank-no-model-"));
    symlinkSync(join(STORE, "content"), join(store, "content"));
    prerank = await startPrerank(target, store);
    client = createClient(PrerankService, target);
  });

  after(async () => {
    client?.close();
    await prerank?.stop();
  });

  it("scores with its heuristic and says so: a fallback version and the prerank_no_model degradation", async () => {
    const user: UserView = {
      userId: "15",
      known: false,
      blockedItemIds: [],
      earlierSeenItemIds: [],
      history: [],
    };
    const candidates = ["1", "2", "3", "4"].map((id, i) => newCandidate(id, { recallScore: 1 - i / 10 }));
    const res = await client.prerank(
      { user: encodeUser(user), candidates: encodeCandidates(candidates), keep: 3 },
      { timeoutMs: 5_000 },
    );
    assert.match(res.modelVersion, /^fallback:/);
    assert.deepEqual(res.degradations, ["prerank_no_model"]);
    assert.equal(decodeCandidates(res.candidates).length, 3);
  });
});
