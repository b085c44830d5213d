/**
 * Worker thread of ContentIndex.buildGraphInWorker: builds the HNSW graph
 * over a snapshot of the vectors and writes it to a file, so the service's
 * event loop stays free for requests while it takes its seconds of CPU.
 */
import { parentPort, workerData } from "node:worker_threads";
import hnswlib from "hnswlib-node";

export interface GraphJob {
  readonly dim: number;
  readonly count: number;
  readonly capacity: number;
  readonly m: number;
  readonly efConstruction: number;
  readonly path: string;
  /** count × dim float32, transferred. */
  readonly vectors: ArrayBuffer;
}

const job = workerData as GraphJob;
const vectors = new Float32Array(job.vectors);
const graph = new hnswlib.HierarchicalNSW("ip", job.dim);
graph.initIndex(job.capacity, job.m, job.efConstruction, 100);
for (let label = 0; label < job.count; label++) {
  graph.addPoint(Array.from(vectors.subarray(label * job.dim, (label + 1) * job.dim)), label);
}
graph.writeIndexSync(job.path);
parentPort?.postMessage("done");
