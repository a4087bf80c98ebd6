export { describeRunnerConformance, type RunnerConformanceOptions } from "./describe-runner-conformance.js";
