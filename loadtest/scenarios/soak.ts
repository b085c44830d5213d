/**
 * soak: the full mix at the nominal rate for 30 minutes. Besides the SLO, it
 * reports each service's memory (RSS sampled every 10 s): growth after the
 * first 10% of the run and the least-squares slope in MB/hour.
 *
 *   npm run loadtest -- --profile soak [--rate 50] [--duration 30m]
 */

import { sloThresholds, trafficMix } from "../src/mix.js";
import { defineProfile } from "../src/scenario.js";

export default defineProfile({
  name: "soak",
  description: "full mix at the nominal rate (default 50 Recommend/s, 30 min); RSS growth per service",
  defaults: { rate: 50, duration: "30m" },
  warmup: "5s",
  sampleEvery: "10s",
  options: ({ rate, duration }) => ({
    scenarios: trafficMix({ rate, duration }),
    thresholds: { ...sloThresholds(100), fallbacks: ["rate<0.01"] },
  }),
});
