/**
 * Coffer's rule language, in the manner of Stripe Radar's: `block if :amount_usd: > 5000 and :card_country: !=
 * :ip_country:`. Pure (no I/O, clock or randomness): the risk engine compiles a rule set once per version and calls
 * `decide` for each payment. The grammar is in `rule-parser.ts`, the attributes in `rule-attributes.ts`, the
 * three-valued evaluation in `rule-compiler.ts`, precedence in `rule-set.ts`.
 */
export {
  ruleAttributes, ruleAttributeNames, isRuleAttributeName, velocityMeasures, velocityPeriods, velocitySubjects,
  type RuleAttribute, type RuleAttributeName, type RuleAttributeValue, type RuleInput, type RuleScalar, type RuleValueType,
  type VelocityAttributeName,
} from './rule-attributes.ts';
export {
  compileRule, evaluate, prepareInput,
  type CompiledRule, type CompileResult, type PreparedInput, type RuleEvaluation, type RuleTest, type RuleTruth,
} from './rule-compiler.ts';
export type { RuleError, RuleErrorKind, RulePosition, RuleSpan } from './rule-errors.ts';
export { ruleLimits } from './rule-limits.ts';
export { parseRule, type ParseResult } from './rule-parser.ts';
export { printRule } from './rule-printer.ts';
export {
  compileRuleSet, decide,
  type RuleDecision, type RuleDefinition, type RuleMode, type RuleSet, type RuleSetError, type RuleSetErrorKind,
  type RuleSetResult, type RuleSetRule,
} from './rule-set.ts';
export {
  compareOperators, ruleActions, textOperators,
  type CompareOperator, type RuleAction, type RuleCondition, type RuleLiteral, type RuleOperand, type RuleTree, type TextOperator,
} from './rule-syntax.ts';
