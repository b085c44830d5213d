import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseUpdateOutput, runOnlineUpdate, UpdateError, type UpdateOptions } from "./update.js";

const dir = mkdtempSync(join(tmpdir(), "online-update-"));

/** A stand-in for the Python interpreter: a shell script. */
function fakePython(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

const options = (python: string, extra: Partial<UpdateOptions> = {}): UpdateOptions => ({
  python,
  pythonPath: "/opt/trainer",
  store: "var/models",
  data: "data/ml",
  tolerance: 0.02,
  timeoutMs: 10_000,
  ...extra,
});

describe("runOnlineUpdate", () => {
  it("runs `-m recsys_trainer online` with the contract's arguments and parses the result", async () => {
    const argsFile = join(dir, "args.txt");
    const python = fakePython(
      "ok.sh",
      `echo "$@" > "${argsFile}"; echo "PYTHONPATH=$PYTHONPATH" >> "${argsFile}"
echo "[online:em3] training" >&2
echo '{"decision": "published", "reason": "holdout within tolerance", "parent_version": "v1", "version": "v2", "holdout": {"before": {"click_auc": 0.7}}, "samples": {"total": 120}, "seconds": 3.5}'`,
    );
    const lines: string[] = [];
    const r = await runOnlineUpdate(
      options(python, { onStderrLine: (l) => lines.push(l) }),
      "em3",
      "/tmp/shard-1.jsonl",
    );
    assert.equal(r.decision, "published");
    assert.equal(r.version, "v2");
    assert.equal(r.parentVersion, "v1");
    assert.equal(r.seconds, 3.5);
    assert.deepEqual(r.raw.samples, { total: 120 });
    assert.deepEqual(lines, ["[online:em3] training"]);
    const [args, env] = readFileSync(argsFile, "utf8").trim().split("\n");
    assert.equal(
      args,
      `-m recsys_trainer online --model em3 --store ${join(process.cwd(), "var/models")} --data ${join(process.cwd(), "data/ml")} --shard /tmp/shard-1.jsonl --tolerance 0.02`,
    );
    assert.match(env!, /^PYTHONPATH=\/opt\/trainer(:|$)/);
  });

  it("fails on a non-zero exit, with the end of stderr", async () => {
    const python = fakePython("boom.sh", `echo "Traceback: boom" >&2; echo '{"decision":"skipped"}'; exit 3`);
    await assert.rejects(runOnlineUpdate(options(python), "em3", "s.jsonl"), (err: unknown) => {
      assert.ok(err instanceof UpdateError);
      assert.equal(err.kind, "failed");
      assert.equal(err.exitCode, 3);
      assert.match(err.stderrTail, /Traceback: boom/);
      return true;
    });
  });

  it("kills an update that runs past the timeout", async () => {
    const python = fakePython("slow.sh", "exec sleep 30");
    const t0 = Date.now();
    await assert.rejects(
      runOnlineUpdate(options(python, { timeoutMs: 300 }), "em3", "s.jsonl"),
      (err: unknown) => {
        assert.ok(err instanceof UpdateError);
        assert.equal(err.kind, "timeout");
        return true;
      },
    );
    assert.ok(Date.now() - t0 < 5_000);
  });

  it("fails when the interpreter is missing or prints no result", async () => {
    await assert.rejects(runOnlineUpdate(options(join(dir, "missing")), "em3", "s.jsonl"), /cannot run/);
    await assert.rejects(
      runOnlineUpdate(options(fakePython("silent.sh", "echo hello")), "em3", "s.jsonl"),
      /no JSON result/,
    );
  });

  it("kills the trainer when aborted (shutdown)", async () => {
    const abort = new AbortController();
    const run = runOnlineUpdate(
      options(fakePython("wait.sh", "exec sleep 30"), { signal: abort.signal }),
      "m",
      "s",
    );
    setTimeout(() => abort.abort(), 100);
    await assert.rejects(run, /aborted/);
  });
});

describe("parseUpdateOutput", () => {
  it("takes the last JSON line when the trainer printed something else before it", () => {
    const r = parseUpdateOutput('loading...\n{"decision": "rejected", "reason": "regressed"}\n');
    assert.equal(r.decision, "rejected");
    assert.equal(r.reason, "regressed");
    assert.equal(r.version, undefined);
  });

  it("refuses unknown decisions and a publication without a version", () => {
    assert.throws(() => parseUpdateOutput('{"decision": "maybe"}'), /unknown decision/);
    assert.throws(() => parseUpdateOutput('{"decision": "published"}'), /without a version/);
    assert.throws(() => parseUpdateOutput("[1]"), /no JSON result|not a JSON object/);
  });
});
