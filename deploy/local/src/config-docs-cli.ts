#!/usr/bin/env node
/**
 * npm run docs:config  (= tsc -b && node deploy/local/dist/config-docs-cli.js)
 *
 * Writes docs/configuration.md from the services' config specs (see
 * config-docs.ts). Needs the services built (their dist/config.js).
 *
 *   --check      exit 1 instead of writing when the file is out of date
 *   --root DIR   repository root (default: found from this file)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { CONFIG_DOC, CONFIG_DOC_COMMAND, generateConfigDocs, repoRoot } from "./config-docs.js";

const { values } = parseArgs({
  options: { check: { type: "boolean", default: false }, root: { type: "string" } },
});
const root = resolve(values.root ?? repoRoot());
const file = join(root, CONFIG_DOC);
const text = await generateConfigDocs(root);
let current = "";
try {
  current = readFileSync(file, "utf8");
} catch {
  // first run
}
if (current === text) {
  process.stdout.write(`${CONFIG_DOC} is up to date\n`);
} else if (values.check) {
  process.stderr.write(`${CONFIG_DOC} is out of date: run \`${CONFIG_DOC_COMMAND}\`\n`);
  process.exitCode = 1;
} else {
  writeFileSync(file, text);
  process.stdout.write(`wrote ${CONFIG_DOC}\n`);
}
