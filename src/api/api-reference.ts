import type { MerchantRoute } from './public-server.ts';
import { isListRoute } from './routes/common.ts';

/**
 * The merchant API's reference (docs/api-reference.md), written from the request schemas the routes validate
 * with, so that it lists exactly the parameters Coffer accepts: any other is refused with a 400 naming it.
 */

/** The part of a JSON schema (as TypeBox writes them) that the reference reads. */
export interface SchemaNode {
  type?: string;
  const?: unknown;
  anyOf?: SchemaNode[];
  properties?: Record<string, SchemaNode>;
  required?: string[];
  additionalProperties?: boolean | SchemaNode;
  propertyNames?: SchemaNode;
  maxProperties?: number;
  items?: SchemaNode;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
}

interface Row {
  name: string;
  type: string;
  /** Required at the top level, or (for a nested parameter) whenever its parent is given: the parent's name. */
  required: 'yes' | 'no' | { within: string };
}

function quote(value: unknown): string {
  return `\`${JSON.stringify(value)}\``;
}

/** The bounds a value must keep, in words. */
function bounds(node: SchemaNode): string[] {
  const out: string[] = [];
  const { minLength, maxLength } = node;
  if (minLength !== undefined && minLength > 0 && maxLength !== undefined) out.push(minLength === maxLength ? `${maxLength} characters` : `${minLength} to ${maxLength} characters`);
  else if (maxLength !== undefined) out.push(`at most ${maxLength} characters`);
  else if (minLength !== undefined && minLength > 0) out.push(`at least ${minLength} characters`);
  if (node.minimum !== undefined) out.push(`≥ ${node.minimum}`);
  if (node.maximum !== undefined) out.push(`≤ ${node.maximum}`);
  return out;
}

function withBounds(name: string, node: SchemaNode): string {
  const limits = bounds(node);
  return limits.length === 0 ? name : `${name} (${limits.join(', ')})`;
}

/** A scalar, list or map type in words; objects with named properties are expanded by `rowsOf` instead. */
function typeOf(node: SchemaNode): string {
  if (node.const !== undefined) return quote(node.const);
  if (node.anyOf !== undefined) {
    if (node.anyOf.every((member) => member.const !== undefined)) return `one of ${node.anyOf.map((member) => quote(member.const)).join(', ')}`;
    return union(node.anyOf.map(typeOf));
  }
  switch (node.type) {
    case 'array': {
      const items = node.items === undefined ? 'values' : typeOf(node.items);
      return `list of ${items}${node.maxItems === undefined ? '' : `, at most ${node.maxItems} entries`}`;
    }
    case 'object': {
      if (node.properties !== undefined) return 'object';
      const value = typeof node.additionalProperties === 'object' ? typeOf(node.additionalProperties) : 'values';
      const keys = node.propertyNames === undefined ? 'keys' : withBounds('keys', node.propertyNames);
      return `map of ${keys} to ${value}${node.maxProperties === undefined ? '' : `, at most ${node.maxProperties} keys`}`;
    }
    default:
      return withBounds(node.type ?? 'any', node);
  }
}

/** Alternatives in words; Stripe's empty string, which unsets a field, last. */
function union(types: string[]): string {
  const unset = quote('');
  const others = types.filter((type) => type !== unset);
  return others.join(' or ') + (others.length < types.length ? `, or ${unset} to unset` : '');
}

/**
 * The rows of an object's properties, nested objects as Stripe's bracket names (`shipping[address][city]`); a
 * union whose members include an object lists the object's properties, after a row for the union itself.
 */
function rowsOf(node: SchemaNode, prefix: string): Row[] {
  const rows: Row[] = [];
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const name = prefix === '' ? key : `${prefix}[${key}]`;
    const required: Row['required'] = !(node.required ?? []).includes(key) ? 'no' : prefix === '' ? 'yes' : { within: prefix };
    const object = child.properties !== undefined ? child : child.anyOf?.find((member) => member.properties !== undefined);
    if (object === undefined) {
      rows.push({ name, type: typeOf(child), required });
      continue;
    }
    const others = (child.anyOf ?? []).filter((member) => member !== object);
    rows.push({ name, type: union(['object', ...others.map(typeOf)]), required });
    rows.push(...rowsOf(object, name));
  }
  return rows;
}

function requiredCell(required: Row['required']): string {
  if (required === 'no') return '';
  return required === 'yes' ? 'required' : `required with \`${required.within}\``;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|');
}

/** One endpoint's section: what it is reached with, and its parameters (query for reads, body for changes). */
function section(route: MerchantRoute): string {
  const where = route.method === 'GET' || route.method === 'DELETE' ? route.querystring : route.body;
  const lines = [`### \`${route.method} ${route.url}\``, ''];
  lines.push(`Restricted keys need ${needs(route)}.${route.publishableAllowed ? ' A publishable key may call it too.' : ''}`, '');
  const rows = (where === undefined ? [] : rowsOf(where as SchemaNode, '')).map((row) => row.name !== 'expand' ? row : {
    ...row,
    type: route.expandable.length === 0 ? 'list, empty: nothing here can be expanded'
      : `list of ${route.expandable.map((path) => `\`${isListRoute(route.method, route.querystring) ? 'data.' : ''}${path}\``).join(', ')}`,
  });
  if (rows.length === 0) {
    lines.push('No parameters.', '');
    return lines.join('\n');
  }
  lines.push('| parameter | type | |', '|---|---|---|');
  for (const row of rows) lines.push(`| \`${row.name}\` | ${escapeCell(row.type)} | ${requiredCell(row.required)} |`);
  lines.push('');
  return lines.join('\n');
}

export function renderApiReference(routes: readonly MerchantRoute[]): string {
  const header = [
    '# API reference',
    '',
    'Generated from the request schemas of the merchant API (`src/api/routes/`) by `npm run docs:api`; a test fails',
    'if this file and the schemas disagree. These are the only parameters Coffer accepts: any other, or a value',
    'outside what is listed, is refused with a 400 that names it, and the request changes nothing. Nested',
    'parameters use Stripe\'s bracket names; in JSON bodies they are nested objects. Amounts are integers in the',
    'currency\'s minor unit, checked against the currency when the request runs. Where Stripe has the same',
    'endpoint, the official `stripe` package calls it with the same names; what each parameter does is as in',
    'Stripe\'s API reference, and the README says where Coffer differs. `expand` takes only the paths listed;',
    'on a list, each names the items\' field with `data.` in front (`data.latest_charge`).',
    '',
  ];
  const sorted = [...routes].sort((a, b) => a.url.localeCompare(b.url) || methodOrder(a.method) - methodOrder(b.method));
  const index = ['| endpoint | restricted keys need |', '|---|---|',
    ...sorted.map((route) => `| [\`${route.method} ${route.url}\`](#${anchor(route)}) | ${needs(route)} |`), ''];
  return [...header, ...index, ...sorted.map(section)].join('\n');
}

function permissionOf(route: MerchantRoute): string {
  return route.method === 'GET' ? 'read' : 'write';
}

/** What a restricted key needs for the route: `customers` read, or `customers` read and `payment_methods` read. */
function needs(route: MerchantRoute): string {
  return route.resources.map((resource) => `\`${resource}\` ${permissionOf(route)}`).join(' and ');
}

/** The anchor GitHub gives a section's heading: lower case, punctuation dropped, spaces as hyphens. */
function anchor(route: MerchantRoute): string {
  return `${route.method} ${route.url}`.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replaceAll(' ', '-');
}

function methodOrder(method: string): number {
  return ['GET', 'POST', 'DELETE'].indexOf(method);
}
