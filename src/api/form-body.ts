import qs from 'qs';
import { CofferError } from '../domain/errors.ts';
import { limits } from '../limits.ts';

/**
 * Stripe's request encoding: `application/x-www-form-urlencoded` with bracket nesting (`metadata[order]=1`,
 * `expand[0]=a`, `expand[]=a`). Every value arrives as a string; `coerceToSchema` then turns strings into the
 * integers and booleans the route's schema asks for, strictly (`"12"` is an integer, `"12.0"` and `"1e3"` are
 * not), and leaves anything else as it is for the schema to refuse with a message naming the parameter.
 */
const forbiddenKey = /(^|\[)(__proto__|constructor|prototype)(\]|\[|$)/;

/**
 * Keys that could reach an object's prototype are refused outright, where the parser would silently drop them:
 * a parameter Coffer does not act on must be an error, not ignored.
 */
function refuseForbiddenKeys(text: string): void {
  for (const pair of text.split('&')) {
    const rawKey = pair.split('=')[0] ?? '';
    let key: string;
    try {
      key = decodeURIComponent(rawKey.replaceAll('+', ' '));
    } catch {
      throw new CofferError('request_body_invalid', `The parameter name "${rawKey}" is not valid URL encoding.`);
    }
    if (forbiddenKey.test(key)) {
      throw new CofferError('parameter_unknown', `Received unknown parameter: ${key}`, { param: key });
    }
  }
}

export function parseForm(text: string): Record<string, unknown> {
  refuseForbiddenKeys(text);
  try {
    return parseFormUnchecked(text);
  } catch (error) {
    if (error instanceof CofferError) throw error;
    throw new CofferError('request_body_invalid', `The parameters could not be parsed: ${(error as Error).message}`);
  }
}

/** Query strings are parsed before any hook can answer; a failure is kept and reported by `queryError`. */
const invalidQueries = new WeakMap<object, CofferError>();

export function parseQuery(text: string): Record<string, unknown> {
  try {
    return parseForm(text);
  } catch (error) {
    const marker = {};
    invalidQueries.set(marker, error instanceof CofferError ? error : new CofferError('request_body_invalid', 'The query string could not be parsed.'));
    return marker;
  }
}

export function queryError(query: unknown): CofferError | undefined {
  return typeof query === 'object' && query !== null ? invalidQueries.get(query) : undefined;
}

function parseFormUnchecked(text: string): Record<string, unknown> {
  return qs.parse(text, {
    depth: limits.formDepthMax,
    arrayLimit: limits.formArrayLengthMax,
    parameterLimit: limits.formParametersMax,
    strictDepth: true,
    throwOnLimitExceeded: true,
    allowPrototypes: false,
    allowDots: false,
    parseArrays: true,
    charset: 'utf-8',
  }) as Record<string, unknown>;
}

type Schema = {
  type?: string | string[];
  const?: unknown;
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function coerceScalar(type: string, value: string): unknown {
  switch (type) {
    case 'integer':
      return /^-?\d{1,15}$/.test(value) ? Number(value) : value;
    case 'number':
      return /^-?\d{1,15}(\.\d{1,15})?$/.test(value) ? Number(value) : value;
    case 'boolean':
      return value === 'true' ? true : value === 'false' ? false : value;
    default:
      return value;
  }
}

function coerceAnyOf(branches: Schema[], value: unknown): unknown {
  if (value === '' && branches.some((branch) => branch.const === '')) return '';
  for (const branch of branches) {
    if (branch.const !== undefined) continue;
    const coerced = coerceToSchema(branch, value);
    if (coerced !== value || (branch.type === 'string' && typeof value === 'string')) return coerced;
    if (isRecord(value) && branch.type === 'object') return coerced;
  }
  return value;
}

export function coerceToSchema(schema: Schema | undefined, value: unknown): unknown {
  if (schema === undefined) return value;
  if (schema.anyOf !== undefined) return coerceAnyOf(schema.anyOf, value);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (typeof value === 'string') {
    // A single value where a list is expected (`expand=latest_charge`) is a list of one.
    if (type === 'array' && value !== '') return [coerceToSchema(schema.items, value)];
    return type === undefined ? value : coerceScalar(type, value);
  }
  if (type === 'array' && Array.isArray(value)) return value.map((item) => coerceToSchema(schema.items, item));
  if (type === 'object' && isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const property = schema.properties?.[key];
      const extra = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
      out[key] = coerceToSchema(property ?? extra, item);
    }
    return out;
  }
  return value;
}
