// Direct export from a remote sandbox (the Fly and E2B stand-ins, whose commands the local runner runs):
// MIB of random bytes made in the sandbox, exported with the direct path to the bench memory store on
// loopback (16 MiB parts, 8 in flight), against `curl -T` of a host file of the same size to the same store
// in the same run. Used by packages/fly/bench and packages/e2b/bench (a .js file: bench.mjs runs only .mjs).
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startMemoryS3 } from "./memory-s3.js";

/**
 * `open(artifacts, env)` opens a session of the provider under test whose destination's `artifacts` is the
 * given target and whose env holds the given secrets. Returns one bench row.
 */
export async function benchRemoteExport({ name, mib, open }) {
  const store = await startMemoryS3();
  const dir = mkdtempSync(join(tmpdir(), "roder-remote-export-"));
  try {
    const file = join(dir, "host.bin");
    // Asynchronous: the store lives in this process's event loop.
    const run = promisify(execFile);
    await run("sh", ["-c", `head -c ${mib * 1048576} /dev/urandom > "${file}"`]);
    const curl = [];
    for (let i = 0; i < 2; i++) {
      const t = performance.now();
      await run("curl", ["-sS", "-f", "-X", "PUT", "-T", file, `${store.endpoint}/bench/curl-${i}`]);
      curl.push(performance.now() - t);
    }
    const session = await open(
      {
        uri: "s3://bench/remote",
        credentials: { id: "bench" },
        endpoint: store.endpoint,
        force_path_style: true,
      },
      { RODER_SECRET_BENCH_ACCESS_KEY_ID: "bench", RODER_SECRET_BENCH_SECRET_ACCESS_KEY: "bench" },
    );
    const ours = [];
    try {
      const made = await session.runCommand({
        command_id: "make",
        program: "sh",
        args: ["-c", `head -c ${mib * 1048576} /dev/urandom > big.bin && sha256sum big.bin`],
      });
      if (made.exit_code !== 0) throw new Error(`could not make the file: ${made.stderr}`);
      const expected = made.stdout.split(" ")[0];
      for (let i = 0; i < 2; i++) {
        const t = performance.now();
        const r = await session.exportArtifact({ path: "big.bin", recursive: false });
        ours.push(performance.now() - t);
        if (r.metadata.sha256 !== expected) throw new Error(`${name}: wrong sha256 ${r.metadata.sha256}`);
        if (r.metadata.transfer !== "direct") throw new Error(`${name}: transfer ${r.metadata.transfer}`);
      }
    } finally {
      await session.close();
    }
    const rate = (ms) => mib / (Math.min(...ms) / 1000);
    return {
      operation: `direct export of ${mib} MiB from a ${name} sandbox (16 MiB parts x 8, MD5 per part + sha256), memory store, loopback`,
      ours: rate(ours),
      baseline: rate(curl),
      baseline_name: "curl -T of a host file to the same store",
      unit: "MiB/s",
      ratio: rate(ours) / rate(curl),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await store.stop();
  }
}
