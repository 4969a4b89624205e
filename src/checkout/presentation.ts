import { CofferError } from '../domain/errors.ts';
import { escapeHtml } from '../platform/html.ts';
import type { CheckoutCollected, CheckoutConsentCollection, CheckoutCustomText, CheckoutSessionRow, CheckoutSubmitType } from '../store/database.ts';

/**
 * What a Checkout Session's page says besides the order (decision 0059): the pay button's verb (`submit_type`), the
 * merchant's messages by place (`custom_text`), and what the shopper is asked to consent to (`consent_collection`).
 * A message is plain text, in which `[words](https://…)` is a link, as Stripe's custom text takes Markdown links;
 * nothing else in it is markup.
 */
export interface PresentationParams {
  submit_type?: CheckoutSubmitType;
  custom_text?: Partial<Record<keyof CheckoutCustomText, { message: string } | ''>>;
  consent_collection?: CheckoutConsentCollection;
}

const linkPattern = /\[([^\]\n]{1,200})\]\(([^)\s]{1,2048})\)/g;

/** A link of a message goes only to an https address: anything else (a script, a page of the shopper's own) is refused. */
function safeLink(address: string): URL | undefined {
  try {
    const url = new URL(address);
    return url.protocol === 'https:' && url.username === '' && url.password === '' ? url : undefined;
  } catch {
    return undefined;
  }
}

/** A message as the page shows it: escaped, with its `[words](https://…)` as links that open apart. */
export function messageHtml(message: string): string {
  let html = '';
  let from = 0;
  for (const match of message.matchAll(linkPattern)) {
    const url = safeLink(match[2] ?? '');
    if (url === undefined) continue;
    html += escapeHtml(message.slice(from, match.index));
    html += `<a href="${escapeHtml(url.href)}" target="_blank" rel="noopener noreferrer">${escapeHtml(match[1] ?? '')}</a>`;
    from = (match.index ?? 0) + match[0].length;
  }
  return html + escapeHtml(message.slice(from));
}

/**
 * The session's presentation, checked: a link that is not https is refused, a message for a part the page does not
 * show is refused (a shipping address message without shipping address collection, terms of service text without
 * terms to accept), and terms to accept need their text, since Coffer keeps no terms of service address of the
 * merchant's: the text carries the link. `''` (Stripe's way to leave a message unset) is no message.
 */
export function presentationOf(params: PresentationParams, shipsGoods: boolean): { custom_text: CheckoutCustomText | null; consent_collection: CheckoutConsentCollection | null; submit_type: CheckoutSubmitType | null } {
  const customText: CheckoutCustomText = {};
  for (const [place, value] of Object.entries(params.custom_text ?? {}) as Array<[keyof CheckoutCustomText, { message: string } | '']>) {
    if (value === '') continue;
    const message = value.message.trim();
    if (message === '') throw new CofferError('parameter_invalid', `custom_text[${place}][message] is empty.`, { param: `custom_text[${place}][message]` });
    for (const match of message.matchAll(linkPattern)) {
      if (safeLink(match[2] ?? '') === undefined) {
        throw new CofferError('parameter_invalid', `custom_text[${place}][message] links to ${match[2] ?? ''}: a link in a message must be an https URL.`, { param: `custom_text[${place}][message]` });
      }
    }
    customText[place] = { message };
  }
  const consent = params.consent_collection;
  if (customText.shipping_address !== undefined && !shipsGoods) {
    throw new CofferError('parameter_invalid', 'custom_text[shipping_address] is shown with the shipping address, which this session does not ask for: give shipping_address_collection too.',
      { param: 'custom_text[shipping_address]' });
  }
  if (consent?.terms_of_service === 'required' && customText.terms_of_service_acceptance === undefined) {
    throw new CofferError('parameter_missing', 'consent_collection[terms_of_service]=required needs custom_text[terms_of_service_acceptance][message]: the text the shopper agrees to, '
      + 'with a link to your terms ([Terms of Service](https://…)).', { param: 'custom_text[terms_of_service_acceptance]' });
  }
  if (customText.terms_of_service_acceptance !== undefined && consent?.terms_of_service !== 'required') {
    throw new CofferError('parameter_invalid', 'custom_text[terms_of_service_acceptance] is shown only when the shopper must accept terms: give consent_collection[terms_of_service]=required too.',
      { param: 'custom_text[terms_of_service_acceptance]' });
  }
  return {
    custom_text: Object.keys(customText).length === 0 ? null : customText,
    consent_collection: consent === undefined ? null : consent,
    submit_type: params.submit_type ?? null,
  };
}

/** The string key of the pay button's words for the session's `submit_type`. */
export function payWordsKey(session: Pick<CheckoutSessionRow, 'submit_type'>): 'pay' | 'book' | 'donate' {
  return session.submit_type === 'book' || session.submit_type === 'donate' ? session.submit_type : 'pay';
}

/** Stripe's `consent` of a completed session that asked for any: what the shopper accepted with the paying try. */
export function consentOf(session: Pick<CheckoutSessionRow, 'consent_collection' | 'status'>, collected: CheckoutCollected | null): Record<string, unknown> | null {
  if (session.consent_collection === null || session.status !== 'complete') return null;
  return { promotions: collected?.promotions ?? null, terms_of_service: collected?.terms_of_service ?? null };
}
