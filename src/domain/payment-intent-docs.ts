import { paymentIntentStatuses, paymentIntentTransitions } from './payment-intent-machine.ts';

/** The state diagram and table of `docs/payment-intent-states.md`, generated from the one transition table. */
export function renderStateDocs(): string {
  const lines = [
    '# PaymentIntent states',
    '',
    'Generated from `src/domain/payment-intent-machine.ts` by `npm run docs:states`; a test fails if this file',
    'and the table disagree. Nothing else in Coffer changes a PaymentIntent\'s status.',
    '',
    '```mermaid',
    'stateDiagram-v2',
    '  [*] --> requires_payment_method',
    '  [*] --> requires_confirmation: created with a payment method',
  ];
  for (const from of paymentIntentStatuses) {
    for (const [event, to] of Object.entries(paymentIntentTransitions[from])) lines.push(`  ${from} --> ${to}: ${event}`);
  }
  lines.push('  succeeded --> [*]', '  canceled --> [*]', '```', '', '| from | event | to |', '|---|---|---|');
  for (const from of paymentIntentStatuses) {
    for (const [event, to] of Object.entries(paymentIntentTransitions[from])) lines.push(`| ${from} | ${event} | ${to} |`);
  }
  lines.push('');
  return lines.join('\n');
}
