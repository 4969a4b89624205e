import { CofferError } from '../domain/errors.ts';

/** One clause of Stripe's search language: `email:'a@b.c'`, `name~'jen'`, `metadata['order']:'42'`. */
export interface SearchClause {
  field: string;
  metadataKey: string | undefined;
  operator: ':' | '~';
  value: string;
}

const clausePattern = /^\s*([a-z_]+)(?:\['([^'\]]{1,40})'\])?\s*([:~])\s*'((?:[^'\\]|\\.)*)'\s*/;

/**
 * Parses a search query of clauses joined by AND (Stripe also has OR, which Coffer does not support yet and
 * refuses rather than misread). `fields` lists the fields that may be searched.
 */
export function parseSearchQuery(query: string, fields: readonly string[]): SearchClause[] {
  const clauses: SearchClause[] = [];
  let rest = query;
  for (let i = 0; i < 10 && rest.trim() !== ''; i += 1) {
    if (i > 0) {
      const and = /^\s*AND\s+/.exec(rest);
      if (and === null) throw new CofferError('parameter_invalid', `Could not parse the search query near "${rest.trim().slice(0, 40)}": join clauses with AND.`, { param: 'query' });
      rest = rest.slice(and[0].length);
    }
    const match = clausePattern.exec(rest);
    if (match === null) throw new CofferError('parameter_invalid', `Could not parse the search query near "${rest.trim().slice(0, 40)}".`, { param: 'query' });
    const [whole, field = '', metadataKey, operator, value = ''] = match;
    if (!fields.includes(field)) throw new CofferError('parameter_invalid', `The search field ${field} is not supported; use one of ${fields.join(', ')}.`, { param: 'query' });
    if ((field === 'metadata') !== (metadataKey !== undefined)) throw new CofferError('parameter_invalid', "Search metadata as metadata['key']:'value'.", { param: 'query' });
    clauses.push({ field, metadataKey, operator: operator === '~' ? '~' : ':', value: value.replace(/\\(.)/g, '$1') });
    rest = rest.slice(whole.length);
  }
  if (rest.trim() !== '') throw new CofferError('parameter_invalid', 'A search query has at most 10 clauses.', { param: 'query' });
  if (clauses.length === 0) throw new CofferError('parameter_invalid_empty', 'The search query is empty.', { param: 'query' });
  return clauses;
}
