/**
 * The model store layout shared by the Python trainer and the TypeScript
 * services:  <store>/<model>/<version>/{manifest.json, ...artifacts}
 * and <store>/<model>/CURRENT holding the version name, replaced atomically
 * (write to a temporary file, then rename).
 */
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface ModelManifest {
  readonly model: string;
  readonly version: string;
  readonly created_at: string;
  /** Free-form: training data range, parameters, metrics. */
  readonly [key: string]: unknown;
  /** File name -> sha256 hex. */
  readonly files: Record<string, string>;
}

export class ModelStoreError extends Error {}

export function currentVersion(store: string, model: string): string | undefined {
  const pointer = join(store, model, "CURRENT");
  if (!existsSync(pointer)) return undefined;
  const version = readFileSync(pointer, "utf8").trim();
  return version.length > 0 ? version : undefined;
}

export function versionDir(store: string, model: string, version: string): string {
  return join(store, model, version);
}

export function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Reads a version's manifest and verifies every file's checksum. */
export function readVerifiedManifest(store: string, model: string, version: string): ModelManifest {
  const dir = versionDir(store, model, version);
  const manifestPath = join(dir, "manifest.json");
  if (!existsSync(manifestPath)) throw new ModelStoreError(`${model}/${version}: manifest.json missing`);
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as ModelManifest;
  if (manifest.model !== model || manifest.version !== version) {
    throw new ModelStoreError(`${model}/${version}: manifest names ${manifest.model}/${manifest.version}`);
  }
  for (const [file, expected] of Object.entries(manifest.files ?? {})) {
    const path = join(dir, file);
    if (!existsSync(path)) throw new ModelStoreError(`${model}/${version}: ${file} missing`);
    const actual = sha256File(path);
    if (actual !== expected) throw new ModelStoreError(`${model}/${version}: ${file} checksum mismatch`);
  }
  return manifest;
}

/** Writes a new version (files already in place) and points CURRENT at it atomically. */
export function publishVersion(
  store: string,
  model: string,
  version: string,
  fileNames: readonly string[],
  extra: Record<string, unknown> = {},
): ModelManifest {
  const dir = versionDir(store, model, version);
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {};
  for (const f of fileNames) files[f] = sha256File(join(dir, f));
  const manifest: ModelManifest = { model, version, created_at: new Date().toISOString(), ...extra, files };
  writeFileSync(join(dir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const tmp = join(store, model, `.CURRENT.${process.pid}.tmp`);
  writeFileSync(tmp, `${version}\n`);
  renameSync(tmp, join(store, model, "CURRENT"));
  return manifest;
}

/**
 * Copies a published version of `model` (CURRENT by default) from `fromStore`
 * to `toStore` as `newVersion`, lets `change` edit the copy's files or
 * manifest (keys besides model, version, created_at and files are kept),
 * then publishes it with fresh checksums and points CURRENT at it. Tests use
 * it to publish damaged or mismatched versions that pass the checksum check.
 */
export function copyVersion(
  fromStore: string,
  toStore: string,
  model: string,
  newVersion: string,
  change?: (dir: string, manifest: Record<string, unknown>) => void,
  fromVersion = currentVersion(fromStore, model),
): ModelManifest {
  if (!fromVersion) throw new ModelStoreError(`${model}: no CURRENT version in ${fromStore}`);
  const to = versionDir(toStore, model, newVersion);
  cpSync(versionDir(fromStore, model, fromVersion), to, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(to, "manifest.json"), "utf8")) as Record<string, unknown>;
  change?.(to, manifest);
  const { model: _m, version: _v, created_at: _c, files, ...rest } = manifest;
  return publishVersion(toStore, model, newVersion, Object.keys(files as Record<string, string>), rest);
}

/** A sortable version id: UTC timestamp plus a short suffix. */
export function newVersionId(suffix = ""): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return suffix ? `${stamp}-${suffix}` : stamp;
}
