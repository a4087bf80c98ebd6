import {
  checkProviderId,
  type EnvSource,
  InvalidDestinationConfigError,
  parseDestinationInput,
  type RunnerDestination,
  type RunnerDestinationInput,
} from "@roder/runner-contract";
import { checkSandboxDestination } from "@roder/runner-storage";
import { type E2bDestinationConfig, parseE2bConfig } from "./e2b-config.js";

/** Reads the plan's maximum timeout (hours) from settings or env, checked. */
export function planMaxHours(planMaxTimeoutHours: number | undefined, env: EnvSource): number {
  const raw = planMaxTimeoutHours ?? env.RODER_E2B_PLAN_MAX_HOURS ?? 1;
  const h = Number(raw);
  if (!Number.isFinite(h) || h <= 0)
    throw new InvalidDestinationConfigError({
      providerId: "e2b",
      message: `the E2B plan's maximum timeout must be a positive number of hours (planMaxTimeoutHours / RODER_E2B_PLAN_MAX_HOURS), got '${String(raw)}'`,
    });
  return h;
}

/** `ttl_seconds` against the plan's documented maximum (E2B: 400 "Timeout cannot be greater than N hours"). */
export function checkPlanLimits(config: E2bDestinationConfig, maxHours: number): void {
  if (config.ttl_seconds <= maxHours * 3600) return;
  const message = `ttl_seconds ${config.ttl_seconds} is over the E2B plan's maximum sandbox timeout of ${maxHours} hours (${maxHours * 3600} s): E2B refuses it ("Timeout cannot be greater than ${maxHours} hours"). Lower ttl_seconds, or set planMaxTimeoutHours / RODER_E2B_PLAN_MAX_HOURS to your plan's limit (Pro: 24)`;
  throw new InvalidDestinationConfigError({
    providerId: "e2b",
    message,
    issues: [{ path: "ttl_seconds", message }],
  });
}

/** A destination checked for E2B before anything is created: config, plan limits, artifacts, mounts, manifest. */
export function validateE2bDestination(
  destination: RunnerDestinationInput,
  env: EnvSource,
  planMaxTimeoutHours: number | undefined,
): { d: RunnerDestination; config: E2bDestinationConfig } {
  const d = parseDestinationInput(destination, "e2b");
  checkProviderId("e2b", "destination", d.provider_id);
  const config = parseE2bConfig(d.config);
  checkPlanLimits(config, planMaxHours(planMaxTimeoutHours, env));
  checkSandboxDestination("e2b", d, config, env);
  return { d, config };
}
