import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { CofferError } from '../domain/errors.ts';

/** `sk_test_…`, `pk_live_…`, `rk_test_…`: kind, mode, then 24 to 128 base62 characters (Coffer issues 48). */
export const apiKeyPattern = /^(sk|pk|rk)_(test|live)_[A-Za-z0-9]{24,128}$/;

export type ApiKeyKind = 'secret' | 'publishable' | 'restricted';

export const apiKeyPrefixes: Record<ApiKeyKind, string> = { secret: 'sk', publishable: 'pk', restricted: 'rk' };

/** Keys are long random strings, so a fast hash is enough to store them irreversibly and look them up. */
export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** `sk_test_****abcd`: enough to tell keys apart, never enough to use one. */
export function maskApiKey(key: string): string {
  const prefix = /^[a-z]{2}_(test|live)_/.exec(key)?.[0] ?? '';
  // Only the characters a key is made of are shown back: anything else (bytes decoded from a Basic header that
  // held no key) would be noise, and is not echoed.
  const tail = key.slice(-4);
  return `${prefix}****${/^[A-Za-z0-9_]{4}$/.test(tail) ? tail : ''}`;
}

/**
 * What a restricted key can be given access to: the merchant API's resources, named by the first segment of
 * their paths (`/v1/payment_intents/…`). Every merchant route must belong to one (the public server refuses to
 * register one that does not), so a route added later is closed to restricted keys until a key is given it.
 */
export const apiResources = [
  'payment_intents', 'charges', 'refunds', 'disputes', 'customers', 'payment_methods', 'tokens', 'setup_intents',
  'balance', 'events', 'webhook_endpoints', 'risk', 'reviews', 'checkout', 'support_cases',
  'products', 'prices', 'shipping_rates', 'payment_links', 'coupons', 'promotion_codes',
] as const;
export type ApiResource = (typeof apiResources)[number];

/** `write` includes `read`. */
export type Access = 'read' | 'write';
export type Permissions = Partial<Record<ApiResource, Access>>;

/** Paths that belong to another resource: balance transactions explain the balance, and share its permission. */
const resourceAliases: Record<string, ApiResource> = { balance_transactions: 'balance' };

/**
 * Later path segments that reach another resource without being named after it: an event's `deliveries` name
 * webhook endpoints and what their addresses answered.
 */
const reachedBySegment: Record<string, ApiResource> = { deliveries: 'webhook_endpoints' };

export function resourceOfRoute(url: string): ApiResource | undefined {
  const segment = /^\/v1\/([a-z_]+)/.exec(url)?.[1];
  return apiResources.find((resource) => resource === segment) ?? (segment !== undefined && Object.hasOwn(resourceAliases, segment) ? resourceAliases[segment] : undefined);
}

/**
 * Every resource a merchant route reaches: its own (the first segment) and each other resource a later segment
 * names. `/v1/customers/:customer/payment_methods` lists PaymentMethods, so a restricted key needs both
 * `customers` and `payment_methods` for it, as it needs `payment_methods` to list them at `/v1/payment_methods`.
 */
export function resourcesOfRoute(url: string): ApiResource[] | undefined {
  const own = resourceOfRoute(url);
  if (own === undefined) return undefined;
  const named = url.split('/').slice(3).flatMap((segment) => {
    const reached = Object.hasOwn(reachedBySegment, segment) ? reachedBySegment[segment] : apiResources.find((resource) => resource === segment);
    return reached === undefined || reached === own ? [] : [reached];
  });
  return [own, ...new Set(named)];
}

/** A GET reads; anything else writes. */
export function accessOfMethod(method: string): Access {
  return method === 'GET' || method === 'HEAD' ? 'read' : 'write';
}

export function permits(permissions: Permissions, resource: ApiResource, access: Access): boolean {
  const granted = permissions[resource];
  return granted === 'write' || (granted === 'read' && access === 'read');
}

/** Parses `payment_intents:write`, `refunds:read`, …; an unknown resource or access is an error naming it. */
export function parsePermissions(grants: readonly string[]): Permissions {
  const permissions: Permissions = {};
  for (const grant of grants) {
    const [resource, access, extra] = grant.split(':');
    const known = apiResources.find((candidate) => candidate === resource);
    if (known === undefined || extra !== undefined) {
      throw new CofferError('parameter_invalid', `Unknown resource in permission "${grant}": use one of ${apiResources.join(', ')}, as resource:read or resource:write.`, { param: 'permissions' });
    }
    if (access !== 'read' && access !== 'write') {
      throw new CofferError('parameter_invalid', `Permission "${grant}" must end in :read or :write.`, { param: 'permissions' });
    }
    if (permissions[known] !== 'write') permissions[known] = access;
  }
  return permissions;
}

/**
 * Checks a list of addresses and CIDR ranges (`203.0.113.7`, `198.51.100.0/24`, `2001:db8::/32`) and returns it
 * normalized; anything else is an error naming the entry.
 */
export function parseAddressList(entries: readonly string[]): string[] {
  if (entries.length === 0) throw new CofferError('parameter_invalid', 'An address allowlist needs at least one address or range.', { param: 'allowed_addresses' });
  return entries.map((entry) => {
    const [address = '', prefix, extra] = entry.trim().split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : Number(prefix);
    if (family === 0 || extra !== undefined || (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) || bits > (family === 6 ? 128 : 32)) {
      throw new CofferError('parameter_invalid', `"${entry}" is not an IP address or a CIDR range (such as 198.51.100.0/24).`, { param: 'allowed_addresses' });
    }
    return `${address}/${bits}`;
  });
}

/** Whether `address` (as Node reports a peer, possibly IPv4-mapped IPv6) is in one of the normalized ranges. */
export function addressAllowed(ranges: readonly string[], address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const plain = mapped ?? address;
  const family = isIP(plain);
  if (family === 0) return false;
  // The address's own family only: Node's BlockList matches IPv4 addresses against IPv6 ranges through their
  // mapped form, so `::/0` in a shared list would let every IPv4 client in.
  const list = new BlockList();
  for (const range of ranges) {
    const [network = '', bits = ''] = range.split('/');
    if (isIP(network) === family) list.addSubnet(network, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
  }
  return list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
}
