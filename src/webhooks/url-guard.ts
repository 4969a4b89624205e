import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { CofferError } from '../domain/errors.ts';
import { limits } from '../limits.ts';

/**
 * Webhook URLs point wherever a merchant says, so Coffer must not become a way to reach what is behind it
 * (server-side request forgery): loopback, private networks, link-local (including cloud metadata at
 * 169.254.169.254), carrier-grade NAT, multicast and the like are refused, at registration and again at every
 * delivery after resolving the name (the delivery then connects to the address it checked, so a DNS answer
 * that changes in between cannot redirect it). Redirects are never followed. In test mode an operator may allow
 * loopback and private addresses explicitly, for local development.
 */
const blockedV4 = new net.BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blockedV4.addSubnet(network, prefix, 'ipv4');
/**
 * A list of its own: Node's BlockList matches IPv4 addresses against IPv6 rules through their mapped form, so
 * `::ffff:0:0/96` in a shared list refused every IPv4 address. The IPv6 forms that carry an IPv4 address
 * (mapped, compatible, NAT64, 6to4, Teredo) are refused whole: nothing public is published under them, and they
 * would otherwise be a way around the IPv4 list.
 */
const blockedV6 = new net.BlockList();
for (const [network, prefix] of [
  ['::', 96], ['::1', 128], ['::ffff:0:0', 96], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64],
  ['2001::', 32], ['2001:db8::', 32], ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) blockedV6.addSubnet(network, prefix, 'ipv6');

const localOnly = new net.BlockList();
localOnly.addSubnet('127.0.0.0', 8, 'ipv4');
localOnly.addAddress('::1', 'ipv6');

export interface UrlPolicy {
  livemode: boolean;
  /** Test mode only: loopback and private addresses are allowed (COFFER_WEBHOOKS_ALLOW_PRIVATE). */
  allowPrivate: boolean;
}

function invalid(message: string): CofferError {
  return new CofferError('url_invalid', message, { param: 'url' });
}

/** Checks the form of a webhook URL: https (http only where private addresses are allowed), no credentials. */
export function parseEndpointUrl(raw: string, policy: UrlPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(`Invalid URL: ${raw}`);
  }
  if (raw.length > limits.webhookUrlLengthMax) throw invalid(`The URL must be at most ${limits.webhookUrlLengthMax} characters.`);
  const httpAllowed = !policy.livemode && policy.allowPrivate;
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && httpAllowed)) {
    throw invalid('Webhook URLs must use https.');
  }
  if (url.username !== '' || url.password !== '') throw invalid('Webhook URLs must not contain credentials.');
  if (url.hash !== '') throw invalid('Webhook URLs must not contain a fragment.');
  return url;
}

function addressAllowed(address: string, policy: UrlPolicy): boolean {
  const refused = net.isIPv6(address) ? blockedV6.check(address, 'ipv6') : blockedV4.check(address, 'ipv4');
  if (!refused) return true;
  return !policy.livemode && policy.allowPrivate;
}

/** Resolves the URL's host and checks every address; returns the first, which the delivery must connect to. */
export async function resolveDeliveryAddress(url: URL, policy: UrlPolicy): Promise<{ address: string; family: 4 | 6 }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = net.isIP(host) !== 0 ? [{ address: host, family: net.isIP(host) as 4 | 6 }] : await lookup(host, { all: true, verbatim: true }).catch(() => {
    throw invalid(`The host ${host} could not be resolved.`);
  });
  if (addresses.length === 0) throw invalid(`The host ${host} has no address.`);
  for (const { address } of addresses) {
    if (!addressAllowed(address, policy)) {
      throw invalid(`The host ${host} resolves to ${address}, a loopback, private or reserved address, which webhooks may not reach (to test with a receiver on this machine, the operator can start Coffer with COFFER_WEBHOOKS_ALLOW_PRIVATE=true).`);
    }
  }
  const first = addresses[0];
  if (first === undefined) throw invalid(`The host ${host} has no address.`);
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

export function isLoopback(address: string): boolean {
  return localOnly.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
}
