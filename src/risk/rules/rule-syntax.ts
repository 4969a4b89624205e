import type { RuleSpan } from './rule-errors.ts';

/**
 * The parsed form of a rule. Every node keeps the span of text it came from, so that a checker error or a UI can
 * point at it. Attribute names are as written: the checker, not the parser, knows the catalogue.
 */

/** Actions in precedence order: a step-up rule that fires beats an allow rule, which beats block, then review. */
export const ruleActions = ['request_step_up', 'allow', 'block', 'review'] as const;
export type RuleAction = (typeof ruleActions)[number];

export const compareOperators = ['=', '!=', '<', '<=', '>', '>='] as const;
export type CompareOperator = (typeof compareOperators)[number];

export const textOperators = ['starts_with', 'ends_with', 'contains'] as const;
export type TextOperator = (typeof textOperators)[number];

/** Words with a meaning in the language, compared ignoring case. */
export const ruleKeywords: ReadonlySet<string> = new Set<string>([
  ...ruleActions, ...textOperators, 'if', 'and', 'or', 'not', 'in', 'true', 'false', 'is_missing',
]);

export interface AttributeOperand {
  readonly kind: 'attribute';
  readonly name: string;
  readonly span: RuleSpan;
}

export interface NumberLiteral {
  readonly kind: 'number';
  readonly value: number;
  /** The digits as written (`5000.00`), printed back unchanged. */
  readonly text: string;
  readonly span: RuleSpan;
}

export interface StringLiteral {
  readonly kind: 'string';
  /** The text between the quotes, escapes resolved. */
  readonly value: string;
  readonly span: RuleSpan;
}

export interface BooleanLiteral {
  readonly kind: 'boolean';
  readonly value: boolean;
  readonly span: RuleSpan;
}

export type RuleLiteral = NumberLiteral | StringLiteral | BooleanLiteral;
export type RuleOperand = AttributeOperand | RuleLiteral;

export type RuleCondition =
  | { readonly kind: 'or'; readonly operands: readonly RuleCondition[]; readonly span: RuleSpan }
  | { readonly kind: 'and'; readonly operands: readonly RuleCondition[]; readonly span: RuleSpan }
  | { readonly kind: 'not'; readonly operand: RuleCondition; readonly span: RuleSpan }
  | {
      readonly kind: 'compare'; readonly operator: CompareOperator; readonly left: RuleOperand; readonly right: RuleOperand;
      readonly span: RuleSpan;
    }
  | {
      readonly kind: 'in'; readonly negated: boolean; readonly left: RuleOperand; readonly items: readonly RuleLiteral[];
      readonly span: RuleSpan;
    }
  | {
      readonly kind: 'text'; readonly operator: TextOperator; readonly left: RuleOperand; readonly right: RuleOperand;
      readonly span: RuleSpan;
    }
  | { readonly kind: 'is_missing'; readonly attribute: AttributeOperand; readonly span: RuleSpan }
  /** A boolean attribute or literal standing alone as a condition (`review if :livemode:`). */
  | { readonly kind: 'value'; readonly operand: RuleOperand; readonly span: RuleSpan };

export interface RuleTree {
  readonly action: RuleAction;
  readonly condition: RuleCondition;
}
