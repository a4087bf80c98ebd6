import { argvToShell, codecs, parseMountUri, secretEnvName } from "@roder/runner-contract";

const request = codecs.RunnerCommandRequest.decode(
  '{"command_id":"c1","program":"sh","args":["-c","echo $0"]}',
);
console.log("decoded   ", request);
console.log("encoded   ", codecs.RunnerCommandRequest.encode(request));
console.log(
  "file write",
  codecs.RunnerFileWriteRequest.encode({ path: "a.bin", contents: new Uint8Array([0, 1, 255]) }),
);
console.log("quoted    ", argvToShell(["printf", "%s\\n", "it's $HOME"]));
console.log("mount     ", parseMountUri("r2://datasets/2024/", "r2"));
console.log("secret var", secretEnvName("r2-readonly", "access_key_id"));
try {
  codecs.RunnerPortRequest.decode('{"port":70000}');
} catch (error) {
  console.log("rejected  ", (error as Error).message);
}
