/**
 * Recall's live index of item content vectors (all-MiniLM-L6-v2 text
 * embeddings, or the catalog's fused vectors, unit length): the `content`
 * model of the model store for the dataset's items, grown and updated by
 * ItemUpdate events from the catalog service.
 *
 * Search is inner product (= cosine for unit vectors) on an HNSW graph
 * (hnswlib-node, "ip" space). Building it for 9k × 384-d takes 2-4 s of
 * CPU, so it is built on a worker thread over a snapshot of the vectors and
 * loaded when done (buildGraphInWorker); until it covers every vector,
 * searches scan the vectors exactly, so answers are right from the first
 * request, only slower. New items join the
 * graph as they arrive (`resizeIndex` doubles its capacity when full); an
 * updated item's vector is replaced in place (hnswlib's addPoint on an
 * existing label).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import hnswlib from "hnswlib-node";
import type { GraphJob } from "./graph-worker.js";

export interface ContentIndexOptions {
  readonly m?: number;
  readonly efConstruction?: number;
  readonly efSearch?: number;
}

export interface ContentHit {
  readonly label: number;
  /** Inner product with the query. */
  readonly score: number;
}

export class ContentIndex {
  private vectors: Float32Array;
  private capacity: number;
  private count = 0;
  private readonly labels = new Map<string, number>();
  private readonly ids: string[] = [];
  private graph: hnswlib.HierarchicalNSW;
  /** Labels [0, graphed) are in the graph. */
  private graphed = 0;
  private building: Promise<void> | undefined;
  /** Labels replaced while a worker builds the graph from a snapshot (re-added once it is loaded). */
  private changedDuringSnapshot: Set<number> | undefined;
  private readonly m: number;
  private readonly efConstruction: number;
  private readonly efSearch: number;
  /** Set by the first buildGraph(): from then on new items join the graph as they arrive. */
  private live = false;

  constructor(
    readonly dim: number,
    initialCapacity = 1024,
    options: ContentIndexOptions = {},
  ) {
    this.capacity = Math.max(16, initialCapacity);
    this.vectors = new Float32Array(this.capacity * dim);
    this.m = options.m ?? 16;
    this.efConstruction = options.efConstruction ?? 100;
    this.efSearch = options.efSearch ?? 200;
    this.graph = new hnswlib.HierarchicalNSW("ip", dim);
    this.graph.initIndex(this.capacity, this.m, this.efConstruction, 100);
    this.graph.setEf(this.efSearch);
  }

  /** An index over `itemIds` (row i of `vectors` is item i); the graph is not built yet. */
  static of(
    itemIds: readonly string[],
    vectors: Float32Array,
    dim: number,
    options: ContentIndexOptions = {},
  ): ContentIndex {
    const index = new ContentIndex(dim, Math.ceil(itemIds.length * 1.25) + 64, options);
    for (const [i, id] of itemIds.entries()) index.upsert(id, vectors.subarray(i * dim, (i + 1) * dim));
    return index;
  }

  get size(): number {
    return this.count;
  }

  /** True once every vector is in the HNSW graph. */
  get graphComplete(): boolean {
    return this.graphed === this.count;
  }

  labelOf(itemId: string): number | undefined {
    return this.labels.get(itemId);
  }

  itemId(label: number): string {
    return this.ids[label]!;
  }

  /** A view of the item's vector (valid until the next upsert). */
  vectorOf(label: number): Float32Array {
    return this.vectors.subarray(label * this.dim, (label + 1) * this.dim);
  }

  /** Adds or replaces an item's vector; returns its label. */
  upsert(itemId: string, vector: ArrayLike<number>): number {
    if (vector.length !== this.dim)
      throw new Error(`content vector of ${itemId} has ${vector.length} values, the index ${this.dim}`);
    let label = this.labels.get(itemId);
    if (label === undefined) {
      label = this.count++;
      if (label >= this.capacity) this.grow(this.capacity * 2);
      this.labels.set(itemId, label);
      this.ids.push(itemId);
    }
    this.vectors.set(vector, label * this.dim);
    this.changedDuringSnapshot?.add(label);
    // In the graph already: update it. Next in line on a live graph: add it. Otherwise buildGraph() will.
    if (label < this.graphed || (this.live && !this.building && label === this.graphed))
      this.addToGraph(label);
    return label;
  }

  private grow(capacity: number): void {
    const next = new Float32Array(capacity * this.dim);
    next.set(this.vectors);
    this.vectors = next;
    this.capacity = capacity;
    this.graph.resizeIndex(capacity);
  }

  private addToGraph(label: number): void {
    this.graph.addPoint(Array.from(this.vectorOf(label)), label);
    if (label === this.graphed) this.graphed++;
  }

  /**
   * Builds the graph for every vector not in it yet, in slices of about
   * `sliceMs` of CPU between event-loop turns (a request waits at most one
   * slice). Resolves when the graph covers everything.
   */
  buildGraph(sliceMs = 5): Promise<void> {
    this.live = true;
    this.building ??= (async () => {
      while (this.graphed < this.count) {
        const started = performance.now();
        do this.addToGraph(this.graphed);
        while (this.graphed < this.count && performance.now() - started < sliceMs);
        await new Promise<void>((r) => setImmediate(r));
      }
    })().finally(() => {
      this.building = undefined;
    });
    return this.building;
  }

