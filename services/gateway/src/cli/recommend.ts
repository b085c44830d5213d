/**
 * npm run recommend -- --user <id> [--query "..."] [--count 10] [--target 127.0.0.1:50051]
 * Calls the gateway over gRPC and prints a readable table.
 */
import { parseArgs } from "node:util";
import { createClient, isGrpcStatusError, loadItems, statusName } from "@recsys/shared";
import { RecommendService } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";

const { values } = parseArgs({
  options: {
    user: { type: "string" },
    query: { type: "string", default: "" },
    count: { type: "string", default: "10" },
    exclude: { type: "string", default: "" },
    target: { type: "string", default: process.env.RECSYS_GATEWAY_TARGET ?? "127.0.0.1:50051" },
    data: { type: "string", default: process.env.RECSYS_DATA_DIR ?? "data/ml-latest-small" },
    timeout: { type: "string", default: "2000" },
    json: { type: "boolean", default: false },
  },
});
if (!values.user) {
  process.stderr.write('usage: npm run recommend -- --user <id> [--query "text"] [--count N] [--json]\n');
  process.exit(2);
}

const client = createClient(RecommendService, values.target);
const titles = new Map<string, { title: string; genres: string }>();
try {
  for (const item of await loadItems(values.data)) {
    titles.set(item.itemId, {
      title: item.year ? `${item.title} (${item.year})` : item.title,
      genres: item.genres.join("|"),
    });
  }
} catch {
  // Titles are a nicety; ids still print without the dataset.
}

try {
  const started = performance.now();
  const res = await client.recommend(
    {
      userId: values.user,
      count: Number(values.count),
      query: values.query,
      excludeItemIds: values.exclude ? values.exclude.split(",") : [],
    },
    { timeoutMs: Number(values.timeout) },
  );
  const elapsed = performance.now() - started;
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify(res, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`,
    );
  } else {
    const rows = res.items.map((it, i) => {
      const meta = titles.get(it.itemId);
      return [
        String(i + 1),
        truncate(meta?.title ?? it.itemId, 42),
        truncate(meta?.genres ?? "", 28),
        it.score.toFixed(3),
        Object.entries(it.taskScores)
          .map(([k, v]) => `${k}=${v.toFixed(2)}`)
          .join(" "),
        it.channels.join(","),
        truncate(it.reason, 48),
      ];
    });
    printTable(["#", "title", "genres", "score", "tasks", "channels", "reason"], rows);
    process.stdout.write(
      `\nrequest ${res.requestId} · ${elapsed.toFixed(1)} ms · variant ${res.experimentVariant}\n` +
        `models: ${Object.entries(res.modelVersions)
          .map(([k, v]) => `${k}=${v}`)
          .join(", ")}\n` +
        `degradations: ${res.degradations.length > 0 ? res.degradations.join(", ") : "none"}\n`,
    );
  }
} catch (err) {
  if (isGrpcStatusError(err)) {
    process.stderr.write(`Recommend failed: ${statusName(err.code)}: ${err.details ?? err.message}\n`);
  } else {
    process.stderr.write(`Recommend failed: ${String(err)}\n`);
  }
  process.exitCode = 1;
} finally {
  client.close();
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${line(header)}\n${line(widths.map((w) => "-".repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
}
