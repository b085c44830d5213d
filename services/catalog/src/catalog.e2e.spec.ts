/**
 * End to end: the catalog service with the whole funnel on loopback. A
 * brand-new item upserted through gRPC reaches recall's content index,
 * prerank, rank and rerank through the items topic and is recommended to a
 * user whose history it matches (the `fresh` channel) within seconds; a
 * free-text query returns items whose text matches it (the `query`
 * channel). Needs `bash scripts/setup.sh` (data, encoder, content
 * embeddings) and `bash scripts/test-models.sh`; `npm test` does both.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { status } from "@grpc/grpc-js";
import { checkHealth, LocalStack } from "@recsys/local";
import { type ClientOf, createClient, loadItems } from "@recsys/shared";
import { CatalogService } from "@recsys/shared/gen/recsys/catalog/v1/catalog_service_pb.js";
import { RecommendService } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const DATA = join(ROOT, "data", "ml-latest-small");
const BASE_PORT = Number(process.env.RECSYS_CATALOG_E2E_BASE_PORT ?? 56251);
/** A user whose recent positive ratings are all animated children's films (MovieLens user 646). */
const ANIMATION_FAN = "646";

type GrpcError = { code: number; details: string };
const isCode = (code: number, pattern?: RegExp) => (e: unknown) =>
  (e as GrpcError).code === code && (!pattern || pattern.test((e as GrpcError).details));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("catalog end to end (upsert -> items topic -> funnel)", { concurrency: false }, () => {
  let stack: LocalStack;
  let stateDir: string;
  let catalog: ClientOf<typeof CatalogService>;
  let recommend: ClientOf<typeof RecommendService>;
  const genres = new Map<string, string[]>();
  const titles = new Map<string, string>();

  before(async () => {
    for (const item of await loadItems(DATA)) {
      genres.set(item.itemId, [...item.genres]);
      titles.set(item.itemId, item.title);
    }
    stateDir = mkdtempSync(join(tmpdir(), "recsys-catalog-e2e-"));
    // Budgets ten times the defaults: this suite tests what the content channels return, not latency
    // (the gateway suites and the benchmarks do), and must not fail on a busy 2-core machine.
    const funnelConfig = join(stateDir, "funnel.json");
    writeFileSync(
      funnelConfig,
      JSON.stringify({
        funnel: {
          totalBudgetMs: 1_000,
          recall: { budgetMs: 250 },
          prerank: { budgetMs: 150 },
          rank: { budgetMs: 400 },
          rerank: { budgetMs: 100 },
        },
      }),
    );
    stack = await LocalStack.start({
      rootDir: ROOT,
      basePort: BASE_PORT,
      modelStore: resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models"),
      logDir: join(ROOT, "var", "log", "catalog-e2e"),
      stateDir,
      serviceEnv: {
        gateway: { RECSYS_FUNNEL_CONFIG: funnelConfig },
        recall: { RECSYS_RECALL_CHANNEL_TIMEOUT_MS: "220" },
      },
    });
    catalog = createClient(CatalogService, stack.target("catalog"));
    recommend = createClient(RecommendService, stack.gatewayTarget);
  });

  after(async () => {
    catalog?.close();
    recommend?.close();
    await stack?.stopAll();
  });

  it("a brand-new item is recommended through `fresh` to a user whose history it matches, within seconds", async () => {
    const itemId = `e2e-new-animation-${process.pid}`;
    const before = await recommend.recommend({ userId: ANIMATION_FAN, count: 20 }, { timeoutMs: 3_000 });
    assert.ok(!before.items.some((i) => i.itemId === itemId));
    const upserted = Date.now();
    const res = await catalog.upsertItems(
      {
        items: [
          {
            itemId,
            title: "The Toy Kingdom",
            description: "An animated adventure for children: toys come to life and find their way home.",
            genres: ["Adventure", "Animation", "Children", "Comedy"],
            year: 2026,
          },
        ],
      },
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(
      res.results.map((r) => [r.itemId, r.created, r.truncatedFields]),
      [[itemId, true, []]],
    );
    let found: (typeof before.items)[number] | undefined;
    while (!found && Date.now() - upserted < 10_000) {
      const out = await recommend.recommend({ userId: ANIMATION_FAN, count: 20 }, { timeoutMs: 3_000 });
      found = out.items.find((i) => i.itemId === itemId);
      if (!found) await sleep(200);
    }
    const seconds = (Date.now() - upserted) / 1000;
    assert.ok(found, "the new item reached the user's list within 10 s");
    assert.ok(found.channels.includes("fresh"), `channels ${found.channels}`);
    assert.match(found.reason, /^new/);
    process.stderr.write(`[catalog e2e] upsert -> recommended in ${seconds.toFixed(2)} s\n`);
    // A user without history gets no fresh candidates (nothing to match the item against).
    const stranger = await recommend.recommend({ userId: "nobody-e2e", count: 20 }, { timeoutMs: 3_000 });
    assert.ok(!stranger.items.some((i) => i.channels.includes("fresh")));
  });

  it("a query returns items whose text matches it, with the reason naming the query", async () => {
    const res = await recommend.recommend(
      { userId: ANIMATION_FAN, count: 10, query: "space adventure" },
      { timeoutMs: 3_000 },
    );
    assert.equal(res.items.length, 10);
    assert.deepEqual(res.degradations, []);
    const spacey = (id: string) =>
      /space|star|galax|planet|moon|alien|mars/i.test(titles.get(id) ?? "") ||
      (genres.get(id) ?? []).includes("Sci-Fi");
    for (const item of res.items) {
      assert.ok(item.channels.includes("query"), `${titles.get(item.itemId)}: ${item.channels}`);
      assert.equal(item.reason, 'matches your query "space adventure"');
    }
    const matching = res.items.filter((i) => spacey(i.itemId)).length;
    assert.ok(
      matching >= 7,
      `${matching}/10 space titles: ${res.items.map((i) => titles.get(i.itemId)).join("; ")}`,
    );
    // Without a query the channel contributes nothing.
    const plain = await recommend.recommend({ userId: ANIMATION_FAN, count: 20 }, { timeoutMs: 3_000 });
    assert.ok(!plain.items.some((i) => i.channels.includes("query")));
  });

  it("upserts are idempotent by item id: the same item again replaces it (created false)", async () => {
    const item = { itemId: `e2e-idem-${process.pid}`, title: "Quiet Harbour", genres: ["Drama"], year: 2025 };
    const first = await catalog.upsertItems({ items: [item] }, { timeoutMs: 10_000 });
    const second = await catalog.upsertItems(
      { items: [{ ...item, title: "Quiet Harbour (director's cut)" }] },
      { timeoutMs: 10_000 },
    );
    assert.equal(first.results[0]!.created, true);
    assert.equal(second.results[0]!.created, false);
    const dataset = await catalog.upsertItems(
      { items: [{ itemId: "1", title: "Toy Story", genres: ["Animation"], year: 1995 }] },
      { timeoutMs: 10_000 },
    );
    assert.equal(dataset.results[0]!.created, false, "dataset items exist before any upsert");
    const lines = readFileSync(join(stateDir, "catalog", "items.jsonl"), "utf8")
      .trimEnd()
      .split("\n");
    const versions = lines.map(
      // each line: <crc32, 8 hex> TAB <JSON> (store.ts)
      (l) => JSON.parse(l.slice(9)) as { itemId: string; title: string; createdAtMs: number },
    );
    const mine = versions.filter((v) => v.itemId === item.itemId);
    assert.equal(mine.length, 2, "append-only store: the latest line wins");
    assert.equal(mine[1]!.title, "Quiet Harbour (director's cut)");
    assert.equal(mine[1]!.createdAtMs, mine[0]!.createdAtMs, "an update keeps the creation time");
  });

  it("flags text cut by the encoder's limit, and rejects bad input naming the field", async () => {
    const long = await catalog.upsertItems(
      {
        items: [
          {
            itemId: `e2e-long-${process.pid}`,
            title: "A Long Story",
            description: "and then the story goes on ".repeat(100),
            genres: ["Drama"],
          },
        ],
      },
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(long.results[0]!.truncatedFields, ["description"]);
    const cases: Array<[string, Parameters<typeof catalog.upsertItems>[0], RegExp]> = [
      ["no items", { items: [] }, /^items: must not be empty/],
      ["empty id", { items: [{ itemId: "", title: "x" }] }, /^items\[0\]\.item_id: /],
      [
        "wrong dimension",
        {
          items: [
            { itemId: "x", title: "x", modalities: [{ modality: "image", dim: 3, values: [1, 2, 3] }] },
          ],
        },
        /^items\[0\]\.modalities\[0\]\.dim: must be 512/,
      ],
      [
        "NaN",
        {
          items: [
            {
              itemId: "x",
              modalities: [
                {
                  modality: "video",
                  dim: 256,
                  values: Array.from({ length: 256 }, (_, k) => (k === 9 ? Number.NaN : 1)),
                },
              ],
            },
          ],
        },
        /^items\[0\]\.modalities\[0\]\.values\[9\]: must be finite/,
      ],
      [
        "unknown modality",
        { items: [{ itemId: "x", modalities: [{ modality: "smell", dim: 1, values: [1] }] }] },
        /^items\[0\]\.modalities\[0\]\.modality: unknown modality/,
      ],
    ];
    for (const [name, req, pattern] of cases) {
      await assert.rejects(
        catalog.upsertItems(req, { timeoutMs: 5_000 }),
        isCode(status.INVALID_ARGUMENT, pattern),
        name,
      );
    }
  });
});

describe("catalog without its encoder", () => {
  let child: ChildProcess | undefined;

  after(() => {
    child?.kill("SIGTERM");
  });

  it("reports NOT_SERVING and refuses upserts with UNAVAILABLE", async () => {
    const port = BASE_PORT + 20;
    const state = mkdtempSync(join(tmpdir(), "recsys-catalog-noencoder-"));
    child = spawn(process.execPath, [join(ROOT, "services", "catalog", "dist", "main.js")], {
      env: {
        ...process.env,
        RECSYS_CATALOG_ADDR: `127.0.0.1:${port}`,
        RECSYS_ENCODER_DIR: join(state, "no-encoder-here"),
        RECSYS_BUS_DIR: join(state, "bus"),
        RECSYS_CATALOG_STORE_DIR: join(state, "catalog"),
        RECSYS_DATA_DIR: DATA,
        RECSYS_METRICS_PORT: "0",
        RECSYS_LOG_LEVEL: "error",
        RECSYS_KAFKA_BROKERS: "",
        RECSYS_EXIT_WITH_PARENT: "1",
      },
      stdio: "ignore",
    });
    const target = `127.0.0.1:${port}`;
    let health = "UNREACHABLE";
    for (let i = 0; i < 100 && health === "UNREACHABLE"; i++) {
      await sleep(100);
      health = await checkHealth(target);
    }
    await sleep(500); // give a (wrong) encoder load the chance to finish
    assert.equal(await checkHealth(target), "NOT_SERVING");
    const client = createClient(CatalogService, target);
    try {
      await assert.rejects(
        client.upsertItems({ items: [{ itemId: "x", title: "x" }] }, { timeoutMs: 2_000 }),
        isCode(status.UNAVAILABLE),
      );
    } finally {
      client.close();
    }
  });
});
