import { createHash } from 'node:crypto';
import { sql, type RawBuilder, type SelectQueryBuilder } from 'kysely';
import { CofferError } from '../domain/errors.ts';
import { createdBounds } from '../flows/list-page.ts';
import { unixTimeMax } from './schemas.ts';

/**
 * How a searchable field compares: `text` case-blind, exactly (`:`) or as a substring (`~`); `exact` as stored
 * (ids); `enum` one of known lower-case values; `amount` and `created` as numbers (`:`, `>`, `<`, `>=`, `<=`;
 * `created` in Unix seconds); `boolean` as `true` or `false`; `metadata` by key (`metadata['order']:'42'`).
 */
export type SearchFieldKind = 'text' | 'exact' | 'enum' | 'amount' | 'created' | 'boolean' | 'metadata';

export interface SearchField {
  kind: SearchFieldKind;
  /** The column it reads, or the expression that computes it from the row (a field inside a JSON column). */
  column: string | RawBuilder<unknown>;
  /** For `enum`: the values there are, so that a misspelt one is refused rather than matching nothing. */
  values?: readonly string[];
}

type Operator = ':' | '~' | '>' | '<' | '>=' | '<=';

/** One clause of Stripe's search language: `email:'a@b.c'`, `-status:'canceled'`, `amount>=1000`, `metadata['order']:'42'`. */
export interface SearchClause {
  field: string;
  metadataKey: string | undefined;
  operator: Operator;
  value: string;
  negated: boolean;
}

export interface SearchQuery {
  clauses: SearchClause[];
  /** Stripe joins clauses with AND or with OR, never both in one query. */
  join: 'AND' | 'OR';
}

const maxClauses = 10;
// An optional `-`, the field, an optional metadata key in quotes, the operator, then a quoted string or a bare word
// (a number for amount and created; for any other field, checkClause asks for quotes).
// Quotes inside a quoted key or value are escaped with a backslash, as is a backslash itself.
const clausePattern = /^\s*(-?)([a-z_][a-z0-9_.]*)(?:\[(?:'((?:[^'\\]|\\.){1,80})'|"((?:[^"\\]|\\.){1,80})")\])?\s*(:|~|>=|<=|>|<)\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([^\s'"()]{1,100}))\s*/;

/** The text a quoted key or value stands for: each backslash escape is the character after it. */
function unescape(quoted: string): string {
  return quoted.replace(/\\(.)/g, '$1');
}

function refuse(message: string): never {
  throw new CofferError('parameter_invalid', message, { param: 'query' });
}

const numericKinds: readonly SearchFieldKind[] = ['amount', 'created'];

/** Checks one clause against its field: the operators its kind takes, and a value it can hold. */
function checkClause(clause: SearchClause, spec: SearchField, quoted: boolean): void {
  const { field, operator, value } = clause;
  const numeric = numericKinds.includes(spec.kind);
  if (numeric && !/^-?[0-9]{1,15}$/.test(value)) refuse(`The search field ${field} takes a whole number, not '${value}'.`);
  if (spec.kind === 'created' && (Number(value) < 0 || Number(value) > unixTimeMax)) {
    refuse(`The search field created takes Unix seconds from 0 to ${unixTimeMax}, not ${value}.`);
  }
  if (spec.kind === 'boolean' && value !== 'true' && value !== 'false') refuse(`The search field ${field} is true or false, not '${value}'.`);
  if (!numeric && spec.kind !== 'boolean' && !quoted) refuse(`Put the value of ${field} in quotes: ${field}:'${value}'.`);
  if (['>', '<', '>=', '<='].includes(operator) && !numeric) refuse(`The search field ${field} cannot be compared with ${operator}; only amount and created can.`);
  if (operator === '~' && spec.kind !== 'text') refuse(`The search field ${field} cannot be matched by substring (~); use ${field}:'…'.`);
  if (operator === '~' && value.length < 3) refuse(`A substring search (~) needs at least 3 characters, not '${value}'.`);
  if (spec.kind === 'enum' && spec.values !== undefined && !spec.values.includes(value.toLowerCase())) {
    refuse(spec.values.length <= 10 ? `The search field ${field} is one of ${spec.values.join(', ')}, not '${value}'.` : `'${value}' is not a ${field} Coffer knows.`);
  }
  if ((spec.kind === 'metadata') !== (clause.metadataKey !== undefined)) refuse("Search metadata as metadata['key']:'value'.");
}

