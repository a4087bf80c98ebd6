export {
  type FlyStandIn,
  type FlyStandInMachine,
  type FlyStandInOptions,
  startFlyStandIn,
} from "./fly-standin.js";
