import { assertNever } from '../../platform/assert.ts';
import type { RuleCondition, RuleOperand, RuleTree } from './rule-syntax.ts';

/**
 * Prints a rule in its canonical form: lower-case keywords, `IN` and `NOT IN` in capitals as Radar writes them, one
 * space between tokens, parentheses only where precedence needs them. Parsing the printed text gives a rule with the
 * same meaning, and printing that gives the same text.
 */
export function printRule(tree: RuleTree): string {
  return `${tree.action} if ${printCondition(tree.condition, 0)}`;
}

/** Binding strength: `or` 1, `and` 2, `not` 3, a predicate 4. */
function strength(node: RuleCondition): number {
  if (node.kind === 'or') return 1;
  if (node.kind === 'and') return 2;
  if (node.kind === 'not') return 3;
  return 4;
}

function printCondition(node: RuleCondition, needed: number): string {
  const printed = printBare(node);
  return strength(node) < needed ? `(${printed})` : printed;
}

function printBare(node: RuleCondition): string {
  switch (node.kind) {
    // An `or` directly inside an `or` (and an `and` inside an `and`) keeps its parentheses, so that parsing the
    // printed text gives back the tree's exact shape.
    case 'or':
      return node.operands.map((operand) => printCondition(operand, 2)).join(' or ');
    case 'and':
      return node.operands.map((operand) => printCondition(operand, 3)).join(' and ');
    case 'not':
      return `not ${printCondition(node.operand, 3)}`;
    case 'compare':
    case 'text':
      return `${printOperand(node.left)} ${node.operator} ${printOperand(node.right)}`;
    case 'in':
      return `${printOperand(node.left)} ${node.negated ? 'NOT IN' : 'IN'} (${node.items.map(printOperand).join(', ')})`;
    case 'is_missing':
      return `is_missing(${printOperand(node.attribute)})`;
    case 'value':
      return printOperand(node.operand);
    default:
      return assertNever(node, 'rule condition');
  }
}

export function printOperand(operand: RuleOperand): string {
  switch (operand.kind) {
    case 'attribute':
      return `:${operand.name}:`;
    case 'number':
      return operand.text;
    case 'string':
      return `'${operand.value.replace(/[\\']/g, (char) => `\\${char}`)}'`;
    case 'boolean':
      return operand.value ? 'true' : 'false';
    default:
      return assertNever(operand, 'rule operand');
  }
}
