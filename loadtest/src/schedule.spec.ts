import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConstantArrivalRate, RampingArrivalRate } from "./scenario.js";
import { ArrivalSchedule, seededRandom } from "./schedule.js";

function times(s: ArrivalSchedule): number[] {
  const out: number[] = [];
  for (let t = s.next(); Number.isFinite(t); t = s.next()) out.push(t);
  return out;
}

const constant = (
  rate: number,
  duration: string,
  extra: Partial<ConstantArrivalRate> = {},
): ConstantArrivalRate => ({
  executor: "constant-arrival-rate",
  rate,
  duration,
  exec: "recommend",
  ...extra,
});

describe("ArrivalSchedule", () => {
  it("constant rate: rate x duration sends, evenly spaced, the first at 0", () => {
    const t = times(ArrivalSchedule.of(constant(50, "30s"), seededRandom(1)));
    assert.equal(t.length, 1500);
    assert.equal(t[0], 0);
    for (let i = 1; i < t.length; i++) assert.ok(Math.abs(t[i]! - t[i - 1]! - 20) < 1e-6);
  });

  it("honours timeUnit and startTime", () => {
    const t = times(
      ArrivalSchedule.of(constant(1, "20s", { timeUnit: "5s", startTime: "2s" }), seededRandom(1)),
    );
    assert.deepEqual(t, [2_000, 7_000, 12_000, 17_000]);
  });

  it("ramping 0 -> 10/s over 10 s sends the integral (50), denser towards the end", () => {
    const s: RampingArrivalRate = {
      executor: "ramping-arrival-rate",
      startRate: 0,
      stages: [{ target: 10, duration: "10s" }],
      exec: "recommend",
    };
    const t = times(ArrivalSchedule.of(s, seededRandom(1)));
    assert.ok(Math.abs(t.length - 50) <= 1, `got ${t.length}`);
    const firstHalf = t.filter((x) => x < 5_000).length;
    assert.ok(firstHalf >= 11 && firstHalf <= 14, `first half ${firstHalf}, expected ~12.5`);
  });

  it("a 0-length stage jumps the rate", () => {
    const s: RampingArrivalRate = {
      executor: "ramping-arrival-rate",
      startRate: 10,
      stages: [
        { target: 10, duration: "1s" },
        { target: 100, duration: "0s" },
        { target: 100, duration: "1s" },
      ],
      exec: "recommend",
    };
    const t = times(ArrivalSchedule.of(s, seededRandom(1)));
    assert.equal(t.filter((x) => x < 1_000).length, 10);
    assert.equal(t.filter((x) => x >= 1_000).length, 100);
  });

  it("poisson arrivals keep the mean rate", () => {
    const t = times(ArrivalSchedule.of(constant(100, "60s", { arrival: "poisson" }), seededRandom(7)));
    assert.ok(Math.abs(t.length - 6_000) < 300, `got ${t.length}`);
    const gaps = t.slice(1).map((x, i) => x - t[i]!);
    const cv = Math.sqrt(gaps.reduce((a, g) => a + (g - 10) ** 2, 0) / gaps.length) / 10;
    assert.ok(cv > 0.9 && cv < 1.1, `exponential gaps have CV ~1, got ${cv}`);
  });

  it("rate 0 sends nothing", () => {
    assert.deepEqual(times(ArrivalSchedule.of(constant(0, "10s"), seededRandom(1))), []);
  });
});
