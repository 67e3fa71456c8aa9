/**
 * Secrets at rest (OAuth tokens, Grafana passwords) are JWE compact strings: `dir` + `A256GCM`
 * with a key chosen by kid from `SECRET_KEYS`. The newest kid encrypts; every configured kid
 * decrypts, so keys rotate without a migration. An optional context string is bound as
 * additional authenticated data, so a ciphertext copied to another row does not decrypt.
 */
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from "jose";

import type { Config } from "./config.js";

type Keys = Config["SECRET_KEYS"];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export async function encryptSecret(
  keys: Keys,
  plaintext: string,
  context: string,
): Promise<string> {
  const key = keys.keys.get(keys.current);
  if (!key) throw new Error("the current secret key is missing");
  return new CompactEncrypt(encoder.encode(plaintext))
    .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid: keys.current, ctx: context })
    .encrypt(key);
}

export async function decryptSecret(keys: Keys, jwe: string, context: string): Promise<string> {
  const header = decodeProtectedHeader(jwe);
  const key = typeof header.kid === "string" ? keys.keys.get(header.kid) : undefined;
  if (!key) throw new Error("no key for this secret's kid (was it rotated out?)");
  if (header.ctx !== context) throw new Error("secret does not belong here");
  const { plaintext } = await compactDecrypt(jwe, key, {
    keyManagementAlgorithms: ["dir"],
    contentEncryptionAlgorithms: ["A256GCM"],
  });
  return decoder.decode(plaintext);
}
