/**
 * The project rules, in the order they are reported. Each has a stable id;
 * `node deploy/k8s-check/dist/cli.js --rules` lists them with what they enforce.
 */

import { eventBusRule } from "./event-bus.js";
import {
  configKeysRule,
  funnelLimitsRule,
  funnelPortsRule,
  nodeHeapRule,
  shutdownRule,
  stageTargetsRule,
} from "./funnel-config.js";
import { executionProviderRule } from "./gpu.js";
import { kafkaTopicsRule } from "./kafka.js";
import { funnelNetworkRule, namespaceRule, networkPoliciesRule, servicePortsRule } from "./networking.js";
import { scalingRule } from "./scaling.js";
import { singleWriterRule } from "./single-writer.js";
import { strimziRule } from "./strimzi.js";
import { telemetryRule } from "./telemetry.js";
import type { Rule } from "./types.js";
import {
  imagesRule,
  probesRule,
  resourcesRule,
  securityContextRule,
  selectorRule,
  volumesRule,
} from "./workloads.js";

export const RULES: readonly Rule[] = [
  probesRule,
  resourcesRule,
  securityContextRule,
  imagesRule,
  selectorRule,
  volumesRule,
  scalingRule,
  servicePortsRule,
  networkPoliciesRule,
  funnelNetworkRule,
  namespaceRule,
  configKeysRule,
  funnelPortsRule,
  stageTargetsRule,
  funnelLimitsRule,
  shutdownRule,
  nodeHeapRule,
  strimziRule,
  kafkaTopicsRule,
  eventBusRule,
  singleWriterRule,
  executionProviderRule,
  telemetryRule,
];

export type { Finding, Rule, RuleContext, Severity } from "./types.js";
