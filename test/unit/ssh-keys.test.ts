import { describe, expect, it } from "vitest";
import { generateSshKeyPair } from "../../src/crypto/ssh-keys";

describe("SSH keys in the Workers runtime", () => {
  it("generates Ed25519 pairs with WebCrypto inside workerd", async () => {
    const a = await generateSshKeyPair("x");
    const b = await generateSshKeyPair("x");
    expect(a.publicKeyLine).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* x$/);
    expect(a.privateKeyPem).not.toBe(b.privateKeyPem);
    expect(a.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
