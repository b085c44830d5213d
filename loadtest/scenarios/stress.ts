/**
 * stress: the full mix at rising Recommend rates, one constant-arrival-rate
 * step at a time (20 s each, 3 s apart), until a step breaks: Recommend
 * p99 > 100 ms, any error, any dropped send, or more than 1% of answers
 * degraded. Two bisection steps then narrow the gap, and the report gives the
 * highest rate that held.
 *
 *   npm run loadtest -- --profile stress [--rate START] [--step N] [--max-rate N] [--duration STEP]
 */

import { sloThresholds, trafficMix } from "../src/mix.js";
import { defineProfile } from "../src/scenario.js";

export default defineProfile({
  name: "stress",
  description:
    "step the rate up until p99 > 100 ms, errors, drops or >1% degraded; report the highest rate that held",
  defaults: { rate: 20, duration: "20s" },
  warmup: "5s",
  options: ({ rate, duration }) => ({
    scenarios: trafficMix({ rate, duration }),
    thresholds: sloThresholds(100),
  }),
  stress: {
    startRate: 20,
    stepRate: 20,
    maxRate: 400,
    stepDuration: "20s",
    refineSteps: 2,
    pause: "3s",
    p99Ms: 100,
    maxErrorRate: 0,
  },
});
