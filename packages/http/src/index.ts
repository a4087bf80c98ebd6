// The short path's helper, so a provider package alone is enough to read text files; the retry policy's type.
export { DEFAULT_RETRY, type RetryPolicy, readText } from "@roder/runner-contract";
export { type HttpDestinationConfig, HttpDestinationConfigSchema } from "./http-config.js";
export { parseRetryAfter, statusForError, type WireErrorBody } from "./http-errors.js";
export {
  createHttpRunnerProvider,
  fetchRunnerServerInfo,
  type HttpRunnerProvider,
  type HttpRunnerProviderSettings,
  httpRunnerProvider,
} from "./http-provider.js";
export {
  createRunnerServer,
  type RunnerServer,
  type RunnerServerOptions,
  serveRunner,
} from "./http-server.js";
export { HttpRunnerSession } from "./http-session.js";
export { createHttpSweeper, type HttpSweeperSettings } from "./http-sweeper.js";