  /**
   * Builds the graph for the vectors present now on a worker thread, loads
   * it (a file, ~15 ms for 9k items), then adds what arrived or changed
   * meanwhile on this thread. The event loop stays free while the worker
   * works. With `cachePath` (a name that identifies the vectors and the
   * graph parameters), a graph saved there by an earlier start is loaded
   * instead, and a new one is saved there. Rejects when the worker fails
   * (call buildGraph).
   */
  async buildGraphInWorker(cachePath?: string): Promise<{ cached: boolean }> {
    if (this.live || this.graphed > 0) {
      await this.buildGraph();
      return { cached: false };
    }
    const count = this.count;
    this.changedDuringSnapshot = new Set();
    let cached = false;
    try {
      // A graph file is read only when it is whole and ours (its sha256 is in a side file): hnswlib
      // reads a damaged file into a state that can crash the process later.
      let loaded = cachePath ? readCachedGraph(cachePath, this.dim, count) : undefined;
      cached = loaded !== undefined;
      if (!loaded) {
        const path = cachePath
          ? `${cachePath}.${process.pid}.tmp`
          : join(tmpdir(), `recsys-content-graph-${process.pid}-${Date.now()}.hnsw`);
        if (cachePath) mkdirSync(dirname(cachePath), { recursive: true });
        const snapshot = this.vectors.slice(0, count * this.dim);
        const job: GraphJob = {
          dim: this.dim,
          count,
          capacity: Math.max(count, 16),
          m: this.m,
          efConstruction: this.efConstruction,
          path,
          vectors: snapshot.buffer,
        };
        try {
          await new Promise<void>((resolve, reject) => {
            const worker = new Worker(new URL("./graph-worker.js", import.meta.url), {
              workerData: job,
              transferList: [snapshot.buffer],
            });
            worker.once("message", () => resolve());
            worker.once("error", reject);
            worker.once("exit", (code) => reject(new Error(`graph worker exited with code ${code}`)));
          });
          loaded = new hnswlib.HierarchicalNSW("ip", this.dim);
          loaded.readIndexSync(path);
          if (cachePath) {
            writeFileSync(`${path}.sha256`, sha256File(path));
            renameSync(path, cachePath); // whole files only: readers never see half a graph
            renameSync(`${path}.sha256`, `${cachePath}.sha256`);
          }
        } finally {
          rmSync(path, { force: true });
          rmSync(`${path}.sha256`, { force: true });
        }
      }
      this.graph = loaded;
      this.graph.setEf(this.efSearch);
      if (this.graph.getMaxElements() < this.capacity) this.graph.resizeIndex(this.capacity);
      this.graphed = count;
      for (const label of this.changedDuringSnapshot) if (label < count) this.addToGraph(label);
    } finally {
      this.changedDuringSnapshot = undefined;
    }
    await this.buildGraph(); // whatever arrived meanwhile
    return { cached };
  }

  /**
   * The `k` best items by inner product with `query` among those `accept`
   * allows (all when omitted): on the HNSW graph once complete, by an exact
   * scan before.
   */
  search(query: Float32Array, k: number, accept?: (label: number) => boolean): ContentHit[] {
    const want = Math.min(k, this.count);
    if (want <= 0) return [];
    if (!this.graphComplete) return this.exact(query, want, accept);
    const { neighbors, distances } = this.graph.searchKnn(Array.from(query), want, accept);
    // "ip" distance is 1 - inner product.
    return neighbors.map((label, i) => ({ label, score: 1 - distances[i]! }));
  }

  /** Exact top-`k` over `labels` (all items when omitted). */
  exact(
    query: Float32Array,
    k: number,
    accept?: (label: number) => boolean,
    labels?: Iterable<number>,
  ): ContentHit[] {
    const hits: ContentHit[] = [];
    const consider = (label: number) => {
      if (accept && !accept(label)) return;
      hits.push({ label, score: this.dot(query, label) });
    };
    if (labels) for (const label of labels) consider(label);
    else for (let label = 0; label < this.count; label++) consider(label);
    hits.sort((a, b) => b.score - a.score || a.label - b.label);
    return hits.slice(0, k);
  }

  /** Inner product of `query` with an item's vector. */
  dot(query: Float32Array, label: number): number {
    const v = this.vectors;
    const off = label * this.dim;
    let s = 0;
    for (let d = 0; d < this.dim; d++) s += query[d]! * v[off + d]!;
    return s;
  }
}

function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** The graph saved at `path` when it is whole (its sha256 matches) and holds `count` points; else undefined. */
function readCachedGraph(path: string, dim: number, count: number): hnswlib.HierarchicalNSW | undefined {
  const sidecar = `${path}.sha256`;
  if (!existsSync(path) || !existsSync(sidecar)) return undefined;
  try {
    if (readFileSync(sidecar, "utf8").trim() !== sha256File(path)) throw new Error("checksum mismatch");
    const graph = new hnswlib.HierarchicalNSW("ip", dim);
    graph.readIndexSync(path);
    if (graph.getCurrentCount() !== count)
      throw new Error(`${graph.getCurrentCount()} points, expected ${count}`);
    return graph;
  } catch {
    rmSync(path, { force: true }); // damaged or stale: build it again
    rmSync(sidecar, { force: true });
    return undefined;
  }
}
