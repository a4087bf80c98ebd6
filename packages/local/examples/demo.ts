import { codecs } from "@roder/runner-contract";

console.log("local runner demo arrives with @roder/runner-local", typeof codecs);
