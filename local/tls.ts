/**
 * Throwaway TLS material for the local platform and tests, made by openssl in a directory that is
 * removed at once: nothing here is ever used outside this machine.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function inTempDir<T>(fn: (dir: string, run: (args: string[]) => void) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "supafana-tls-"));
  try {
    return fn(dir, (args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const san = (names: readonly string[]) =>
  `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`;

/** A self-signed certificate for the names (the first is the subject). */
export function selfSignedCertificate(
  names: readonly string[],
  days = 2,
): { cert: string; key: string } {
  return inTempDir((dir, run) => {
    run(
      [
        "req",
        "-x509",
        ...EC,
        "-days",
        String(days),
        "-subj",
        `/CN=${names[0] ?? "localhost"}`,
      ].concat(["-addext", san(names), "-keyout", "key.pem", "-out", "cert.pem"]),
    );
    return {
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
      key: readFileSync(join(dir, "key.pem"), "utf8"),
    };
  });
}

/** A local CA and a server certificate it signed for the names (trust `ca` for those only). */
export function caSignedCertificate(names: readonly string[]): {
  ca: string;
  cert: string;
  key: string;
} {
  return inTempDir((dir, run) => {
    run(
      ["req", "-x509", ...EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"].concat([
        "-subj",
        "/CN=Supafana local CA",
      ]),
    );
    run(["req", ...EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=supafana"]);
    writeFileSync(join(dir, "san.ext"), `${san(names)}\n`);
    run(
      ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"].concat([
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
      ]),
    );
    return {
      ca: readFileSync(join(dir, "ca.pem"), "utf8"),
      key: readFileSync(join(dir, "server.key"), "utf8"),
      cert: readFileSync(join(dir, "server.pem"), "utf8"),
    };
  });
}
