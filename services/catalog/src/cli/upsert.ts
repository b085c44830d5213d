/**
 * npm run upsert -- --id <item id> --title "..." [--description "..."] [--genres A,B] [--year 2026]
 *                   [--vector image=0.1,0.2,...] [--target 127.0.0.1:50057]
 * Upserts one item through CatalogService.UpsertItems and prints the result.
 */
import { parseArgs } from "node:util";
import { createClient, isGrpcStatusError, statusName } from "@recsys/shared";
import { CatalogService } from "@recsys/shared/gen/recsys/catalog/v1/catalog_service_pb.js";

const { values } = parseArgs({
  options: {
    id: { type: "string" },
    title: { type: "string", default: "" },
    description: { type: "string", default: "" },
    genres: { type: "string", default: "" },
    year: { type: "string", default: "0" },
    vector: { type: "string", multiple: true, default: [] },
    target: { type: "string", default: process.env.RECSYS_CATALOG_TARGET ?? "127.0.0.1:50057" },
    timeout: { type: "string", default: "10000" },
  },
});
if (!values.id) {
  process.stderr.write(
    'usage: npm run upsert -- --id <item id> --title "..." [--description "..."] [--genres A,B] [--year N] [--vector image=0.1,0.2,...]\n',
  );
  process.exit(2);
}

const modalities = values.vector.map((spec) => {
  const [modality = "", list = ""] = spec.split("=");
  const floats = list.split(",").map(Number);
  return { modality, dim: floats.length, values: floats };
});
const client = createClient(CatalogService, values.target);
try {
  const res = await client.upsertItems(
    {
      items: [
        {
          itemId: values.id,
          title: values.title,
          description: values.description,
          genres: values.genres ? values.genres.split(",").map((g) => g.trim()) : [],
          year: Number(values.year),
          modalities,
        },
      ],
    },
    { timeoutMs: Number(values.timeout) },
  );
  for (const r of res.results) {
    const truncated = r.truncatedFields.length > 0 ? `; truncated: ${r.truncatedFields.join(", ")}` : "";
    process.stdout.write(`${r.itemId}: ${r.created ? "created" : "replaced"}${truncated}\n`);
  }
} catch (err) {
  process.stderr.write(
    isGrpcStatusError(err) ? `${statusName(err.code)}: ${err.details ?? err.message}\n` : `${String(err)}\n`,
  );
  process.exitCode = 1;
} finally {
  client.close();
}
