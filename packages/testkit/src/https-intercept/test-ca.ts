import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import forge from "node-forge";

/** A server certificate issued by a `TestCa` for some host names. */
export interface IssuedCertificate {
  hosts: string[];
  certPem: string;
  keyPem: string;
}

/**
 * A certificate authority made for one test run: its key never leaves the process, its certificate is in
 * `certFile` (hand it to the client under test: rclone `--ca-cert` / `RCLONE_CA_CERT`, curl `--cacert`,
 * `NODE_EXTRA_CA_CERTS`). Nothing else trusts it. `dispose()` deletes the file.
 */
export interface TestCa {
  certPem: string;
  certFile: string;
  /** Issues (and caches) a server certificate whose subjectAltName lists `hosts`. */
  issue(hosts: string[]): IssuedCertificate;
  dispose(): void;
}

const keyPair = () => {
  // node:crypto generates RSA in native code (forge's pure-JS generator takes seconds).
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return {
    keyPem,
    privateKey: forge.pki.privateKeyFromPem(keyPem),
    publicKey: forge.pki.publicKeyFromPem(publicKey.export({ type: "spki", format: "pem" }).toString()),
  };
};

// A positive serial number (the high bit clear), 16 random bytes.
const serial = () => `01${randomBytes(15).toString("hex")}`;

function validity(cert: forge.pki.Certificate, days: number) {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(now + days * 24 * 60 * 60 * 1000);
}

/** Makes a fresh CA (RSA 2048, SHA-256, valid from an hour ago for `days`, default 2). */
export function createTestCa(opts: { commonName?: string; days?: number } = {}): TestCa {
  const days = opts.days ?? 2;
  const ca = keyPair();
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = ca.publicKey;
  caCert.serialNumber = serial();
  validity(caCert, days);
  const caSubject = [
    { name: "commonName", value: opts.commonName ?? `roder test CA ${randomBytes(4).toString("hex")}` },
    { name: "organizationName", value: "roder-runners tests" },
  ];
  caCert.setSubject(caSubject);
  caCert.setIssuer(caSubject);
  caCert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  caCert.sign(ca.privateKey, forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(caCert);
  const dir = mkdtempSync(join(tmpdir(), "roder-test-ca-"));
  const certFile = join(dir, "ca.pem");
  writeFileSync(certFile, certPem, { mode: 0o644 });

  // One leaf key for every host (a test CA, not a production one); certificates cached per host set.
  const leaf = keyPair();
  const issued = new Map<string, IssuedCertificate>();
  return {
    certPem,
    certFile,
    issue(hosts) {
      if (hosts.length === 0) throw new TypeError("issue() needs at least one host name");
      const key = [...hosts].sort().join(",");
      const cached = issued.get(key);
      if (cached) return cached;
      const cert = forge.pki.createCertificate();
      cert.publicKey = leaf.publicKey;
      cert.serialNumber = serial();
      validity(cert, days);
      cert.setSubject([{ name: "commonName", value: hosts[0]! }]);
      cert.setIssuer(caCert.subject.attributes);
      cert.setExtensions([
        { name: "basicConstraints", cA: false, critical: true },
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
        { name: "extKeyUsage", serverAuth: true },
        {
          name: "subjectAltName",
          altNames: hosts.map((h) => (/^[\d.]+$/.test(h) ? { type: 7, ip: h } : { type: 2, value: h })),
        },
        { name: "authorityKeyIdentifier", keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
      ]);
      cert.sign(ca.privateKey, forge.md.sha256.create());
      const out = { hosts: [...hosts], certPem: forge.pki.certificateToPem(cert), keyPem: leaf.keyPem };
      issued.set(key, out);
      return out;
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
