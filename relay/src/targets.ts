/**
 * Which addresses the relay may reach: global unicast only, unless local dev
 * allows private and loopback targets. Checked with node's BlockList, which
 * also applies the IPv4 rules to IPv4-mapped IPv6 in every spelling
 * (`::ffff:7f00:1`, `0::ffff:127.0.0.1`).
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

/** Not global unicast (RFC 6890 and the IANA special-purpose registries). */
const SPECIAL = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay anycast
  ["192.168.0.0", 16],
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const) {
  SPECIAL.addSubnet(net, prefix, "ipv4");
}
for (const [net, prefix] of [
  ["64:ff9b::", 96], // NAT64: reaches IPv4 (private ones included) through a translator
  ["64:ff9b:1::", 48], // local-use NAT64
  ["100::", 64], // discard
  ["2001::", 23], // IETF protocol assignments (Teredo among them)
  ["2001:db8::", 32], // documentation
  ["2002::", 16], // 6to4: embeds an IPv4 address
  ["3fff::", 20], // documentation
] as const) {
  SPECIAL.addSubnet(net, prefix, "ipv6");
}
/** IPv6 global unicast is 2000::/3; everything outside it (loopback, link-local, ULA, multicast, mapped) is not. */
const GLOBAL_V6 = new BlockList();
GLOBAL_V6.addSubnet("2000::", 3, "ipv6");

export function isGlobalUnicast(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return !SPECIAL.check(ip, "ipv4");
  if (family === 6) return GLOBAL_V6.check(ip, "ipv6") && !SPECIAL.check(ip, "ipv6");
  return false;
}

/** Resolves `host` and returns the address to connect to, or throws if it is not allowed. */
export async function resolveTarget(host: string, allowPrivate: boolean): Promise<string> {
  const address = isIP(host) ? host : (await lookup(host)).address;
  if (!allowPrivate && !isGlobalUnicast(address)) throw new Error(`refusing a target that is not global unicast: ${address}`);
  return address;
}