/**
 * Parses a query in Stripe's search language: up to 10 clauses, joined by AND or by OR (not both; a space is AND), each one
 * optionally negated with `-`. Only the fields given may be searched, each as its kind allows; anything else is
 * refused, naming what was wrong, rather than read some other way.
 */
export function parseSearchQuery(query: string, fields: Readonly<Record<string, SearchField>>): SearchQuery {
  const clauses: SearchClause[] = [];
  const joins = new Set<'AND' | 'OR'>();
  let rest = query;
  let spaced = true;
  while (rest.trim() !== '') {
    if (clauses.length === maxClauses) refuse(`A search query has at most ${maxClauses} clauses.`);
    if (clauses.length > 0) {
      // As at Stripe: AND or OR in any case, or a space alone, which means AND.
      const join = spaced ? /^(AND|OR)\s+/i.exec(rest) : null;
      if (join === null && !spaced) refuse(`Could not parse the search query near "${rest.trim().slice(0, 40)}": separate clauses with a space, AND or OR.`);
      joins.add(join?.[1]?.toUpperCase() === 'OR' ? 'OR' : 'AND');
      rest = rest.slice(join?.[0].length ?? 0);
    }
    const match = clausePattern.exec(rest);
    if (match === null) refuse(`Could not parse the search query near "${rest.trim().slice(0, 40)}".`);
    const [whole, minus, field = '', singleKey, doubleKey, operator = ':', single, double, bare] = match;
    const quotedKey = singleKey ?? doubleKey;
    const metadataKey = quotedKey === undefined ? undefined : unescape(quotedKey);
    if (metadataKey !== undefined && (metadataKey.length === 0 || metadataKey.length > 40)) refuse(`A metadata key has 1 to 40 characters, not ${metadataKey.length}.`);
    // Own fields only: `constructor` or `toString` is not a field, whatever an object inherits.
    const spec = Object.hasOwn(fields, field) ? fields[field] : undefined;
    if (spec === undefined) refuse(`The search field ${field} is not supported; use one of ${Object.keys(fields).join(', ')}.`);
    const quotedValue = single ?? double;
    const clause: SearchClause = {
      field, metadataKey, operator: operator as Operator, value: quotedValue === undefined ? bare ?? '' : unescape(quotedValue), negated: minus === '-',
    };
    checkClause(clause, spec, quotedValue !== undefined);
    clauses.push(clause);
    spaced = /\s$/.test(whole);
    rest = rest.slice(whole.length);
  }
  if (clauses.length === 0) throw new CofferError('parameter_invalid_empty', 'The search query is empty.', { param: 'query' });
  if (joins.size > 1) refuse('A search query joins its clauses with AND or with OR, not both.');
  return { clauses, join: joins.has('OR') ? 'OR' : 'AND' };
}

const comparisons: Record<Operator, string> = { ':': '=', '~': 'LIKE', '>': '>', '<': '<', '>=': '>=', '<=': '<=' };

/** `created` compares whole seconds with the bounds list filters use (`created[gt]=N` and `created>N` alike). */
function createdCondition(column: RawBuilder<unknown>, operator: Operator, seconds: number): RawBuilder<boolean> {
  const filter = operator === '>' ? { gt: seconds } : operator === '>=' ? { gte: seconds } : operator === '<' ? { lt: seconds } : operator === '<=' ? { lte: seconds } : seconds;
  const bounds = createdBounds(filter).map(([comparison, at]) => sql<boolean>`${column} ${sql.raw(comparison)} to_timestamp(${at})`);
  return sql<boolean>`(${sql.join(bounds, sql.raw(' AND '))})`;
}

