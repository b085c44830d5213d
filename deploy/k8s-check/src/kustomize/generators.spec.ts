import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configMapHash, parseEnvFile, parseLiteral } from "./generators.js";

describe("configMapHash", () => {
  // Suffixes produced by kubectl kustomize (kustomize v5.5.0) for the same data.
  const cases: Array<[string, Record<string, string>, string]> = [
    ["one string value", { A: "x" }, "9267k7dk58"],
    ["a numeric-looking value is still a string", { A: "1" }, "89g4tffbfk"],
    ["HTML characters escaped as Go does", { A: "2", B: "x<y&z", C: "3" }, "27fdk92mfg"],
    ["quotes and spaces kept", { X: "1", "Y ": " spaced ", Z: '"q"' }, "6ht7f62gf9"],
    ["literal forms", { A: "q", B: "r", C: "a=b", D: '"x', E: " sp " }, "k2k44fbdf2"],
  ];
  for (const [name, data, expected] of cases) {
    it(name, () => assert.equal(configMapHash(data), expected));
  }

  it("does not depend on key order", () => {
    assert.equal(configMapHash({ C: "3", A: "2", B: "x<y&z" }), "27fdk92mfg");
  });
});

describe("parseLiteral", () => {
  const cases: Array<[string, [string, string]]> = [
    ['A="q"', ["A", "q"]],
    ["B='r'", ["B", "r"]],
    ["C=a=b", ["C", "a=b"]],
    ['D="x', ["D", '"x']],
    ["E= sp ", ["E", " sp "]],
    ["F=", ["F", ""]],
  ];
  for (const [literal, expected] of cases) {
    it(literal, () => assert.deepEqual(parseLiteral(literal), expected));
  }

  it("refuses a literal without a key", () => {
    assert.throws(() => parseLiteral("=x"), /expected KEY=value/);
    assert.throws(() => parseLiteral("novalue"), /expected KEY=value/);
  });
});

describe("parseEnvFile", () => {
  it("skips comments and blank lines, keeps values verbatim", () => {
    const text = '\uFEFF# comment\n\nA=1\n  B = x \r\nC="q"\n   # indented comment\nD=a=b\n';
    assert.throws(() => parseEnvFile(text, "f.env"), /"B " is not a valid key/);
    assert.deepEqual(parseEnvFile('# c\n\nA=1\n  B= x \r\nC="q"\nD=a=b\n', "f.env"), [
      ["A", "1"],
      ["B", " x "],
      ["C", '"q"'],
      ["D", "a=b"],
    ]);
  });

  it("refuses a line without '=' rather than reading the renderer's environment", () => {
    assert.throws(() => parseEnvFile("A=1\nHOME\n", "f.env"), /f\.env:2: "HOME" has no "="/);
  });
});
