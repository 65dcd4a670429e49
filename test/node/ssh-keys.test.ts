/** Keys made by the Worker's code are real OpenSSH keys: ssh-keygen reads them and agrees on the public half. */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { utils } from "ssh2";
import { describe, expect, it } from "vitest";
import { open, seal } from "../../src/crypto/seal";
import { generateSshKeyPair } from "../../src/crypto/ssh-keys";

describe("SSH keys", () => {
  it("generates openssh-key-v1 Ed25519 keys that ssh-keygen accepts", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cbc-keys-"));
    for (let i = 0; i < 5; i++) {
      const pair = await generateSshKeyPair(`deployment-${i}`);
      expect(pair.privateKeyPem).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END OPENSSH PRIVATE KEY-----\n$/);
      const file = path.join(dir, `id_${i}`);
      writeFileSync(file, pair.privateKeyPem);
      chmodSync(file, 0o600);
      const derived = execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" }).trim();
      expect(pair.publicKeyLine.startsWith(derived.split(" ").slice(0, 2).join(" "))).toBe(true);
      writeFileSync(`${file}.pub`, `${pair.publicKeyLine}\n`);
      const fp = execFileSync("ssh-keygen", ["-l", "-f", `${file}.pub`], { encoding: "utf8" });
      expect(fp).toContain(pair.fingerprint);
      expect(fp).toContain("(ED25519)");
      // ssh2 (the relay's SSH client) parses it too, and it signs.
      const parsed = utils.parseKey(pair.privateKeyPem);
      if (parsed instanceof Error) throw parsed;
      const key = Array.isArray(parsed) ? parsed[0]! : parsed;
      expect(key.type).toBe("ssh-ed25519");
      expect(key.sign(Buffer.from("hello")).length).toBe(64);
    }
  });

  it("seals secrets bound to their record; wrong key or record does not open", async () => {
    const sealed = await seal("a-secret-key-of-enough-length", "PRIVATE KEY", "dep-1");
    expect(sealed).not.toContain("PRIVATE");
    expect(await open("a-secret-key-of-enough-length", sealed, "dep-1")).toBe("PRIVATE KEY");
    await expect(open("another-secret-key-entirely", sealed, "dep-1")).rejects.toThrow();
    await expect(open("a-secret-key-of-enough-length", sealed, "dep-2")).rejects.toThrow();
    await expect(seal("short", "x", "y")).rejects.toThrow(/at least 16/);
  });
});
