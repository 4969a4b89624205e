import { assertNever } from '../../platform/assert.ts';
import { isRuleAttributeName, ruleAttributeNames, ruleAttributes, type RuleValueType } from './rule-attributes.ts';
import { closest, ruleError, type RuleError, type RuleErrorKind, type RuleSpan } from './rule-errors.ts';
import type { AttributeOperand, RuleCondition, RuleOperand, RuleTree } from './rule-syntax.ts';

/**
 * Checks a parsed rule against the attribute catalogue: every attribute exists, every comparison compares values
 * of one type, ordering (`<`, `>=`) only numbers, text helpers only strings, a condition standing alone is boolean.
 * All problems are reported, in text order; an unknown attribute is reported once and not again as a type problem.
 */
export function checkRule(text: string, tree: RuleTree): RuleError[] {
  const errors: RuleError[] = [];
  const checker = new Checker(text, (kind, message, span) => errors.push(ruleError(text, kind, message, span)));
  checker.condition(tree.condition);
  return errors;
}

/** Reports unknown attribute names seen by the lexer, for a rule that did not parse. */
export function checkAttributeNames(text: string, attributes: readonly AttributeOperand[]): RuleError[] {
  const errors: RuleError[] = [];
  const checker = new Checker(text, (kind, message, span) => errors.push(ruleError(text, kind, message, span)));
  for (const attribute of attributes) checker.typeOf(attribute);
  return errors;
}

type Report = (kind: RuleErrorKind, message: string, span: RuleSpan) => void;

const typeWords: Record<RuleValueType, string> = { number: 'a number', string: 'a string', boolean: 'true or false' };

function unknownAttributeMessage(name: string): string {
  const guess = closest(name, ruleAttributeNames);
  const hint = guess !== undefined ? ` — did you mean :${guess}:?` : ' — it is not in the catalogue of rule attributes';
  return `Unknown attribute :${name}:${hint}`;
}

class Checker {
  constructor(private readonly text: string, private readonly report: Report) {}

  /** The operand as written, shortened if long. */
  private show(operand: RuleOperand): string {
    const written = this.text.slice(operand.span.offset, operand.span.offset + operand.span.length);
    return written.length > 40 ? `${written.slice(0, 39)}…` : written;
  }

  /** The operand's type; undefined for an unknown attribute, which is reported here. */
  typeOf(operand: RuleOperand): RuleValueType | undefined {
    if (operand.kind !== 'attribute') return operand.kind;
    if (isRuleAttributeName(operand.name)) return ruleAttributes[operand.name].type;
    this.report('unknown_attribute', unknownAttributeMessage(operand.name), operand.span);
    return undefined;
  }

  /** A hint for a number written where text was expected: card BINs and category codes are text. */
  private quoteHint(expected: RuleValueType, operand: RuleOperand): string {
    return expected === 'string' && operand.kind === 'number' ? ` — text is written in single quotes: '${operand.text}'` : '';
  }

  condition(node: RuleCondition): void {
    switch (node.kind) {
      case 'or':
      case 'and':
        for (const operand of node.operands) this.condition(operand);
        return;
      case 'not':
        this.condition(node.operand);
        return;
      case 'is_missing':
        this.typeOf(node.attribute);
        return;
      case 'value':
        this.value(node.operand);
        return;
      case 'compare':
        if (node.operator === '=' || node.operator === '!=') this.equality(node.left, node.right);
        else this.sameType('number', `The operator ${node.operator} compares numbers`, [node.left, node.right]);
        return;
      case 'text':
        this.sameType('string', `${node.operator} works on text`, [node.left, node.right]);
        return;
      case 'in':
        this.list(node.left, node.items);
        return;
      default:
        assertNever(node, 'rule condition');
    }
  }

  private value(operand: RuleOperand): void {
    const type = this.typeOf(operand);
    if (type === undefined || type === 'boolean') return;
    const example = type === 'number' ? '> 100' : "= 'US'";
    const message = `${this.show(operand)} is ${typeWords[type]}, not a condition: compare it, e.g. ${this.show(operand)} ${example}`;
    this.report('type_mismatch', message, operand.span);
  }

  private equality(left: RuleOperand, right: RuleOperand): void {
    const leftType = this.typeOf(left);
    const rightType = this.typeOf(right);
    if (leftType === undefined || rightType === undefined || leftType === rightType) return;
    const message = `Cannot compare ${this.show(left)}, ${typeWords[leftType]}, with ${this.show(right)}, ${typeWords[rightType]}`;
    this.report('type_mismatch', message + this.quoteHint(leftType, right), right.span);
  }

  /** Reports the first operand that is not of `type`. */
  private sameType(type: RuleValueType, rule: string, operands: readonly RuleOperand[]): void {
    const types = operands.map((operand) => this.typeOf(operand));
    const index = types.findIndex((found) => found !== undefined && found !== type);
    const operand = operands[index];
    const found = types[index];
    if (operand === undefined || found === undefined) return;
    this.report('type_mismatch', `${rule}, but ${this.show(operand)} is ${typeWords[found]}${this.quoteHint(type, operand)}`, operand.span);
  }

  private list(left: RuleOperand, items: readonly RuleOperand[]): void {
    const leftType = this.typeOf(left);
    if (leftType === undefined) return;
    for (const item of items) {
      const itemType = this.typeOf(item);
      if (itemType === undefined || itemType === leftType) continue;
      const message = `The list value ${this.show(item)} is ${typeWords[itemType]}, but ${this.show(left)} is ${typeWords[leftType]}`;
      this.report('type_mismatch', message + this.quoteHint(leftType, item), item.span);
    }
  }
}
