export { describeRunnerConformance, type RunnerConformanceOptions } from "./describe-runner-conformance.js";
export {
  describeSandboxConformance,
  type SandboxConformanceOptions,
} from "./describe-sandbox-conformance.js";
export { describeSandboxMounts, type SandboxMountsOptions } from "./describe-sandbox-mounts.js";
