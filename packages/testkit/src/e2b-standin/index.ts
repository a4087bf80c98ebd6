export {
  type E2bStandIn,
  type E2bStandInOptions,
  type E2bStandInSandbox,
  startE2bStandIn,
} from "./e2b-standin.js";
