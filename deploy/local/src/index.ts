export * from "./health.js";
export * from "./stack.js";
export * from "./testing.js";
