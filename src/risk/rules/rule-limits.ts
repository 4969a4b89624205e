/**
 * Bounds of the rule language. They belong with the others in `src/limits.ts`; they are kept here until that file
 * is free to change (the rule language was written beside other work on it). Each is reported as a `limit` error
 * when exceeded, never applied silently.
 */
export const ruleLimits = {
  /** Longest rule text; a list of a thousand BINs fits. Radar's own rules are a line or two. */
  ruleTextLengthMax: 20_000,
  /** Values in one `IN (…)` list. */
  ruleListItemsMax: 1_000,
  /** Nested parentheses and `not`s; bounds the parser's recursion. */
  ruleNestingDepthMax: 32,
  /** Rules in one rule set. */
  ruleSetRulesMax: 1_000,
  /** Longest rule id. */
  ruleIdLengthMax: 100,
} as const;
