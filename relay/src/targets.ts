/** Which addresses the relay may reach: public ones only, unless local dev allows private/loopback targets. */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

function isPrivateV4(ip: string): boolean {
  const [a, b] = ip.split(".").map(Number) as [number, number];
  return (
    a === 10 ||
    a === 127 ||
    a === 0 ||
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 100 && b >= 64 && b <= 127) ||
    a >= 224
  );
}

function isPrivateV6(ip: string): boolean {
  const x = ip.toLowerCase();
  if (x === "::1" || x === "::") return true;
  if (x.startsWith("::ffff:")) return isPrivateV4(x.slice(7));
  return /^(fc|fd|fe8|fe9|fea|feb|ff)/.test(x);
}

function isPrivateAddress(ip: string): boolean {
  return isIP(ip) === 4 ? isPrivateV4(ip) : isPrivateV6(ip);
}

/** Resolves `host` and returns the address to connect to, or throws if it is not allowed. */
export async function resolveTarget(host: string, allowPrivate: boolean): Promise<string> {
  const address = isIP(host) ? host : (await lookup(host)).address;
  if (!allowPrivate && isPrivateAddress(address)) throw new Error(`refusing private or loopback target ${address}`);
  return address;
}
