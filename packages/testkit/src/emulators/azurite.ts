import { binOf, spawnEmulator } from "./spawn-emulator.js";

/** The published development account of Azurite. */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteEmulator {
  endpoint: string;
  port: number;
  pid: number;
  accountName: string;
  accountKey: string;
  connectionString: string;
  stop(): Promise<void>;
}

/** Azurite's blob service on 127.0.0.1, in memory. */
export async function startAzurite(): Promise<AzuriteEmulator> {
  const proc = await spawnEmulator({
    name: "azurite",
    command: process.execPath,
    argv: [
      binOf("azurite", "azurite-blob", "npm install -D azurite@3.37.0"),
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      "0",
      "--inMemoryPersistence",
      "--skipApiVersionCheck",
      "--loose",
      "--disableTelemetry",
    ],
    portPattern: /successfully listens on http:\/\/[\d.]+:(\d+)/,
  });
  const endpoint = `http://127.0.0.1:${proc.port}/${AZURITE_ACCOUNT}`;
  return {
    endpoint,
    port: proc.port,
    pid: proc.pid,
    accountName: AZURITE_ACCOUNT,
    accountKey: AZURITE_KEY,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`,
    stop: () => proc.stop(),
  };
}
