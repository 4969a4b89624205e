import { ruleLimits } from './rule-limits.ts';
import { compileRule, prepareInput, type CompiledRule } from './rule-compiler.ts';
import type { RuleInput } from './rule-attributes.ts';
import { positionAt, type RuleError, type RuleErrorKind } from './rule-errors.ts';
import { ruleActions, type RuleAction } from './rule-syntax.ts';

/**
 * A rule set decides a payment as Radar does: of the active rules that fire, a step-up rule wins over an allow
 * rule, allow over block, block over review; among rules of one action, the first in the list wins. Shadow rules
 * are evaluated and reported, never decide. A `null` action means that no active rule fired: the engine allows the
 * payment (the model's thresholds act through `:risk_level:`, which rules name).
 */
export type RuleMode = 'active' | 'shadow';

export interface RuleDefinition {
  readonly id: string;
  readonly text: string;
  readonly mode: RuleMode;
}

export interface RuleSetRule {
  readonly id: string;
  readonly mode: RuleMode;
  readonly rule: CompiledRule;
}

export interface RuleSet {
  /** In the order given, which breaks ties within an action. */
  readonly rules: readonly RuleSetRule[];
  /** Every attribute slot some rule reads: what a decision prepares from its input. */
  readonly slots: readonly number[];
}

export type RuleSetErrorKind = RuleErrorKind | 'invalid_rule_id' | 'duplicate_rule_id' | 'invalid_mode';

/** A problem in one rule of a set: `field` says which part of the rule; positions are within that field's text. */
export interface RuleSetError extends Omit<RuleError, 'kind'> {
  readonly kind: RuleSetErrorKind;
  readonly index: number;
  readonly ruleId: string;
  readonly field: 'id' | 'text' | 'mode';
}

export type RuleSetResult =
  | { readonly ok: true; readonly ruleSet: RuleSet }
  | { readonly ok: false; readonly errors: readonly RuleSetError[] };

export interface RuleDecision {
  readonly action: RuleAction | null;
  /** The id of the deciding rule, when there is one. */
  readonly rule: string | null;
  /** Active rules that fired, in list order (the deciding rule among them). */
  readonly matched: readonly string[];
  /** Shadow rules that fired, in list order. */
  readonly shadowMatches: readonly string[];
}

const idPattern = /^[A-Za-z0-9_-]+$/;

/** Compiles every rule of a set; the set is usable only if all of them are valid. */
export function compileRuleSet(definitions: readonly RuleDefinition[]): RuleSetResult {
  const errors: RuleSetError[] = [];
  const whole = (index: number, ruleId: string, field: 'id' | 'mode', kind: RuleSetErrorKind, message: string): void => {
    errors.push({ kind, message, position: positionAt('', 0), length: field === 'id' ? ruleId.length : 0, index, ruleId, field });
  };
  if (definitions.length > ruleLimits.ruleSetRulesMax) {
    const index = ruleLimits.ruleSetRulesMax;
    whole(index, definitions[index]?.id ?? '', 'id', 'limit', `A rule set holds at most ${ruleLimits.ruleSetRulesMax} rules`);
    return { ok: false, errors };
  }
  const seen = new Set<string>();
  const rules: RuleSetRule[] = [];
  definitions.forEach((definition, index) => {
    const { id, text, mode } = definition;
    if (!idPattern.test(id) || id.length > ruleLimits.ruleIdLengthMax) {
      whole(index, id, 'id', 'invalid_rule_id', `A rule id is 1 to ${ruleLimits.ruleIdLengthMax} letters, digits, _ or -`);
    } else if (seen.has(id)) {
      whole(index, id, 'id', 'duplicate_rule_id', `Another rule of this set already has the id ${id}`);
    }
    seen.add(id);
    if (mode !== 'active' && mode !== 'shadow') whole(index, id, 'mode', 'invalid_mode', 'A rule runs in mode active or shadow');
    const compiled = compileRule(text);
    if (compiled.ok) rules.push({ id, mode, rule: compiled.rule });
    else errors.push(...compiled.errors.map((error) => ({ ...error, index, ruleId: id, field: 'text' as const })));
  });
  if (errors.length > 0) return { ok: false, errors };
  const slots = [...new Set(rules.flatMap((entry) => entry.rule.slots))];
  return { ok: true, ruleSet: { rules, slots } };
}

/** An action's rank in `ruleActions`: lower decides. */
const precedence: Readonly<Record<RuleAction, number>> = {
  request_step_up: ruleActions.indexOf('request_step_up'), allow: ruleActions.indexOf('allow'),
  block: ruleActions.indexOf('block'), review: ruleActions.indexOf('review'),
};

/** Decides a payment by the set's rules; every rule is evaluated, so that all matches are reported. */
export function decide(ruleSet: RuleSet, input: RuleInput): RuleDecision {
  const prepared = prepareInput(input, ruleSet.slots);
  const matched: string[] = [];
  const shadowMatches: string[] = [];
  let deciding: RuleSetRule | undefined;
  for (const entry of ruleSet.rules) {
    if (entry.rule.test(prepared) !== true) continue;
    if (entry.mode === 'shadow') {
      shadowMatches.push(entry.id);
      continue;
    }
    matched.push(entry.id);
    // Strictly better only: of two rules with one action, the earlier one stays.
    if (deciding === undefined || precedence[entry.rule.action] < precedence[deciding.rule.action]) deciding = entry;
  }
  return { action: deciding?.rule.action ?? null, rule: deciding?.id ?? null, matched, shadowMatches };
}