function clauseCondition(clause: SearchClause, spec: SearchField): RawBuilder<boolean> {
  const column = typeof spec.column === 'string' ? sql.ref(spec.column) : spec.column;
  const value = clause.value;
  switch (spec.kind) {
    // Both sides are lower-cased by the database, which does not always agree with JavaScript (İ, a final Σ).
    case 'text':
      return clause.operator === '~'
        ? sql<boolean>`lower(${column}) LIKE lower(${`%${value.replace(/[%_\\]/g, '\\$&')}%`})`
        : sql<boolean>`lower(${column}) = lower(${value})`;
    case 'exact':
      return sql<boolean>`${column} = ${value}`;
    case 'enum':
      return sql<boolean>`${column} = ${value.toLowerCase()}`;
    case 'amount':
      return sql<boolean>`${column} ${sql.raw(comparisons[clause.operator])} ${Number(value)}`;
    case 'created':
      return createdCondition(column, clause.operator, Number(value));
    case 'boolean':
      return sql<boolean>`${column} = ${value === 'true'}`;
    case 'metadata':
      return sql<boolean>`${column} ->> ${clause.metadataKey ?? ''} = ${value}`;
  }
}

/** The parsed query as one SQL condition; a negated clause also matches rows where the field is null. */
export function searchCondition(query: SearchQuery, fields: Readonly<Record<string, SearchField>>): RawBuilder<boolean> {
  const conditions = query.clauses.map((clause) => {
    const spec = fields[clause.field];
    if (spec === undefined) refuse(`The search field ${clause.field} is not supported.`);
    const condition = clauseCondition(clause, spec);
    return clause.negated ? sql<boolean>`NOT coalesce(${condition}, false)` : condition;
  });
  return sql<boolean>`(${sql.join(conditions, sql.raw(` ${query.join} `))})`;
}

/** Ties a page token to its search and query, so that a token is not taken for another search's page. */
function queryFingerprint(url: string, query: string): string {
  return createHash('sha256').update(`${url}\n${query}`).digest('hex').slice(0, 12);
}

/**
 * A search's `next_page`: the position after the page's last result (results come newest first, by `seq`) and the
 * search it belongs to. A position, not an offset, so that results created or changed between pages neither
 * repeat nor go missing from the pages still to come. It grants nothing: the next page is the query's results after
 * that position, within the caller's own merchant and mode, whoever made the token.
 */
function searchPage(lastSeq: bigint, url: string, query: string): string {
  return Buffer.from(`${lastSeq}.${queryFingerprint(url, query)}`).toString('base64url');
}

const seqMax = 9_223_372_036_854_775_807n;

/**
 * The position a search `page` stands for: only a token Coffer gave as `next_page` for this same search and query
 * is one; anything else is refused rather than read as some other page.
 */
export function searchCursor(page: string, url: string, query: string): bigint {
  const seq = /^(0|[1-9][0-9]{0,18})\./.exec(Buffer.from(page, 'base64url').toString())?.[1];
  if (seq === undefined || BigInt(seq) > seqMax || searchPage(BigInt(seq), url, query) !== page) {
    throw new CofferError('parameter_invalid', `Invalid page: '${page}' is not the next_page of a search for this query.`, { param: 'page' });
  }
  return BigInt(seq);
}

/**
 * A search's `expand[]`: `total_count` asks for the number of results over all pages (as at Stripe, only when
 * expanded, since it costs a count); the rest expands the objects, as on a list.
 */
export function searchExpansions(requested: readonly string[] | undefined): { expand: string[] | undefined; totalCount: boolean } {
  if (requested === undefined) return { expand: undefined, totalCount: false };
  return { expand: requested.filter((path) => path !== 'total_count'), totalCount: requested.includes('total_count') };
}

/** How many rows a search finds over all its pages (`expand[]=total_count`). */
export async function countOf<DB, TB extends keyof DB, O>(found: SelectQueryBuilder<DB, TB, O>): Promise<number> {
  const row = await found.select(sql<string>`count(*)`.as('n')).$castTo<{ n: string | number | bigint }>().executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Stripe's search result: one page of objects, newest first, the token of the next, and the count if asked for. */
export function searchResult(url: string, query: string, data: unknown[], rows: ReadonlyArray<{ seq: bigint }>, limit: number, totalCount?: number): Record<string, unknown> {
  const last = rows[limit - 1];
  const hasMore = rows.length > limit && last !== undefined;
  return { object: 'search_result', data, has_more: hasMore, next_page: hasMore ? searchPage(last.seq, url, query) : null, ...(totalCount === undefined ? {} : { total_count: totalCount }), url };
}
