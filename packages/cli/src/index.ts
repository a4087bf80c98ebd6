export { CliError, EXIT, type Io, loadDestination, main, VERSION } from "./cli.js";
export { loadProviders } from "./providers.js";
