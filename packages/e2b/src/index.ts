// The short path's helper, so a provider package alone is enough to read text files.
export { readText } from "@roder/runner-contract";
export { type E2bDestinationConfig, E2bDestinationConfigSchema, parseE2bConfig } from "./e2b-config.js";
export { mapE2bError } from "./e2b-errors.js";
export {
  createE2bProvider,
  type E2bProviderSettings,
  type E2bRunnerProvider,
  e2bProvider,
} from "./e2b-provider.js";
export { E2bSession } from "./e2b-session.js";
export { createE2bSweeper } from "./e2b-sweeper.js";
