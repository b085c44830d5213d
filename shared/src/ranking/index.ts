export * from "./features.js";
export * from "./item-tower.js";
export * from "./model.js";
export * from "./scorer.js";
