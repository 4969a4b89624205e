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
 * Refuses, naming the parameter, what the parser would otherwise take silently: keys that could reach an object's
 * prototype (which it would drop), and names or values that are not URL encoding of UTF-8 text (`%ZZ`, `%FF`, which
 * it would keep as written). A parameter Coffer does not understand must be an error, not ignored or mangled.
 */
function refuseUnparsable(text: string): void {
  for (const pair of text.split('&')) {
    const at = pair.indexOf('=');
    const rawKey = at === -1 ? pair : pair.slice(0, at);
    const key = decoded(rawKey);
    if (key === undefined) throw new CofferError('request_body_invalid', `The parameter name "${rawKey}" is not valid URL encoding of UTF-8 text.`);
    if (forbiddenKey.test(key)) {
      throw new CofferError('parameter_unknown', `Received unknown parameter: ${key}`, { param: key });
    }
    // `metadata[]=x` is what a client sends for an empty metadata key; numbered like a list's entries, it would
    // be stored under the key "0".
    if (/(^metadata|\[metadata\])\[\]/.test(key)) {
      throw new CofferError('parameter_invalid', `Invalid metadata key in ${key}: metadata keys cannot be empty.`, { param: key.slice(0, key.indexOf('[]')) });
    }
    if (at !== -1 && decoded(pair.slice(at + 1)) === undefined) {
      throw new CofferError('parameter_invalid', `Invalid value for ${key}: it is not valid URL encoding of UTF-8 text.`, { param: key });
    }
  }
}

function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/**
 * The first key or text value that holds a NUL character (U+0000), which no text column can store, as its
 * parameter's name (`metadata[note]`); undefined if there is none.
 */
export function parameterWithNul(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, item] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    const name = path === '' ? String(key) : `${path}[${String(key)}]`;
    if (String(key).includes('\u0000')) return name;
    const found = parameterWithNul(item, name);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * JSON bodies are held to the nesting forms are held to (`limits.formDepthMax` levels below the top-level
 * parameters), so that no later step walks an arbitrarily deep value. Recursion stops one level past the limit.
 */
export function refuseDeepJson(value: unknown): void {
  // The body itself is level -1, its parameters' values level 0.
  const tooDeep = (item: unknown, depth: number): boolean => {
    if (typeof item !== 'object' || item === null) return false;
    if (depth > limits.formDepthMax) return true;
    return (Array.isArray(item) ? item : Object.values(item)).some((child) => tooDeep(child, depth + 1));
  };
  if (tooDeep(value, -1)) {
    throw new CofferError('request_body_invalid', `The request body could not be parsed: its values are nested deeper than ${limits.formDepthMax} levels.`);
  }
}

export function parseForm(text: string): Record<string, unknown> {
  refuseUnparsable(text);
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

/**
 * `a[]=x&a[]=y` becomes `a[0]=x&a[1]=y` (numbered after any index the same list already gives), so that the parser
 * never has to guess what an empty bracket means.
 */
function numberEmptyBrackets(text: string): string {
  if (!text.includes('[]') && !/%5B%5D/i.test(text)) return text;
  const pairs = text.split('&').map((pair) => {
    const at = pair.indexOf('=');
    const rawKey = at === -1 ? pair : pair.slice(0, at);
    return { key: decodeURIComponent(rawKey.replaceAll('+', ' ')), rest: at === -1 ? '' : pair.slice(at) };
  });
  const next = new Map<string, number>();
  for (const { key } of pairs) {
    for (const match of key.matchAll(/\[(\d+)\]/g)) {
      const prefix = key.slice(0, match.index);
      next.set(prefix, Math.max(next.get(prefix) ?? 0, Number(match[1]) + 1));
    }
  }
  return pairs
    .map(({ key, rest }) => {
      let numbered = key;
      for (let at = numbered.indexOf('[]'); at !== -1; at = numbered.indexOf('[]', at + 1)) {
        const prefix = numbered.slice(0, at);
        const index = next.get(prefix) ?? 0;
        next.set(prefix, index + 1);
        numbered = `${prefix}[${index}]${numbered.slice(at + 2)}`;
      }
      return `${encodeURIComponent(numbered)}${rest}`;
    })
    .join('&');
}

/**
 * Brackets always make an object here (`metadata[0]=a` is the metadata key "0", as at Stripe): which parameters
 * are lists is the route schema's to say, and `coerceToSchema` turns `{ "0": …, "1": … }` into a list there.
 */
function parseFormUnchecked(text: string): Record<string, unknown> {
  return qs.parse(numberEmptyBrackets(text), {
    depth: limits.formDepthMax,
    parameterLimit: limits.formParametersMax,
    strictDepth: true,
    throwOnLimitExceeded: true,
    // Keys named like Object.prototype members (`metadata[toString]`) are kept, as JSON.parse keeps them; the keys
    // that could reach a prototype are refused before parsing (`refuseUnparsable`).
    allowPrototypes: true,
    allowDots: false,
    parseArrays: false,
    charset: 'utf-8',
  }) as Record<string, unknown>;
}

/** `{ "0": a, "1": b }` as `[a, b]`, in index order, when every key is an index below the list length limit. */
function indexedList(value: Record<string, unknown>): unknown[] | undefined {
  const entries = Object.entries(value);
  if (entries.length === 0) return undefined;
  const indexed: Array<[number, unknown]> = [];
  for (const [key, item] of entries) {
    if (!/^(0|[1-9]\d{0,5})$/.test(key)) return undefined;
    const index = Number(key);
    if (index >= limits.formArrayLengthMax) return undefined;
    indexed.push([index, item]);
  }
  return indexed.sort((a, b) => a[0] - b[0]).map(([, item]) => item);
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
  if (type === 'array' && isRecord(value)) {
    const list = indexedList(value);
    if (list !== undefined) return list.map((item) => coerceToSchema(schema.items, item));
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
