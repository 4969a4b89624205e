/**
 * The card fields, in a frame served from the card vault's origin. The number and security code go from here to
 * the vault's endpoint on this origin and nowhere else; the checkout page gets back a PaymentMethod id.
 */
import type { FrameMessage, TokenizeRequest } from './protocol.ts';

interface FrameConfig {
  session: string;
  parentOrigin: string;
  messages: { number: string; expiry: string; cvc: string; failed: string };
}

const config = JSON.parse(document.getElementById('frame-config')?.textContent ?? '{}') as FrameConfig;
const number = document.getElementById('number') as HTMLInputElement;
const expiry = document.getElementById('expiry') as HTMLInputElement;
const cvc = document.getElementById('cvc') as HTMLInputElement;

function reply(message: FrameMessage): void {
  window.parent.postMessage(message, config.parentOrigin);
}

/** The check digit, as the vault's `luhnValid` (which the browser bundle cannot import: it brings Node code); a hint only, the vault decides. */
function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let digit = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

function mark(input: HTMLInputElement, bad: boolean): void {
  input.setAttribute('aria-invalid', bad ? 'true' : 'false');
}

async function tokenize(): Promise<void> {
  const digits = number.value.replace(/[\s-]/g, '');
  const exp = /^\s*(\d{1,2})\s*\/\s*(\d{2}|\d{4})\s*$/.exec(expiry.value);
  const code = cvc.value.trim();
  const badNumber = !/^\d{12,19}$/.test(digits) || !luhn(digits);
  const month = exp === null ? 0 : Number(exp[1]);
  const badExpiry = exp === null || month < 1 || month > 12;
  const badCvc = !/^\d{3,4}$/.test(code);
  mark(number, badNumber);
  mark(expiry, badExpiry);
  mark(cvc, badCvc);
  if (badNumber || badExpiry || badCvc) {
    reply({ type: 'coffer:card-error', message: badNumber ? config.messages.number : badExpiry ? config.messages.expiry : config.messages.cvc });
    (badNumber ? number : badExpiry ? expiry : cvc).focus();
    return;
  }
  const year = exp?.[2] ?? '';
  try {
    const response = await fetch(`/pay/card-frame/${config.session}/payment_method`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ number: digits, exp_month: month, exp_year: Number(year.length === 2 ? `20${year}` : year), cvc: code }),
    });
    const body = (await response.json()) as { id?: string; message?: string };
    if (response.ok && body.id !== undefined) reply({ type: 'coffer:card', paymentMethod: body.id });
    else reply({ type: 'coffer:card-error', message: body.message ?? config.messages.failed });
  } catch {
    reply({ type: 'coffer:card-error', message: config.messages.failed });
  }
}

window.addEventListener('message', (event: MessageEvent<TokenizeRequest>) => {
  if (event.origin !== config.parentOrigin || event.source !== window.parent) return;
  if (event.data?.type === 'coffer:tokenize') void tokenize();
  // The page may have missed the first ready message (it was still loading): it asks again.
  else if (event.data?.type === 'coffer:ping') reply({ type: 'coffer:ready' });
});
reply({ type: 'coffer:ready' });
