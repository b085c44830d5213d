import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseYaml, YamlError } from "./yaml-load.js";

describe("parseYaml", () => {
  it("returns the non-empty documents", () => {
    assert.deepEqual(parseYaml("a: 1\n---\n---\nb: [x]\n", "t.yaml").docs, [{ a: 1 }, { b: ["x"] }]);
  });

  it("reports plain scalars that YAML 1.1 reads as booleans, and only plain ones", () => {
    const { lint } = parseYaml('a: yes\nb: "no"\nc: On\nd: true\ne: y\n', "t.yaml");
    assert.deepEqual(
      lint.map((l) => l.split(":")[1]),
      ["1", "3", "5"],
    );
  });

  it("fails on invalid YAML and duplicate keys, naming the file", () => {
    assert.throws(
      () => parseYaml("a: [\n", "bad.yaml"),
      (e: unknown) => e instanceof YamlError && /^bad\.yaml/.test(e.message),
    );
    assert.throws(() => parseYaml("a: 1\na: 2\n", "dup.yaml"), /dup\.yaml/);
  });
});
