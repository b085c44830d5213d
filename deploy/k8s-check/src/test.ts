/**
 * Entry point for `node --test deploy/k8s-check/dist/`. Node's default
 * test-file patterns (test.js, *.test.js, test-*.js...) do not match our
 * *.spec.js files, so this file, which they do match, imports every spec.
 * scripts/test.sh runs the *.spec.js files directly and never loads this one.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const specs = readdirSync(here, { recursive: true, encoding: "utf8" })
  .filter((f) => f.endsWith(".spec.js"))
  .sort();
for (const spec of specs) await import(pathToFileURL(join(here, spec)).href);
