export * from "./health.js";
export * from "./stack.js";
