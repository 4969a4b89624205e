import { loggedSessionId } from '../platform/logger.ts';
import { createHmac, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { setupFutureUsageFor, type SetupFutureUsage } from '../domain/card-payment-options.ts';
import { CofferError } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import { applyShopperChoices, orderWith, recoverSession, recoveryClosed, recoveryOrder, sessionForRecovery, withDiscount, type DiscountChange, pageForPaymentIntent, settleCheckoutSession, sessionForPage, successUrlOf, systemContext } from '../flows/checkout-sessions.ts';
import { confirmPaymentIntent, type ConfirmParams, type NewCustomerDetails } from '../flows/confirm-payment-intent.ts';
import type { Services } from '../flows/context.ts';
import { keepingResponder } from '../flows/respond.ts';
import { createCardPaymentMethod } from '../flows/saved-payment-methods.ts';
import { openSupportCase } from '../flows/support-cases.ts';
import { linkForPage, sessionFromLink, type LinkSessionParams } from '../flows/payment-links.ts';
import { detailsFields, readDetails } from './collected-details.ts';
import { checkDiscount, codeByWord, sessionDiscountUsedUp } from '../flows/coupons.ts';
import { choiceMessage, choicesSent, orderView, promotionCodeField, quantityField, quantityWords, shippingFields, totalsSummary } from './order-choices.ts';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import {
  checkoutRelyingParty, passkeyRegistrationOptions, passkeyStepUpOptions, registerShopperPasskey, verifyCodeAndSetPassword, verifyPasskeyStepUp, verifyPaymentPassword,
} from '../flows/shopper-credentials.ts';
import { sendStepUpCode, stepUpRequired, StepUpRefused, verifiedStepUp, verifyStepUpCode } from '../flows/shopper-step-up.ts';
import { escapeHtml } from '../platform/html.ts';
import { sameSecretText } from '../platform/secret.ts';
import type { CheckoutCollected, CheckoutLineItem, CheckoutSessionRow, PaymentIntentRow, PaymentLinkRow } from '../store/database.ts';
import { addressObject } from '../objects/common.ts';
import { messageHtml, payWordsKey } from './presentation.ts';
import { ApiKeyCache, authenticateMerchant } from '../api/merchant-auth.ts';
import { checkoutAsset } from './assets.ts';
import { chooseLanguage, declineReason, formatMoney, say, type Language, type StringKey } from './strings.ts';

/**
 * The hosted checkout (`/pay/<session>` on the public listener) and its card frame. The frame is served only on
 * the card vault's origin (`COFFER_CARD_FRAME_ORIGIN`; by default the other loopback name of the public URL,
 * 127.0.0.1 and localhost being two origins): card numbers are typed into it and go from it to the vault, so
 * the page's own script, on the checkout origin, cannot read them (the browser's same-origin policy). Pages
 * carry a Content-Security-Policy with per-response nonces; posts carry a token bound to the session (CSRF) and
 * must come from the page's own origin.
 */
export interface CheckoutOrigins {
  page: string;
  frame: string | null;
}

export function checkoutOrigins(publicUrl: string, configuredFrame: string | undefined): CheckoutOrigins {
  const page = new URL(publicUrl).origin;
  if (configuredFrame !== undefined) return { page, frame: new URL(configuredFrame).origin };
  const url = new URL(publicUrl);
  const other = url.hostname === '127.0.0.1' ? 'localhost' : url.hostname === 'localhost' ? '127.0.0.1' : undefined;
  if (other === undefined) return { page, frame: null };
  url.hostname = other;
  return { page, frame: url.origin };
}

const idPattern = /^cs_(test|live)_[A-Za-z0-9]{24}$/;

function hostOf(origin: string): string {
  return new URL(origin).host;
}

function token(services: Services, purpose: string): string {
  return createHmac('sha256', services.checkoutKey.reveal()).update(purpose).digest('base64url');
}

function tokenMatches(services: Services, purpose: string, given: string): boolean {
  return sameSecretText(given, token(services, purpose));
}

function csrfToken(services: Services, sessionId: string): string {
  return token(services, `checkout csrf ${sessionId}`);
}

/** Keeps what the shopper filled in with the open session: its customer_details once paid, and the page's fields. */
async function keepCollected(services: Services, session: CheckoutSessionRow, collected: CheckoutCollected): Promise<void> {
  await services.db.updateTable('checkout_sessions').set({ collected: JSON.stringify(collected), updated_at: new Date(services.clock.nowMs()) })
    .where('id', '=', session.id).where('status', '=', 'open').execute();
}

/**
 * The shopper's email as the merchant gave it: the session's `customer_email`, or its customer's email. A customer
 * the session made itself (`customer_creation=always`) holds what the shopper typed, which the page keeps asking for.
 */
async function merchantEmailOf(services: Services, session: CheckoutSessionRow): Promise<string | null> {
  if (session.customer_email !== null || session.customer_id === null || session.customer_creation === 'always') return session.customer_email;
  const customer = await services.db.selectFrom('customers').select('email').where('id', '=', session.customer_id).executeTakeFirst();
  return customer?.email || null;
}

/**
 * The Customer a session made with `customer_creation=always` makes of its shopper (decision 0058): the email (the
 * merchant's, else the one the page asked for), the billing name and address (else the shipping ones), the phone,
 * the shipping details, and the language the page was shown in.
 */
function newCustomerDetails(session: CheckoutSessionRow, collected: CheckoutCollected, lang: Language): NewCustomerDetails {
  const billing = collected.billing ?? collected.shipping;
  return {
    email: session.customer_email ?? collected.email ?? null, name: billing?.name || null, phone: collected.phone ?? null,
    address: billing === undefined ? null : addressObject(billing.address),
    shipping: collected.shipping === undefined ? null : { name: collected.shipping.name, phone: collected.phone ?? null, address: addressObject(collected.shipping.address) },
    preferred_locales: [session.locale ?? lang],
  };
}

/** WeChat's own browser (its user agent says MicroMessenger), where WeChat Pay is paid by JSAPI. */
function inWeChat(request: FastifyRequest): boolean {
  return /MicroMessenger\//i.test(request.headers['user-agent'] ?? '');
}

function csrfMatches(services: Services, sessionId: string, given: unknown): boolean {
  return typeof given === 'string' && tokenMatches(services, `checkout csrf ${sessionId}`, given);
}

function pageCsp(nonce: string, frameOrigin: string | null): string {
  return [
    "default-src 'none'", `script-src 'nonce-${nonce}'`, "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
    `frame-src ${frameOrigin ?? "'none'"}`, "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'",
  ].join('; ');
}

function frameCsp(nonce: string, pageOrigin: string): string {
  return [
    "default-src 'none'", `script-src 'nonce-${nonce}'`, "style-src 'self'", "connect-src 'self'", "form-action 'none'",
    "base-uri 'none'", `frame-ancestors ${pageOrigin}`,
  ].join('; ');
}

/** Inline JSON for a `<script type="application/json">` block: nothing in it can end the element. */
function jsonForHtml(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

interface Shell {
  language: Language;
  title: string;
  nonce: string;
  body: string;
  script?: string;
  bodyAttributes?: string;
  sessionId?: string;
}

function languageLinks(sessionId: string | undefined, language: Language, path: string): string {
  if (sessionId === undefined) return '';
  const other: Language = language === 'en' ? 'zh' : 'en';
  const label = other === 'en' ? 'English' : '简体中文';
  return `<nav aria-label="${escapeHtml(say(language, 'language'))}" class="links"><span></span><a href="${escapeHtml(path)}?lang=${other}" lang="${other === 'zh' ? 'zh-CN' : 'en'}" hreflang="${other === 'zh' ? 'zh-CN' : 'en'}">${label}</a></nav>`;
}

function shell(page: Shell & { path?: string }): string {
  return `<!doctype html>
<html lang="${page.language === 'zh' ? 'zh-CN' : 'en'}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${escapeHtml(page.title)}</title>
<link rel="stylesheet" href="/pay/assets/checkout.css">
</head>
<body${page.bodyAttributes ?? ''}>
<main>
${languageLinks(page.sessionId, page.language, page.path ?? '')}
${page.body}
</main>
${page.script === undefined ? '' : `<script nonce="${page.nonce}" src="/pay/assets/${page.script}"></script>`}
</body>
</html>`;
}

function securityTips(language: Language): string {
  return `<section class="card tips" aria-labelledby="tips-title"><h2 id="tips-title">${escapeHtml(say(language, 'securityTitle'))}</h2><ul>
<li>${escapeHtml(say(language, 'tip1'))}</li><li>${escapeHtml(say(language, 'tip2'))}</li><li>${escapeHtml(say(language, 'tip3'))}</li></ul></section>`;
}

/** One line of an order summary: the item, its quantity (HTML: words or a field), its description, its amount. */
function itemRow(name: string, quantity: string, description: string | null | undefined, amount: string, amountId?: string): string {
  const described = description === null || description === undefined ? '' : `<span class="desc">${escapeHtml(description)}</span>`;
  return `<li><span>${escapeHtml(name)} ${quantity}${described}</span><span${amountId === undefined ? '' : ` id="${amountId}"`}>${escapeHtml(amount)}</span></li>`;
}

function orderSummary(session: CheckoutSessionRow, merchantName: string, language: Language, discountUsedUp = false): string {
  const row = (item: CheckoutLineItem, index: number) =>
    itemRow(item.name, quantityField(session, index, language), item.description, formatMoney(item.amount_total, session.currency, language), `item-amount-${index}`);
  const items = session.line_items.map((item, index) => (item.optional === undefined ? row(item, index) : '')).join('');
  // The items the shopper may add (decision 0061), apart, under their own heading.
  const optional = session.line_items.map((item, index) => (item.optional === undefined ? '' : row(item, index))).join('');
  return `<section class="card" aria-labelledby="summary-title">
<h1>${escapeHtml(say(language, 'payTo', { merchant: merchantName }))}</h1>
<h2 id="summary-title">${escapeHtml(say(language, 'orderSummary'))}</h2>
<ul class="items">${items}</ul>
${optional === '' ? '' : `<h3 class="optional-title">${escapeHtml(say(language, 'optionalTitle'))}</h3><ul class="items optional-items">${optional}</ul>`}
${totalsSummary(session, language, discountUsedUp)}
<p class="total"><span>${escapeHtml(say(language, 'total'))}</span><span id="total">${escapeHtml(formatMoney(session.amount_total, session.currency, language))}</span></p>
${promotionCodeField(session, language)}
</section>`;
}

const methodLabels: Record<string, StringKey> = { card: 'card', alipay: 'alipay', wechat_pay: 'wechatPay' };

interface PageState {
  message?: string;
  waiting?: boolean;
  qr?: string;
  /** Inside WeChat with sign-in configured: WeChat Pay is paid in WeChat itself. */
  jsapi?: boolean;
  /** Back from WeChat's sign-in: the page goes on paying by itself. */
  resume?: boolean;
  /** The card the shopper pays with is kept for later payments (and for which): the page asks their consent. */
  keepsCard?: SetupFutureUsage;
  /** The shopper's email as the merchant gave it (the session's, or its customer's); the page asks when null. */
  merchantEmail: string | null;
  /** The session's discount has no use left for it: the page says so and offers to remove it. */
  discountUsedUp?: boolean;
  /** The customer's saved cards the page shows them to pay with (decision 0063). */
  savedCards?: SavedCardView[];
  /** The shopper may choose to save the new card they pay with (decision 0063). */
  offersSave?: boolean;
}

interface SavedCardView {
  id: string;
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
}

/**
 * The session customer's cards the page may show them again (decision 0063): saved to the merchant's customer the
 * session was made for, not detached, and allowed by the session's filters (`always` unless it says otherwise), the
 * newest five. None for a session without such a customer (one made of the shopper has none yet).
 */
async function savedCardsOf(services: Services, session: CheckoutSessionRow): Promise<Array<SavedCardView & { allowRedisplay: string }>> {
  // A recovered session's address lived 30 days in an email: it shows no saved cards (decision 0064).
  if (session.customer_id === null || session.customer_creation === 'always' || session.recovered_from !== null || !session.payment_method_types.includes('card')) return [];
  const filters = session.saved_payment_method_options?.allow_redisplay_filters ?? ['always'];
  const rows = await services.db.selectFrom('payment_methods').selectAll().where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode)
    .where('customer_id', '=', session.customer_id).where('type', '=', 'card').where('detached_at', 'is', null).where('allow_redisplay', 'in', filters)
    .orderBy('seq', 'desc').limit(5).execute();
  return rows.flatMap((row) => (row.card === null ? [] : [{
    id: row.id, brand: row.card.brand, last4: row.card.last4, expMonth: row.card.exp_month, expYear: row.card.exp_year, allowRedisplay: row.allow_redisplay,
  }]));
}

const brandNames: Record<string, string> = { visa: 'Visa', mastercard: 'Mastercard', amex: 'American Express', discover: 'Discover', jcb: 'JCB', unionpay: 'UnionPay', diners: 'Diners Club' };

/** The saved cards to choose from, and a new card (the card frame), in the card's panel. */
function savedCardChoice(cards: readonly SavedCardView[], language: Language): string {
  if (cards.length === 0) return '';
  const radios = cards.map((card, index) => `<label><input type="radio" name="saved_card" value="${escapeHtml(card.id)}"${index === 0 ? ' checked' : ''}><span>${escapeHtml(say(language, 'savedCardLine', {
    brand: brandNames[card.brand] ?? card.brand, last4: card.last4, month: String(card.expMonth).padStart(2, '0'), year: String(card.expYear % 100).padStart(2, '0'),
  }))}</span></label>`).join('');
  return `<fieldset class="saved-cards"><legend>${escapeHtml(say(language, 'savedCards'))}</legend><div class="methods">${radios}<label><input type="radio" name="saved_card" value=""><span>${escapeHtml(say(language, 'newCard'))}</span></label></div></fieldset>`;
}

function paymentPage(services: Services, session: CheckoutSessionRow, merchantName: string, language: Language, origins: CheckoutOrigins, nonce: string, state: PageState): string {
  const amount = formatMoney(session.amount_total, session.currency, language);
  const payWords = payWordsKey(session);
  const methods = session.payment_method_types.filter((type) => type !== 'card' || origins.frame !== null);
  const [first] = methods;
  const radios = methods.map((type) => `<label><input type="radio" name="method" value="${type}"${type === first ? ' checked' : ''}><span>${escapeHtml(say(language, methodLabels[type] ?? 'card'))}</span></label>`).join('');
  const frameUrl = origins.frame === null ? null : `${origins.frame}/pay/card-frame?session=${session.id}&lang=${language}`;
  const panels = [
    methods.includes('card') && frameUrl !== null
      ? `<div data-panel="card">${savedCardChoice(state.savedCards ?? [], language)}<div id="new-card"${(state.savedCards ?? []).length > 0 ? ' hidden' : ''}><iframe id="card-frame" class="card-frame" title="${escapeHtml(say(language, 'cardFrameTitle'))}" src="${escapeHtml(frameUrl)}"></iframe>${
        state.offersSave === true ? `<label class="check"><input type="checkbox" id="save-card" value="accepted"> <span>${escapeHtml(say(language, 'saveCardOptIn', { merchant: merchantName }))}</span></label>`
          : session.consent_collection?.payment_method_reuse_agreement?.position === 'hidden' ? '' : cardConsent(language, merchantName, state.keepsCard)}</div></div>` : '',
    methods.includes('alipay') ? '<div data-panel="alipay" hidden></div>' : '',
    methods.includes('wechat_pay') ? `<div data-panel="wechat_pay" hidden><div id="wechat-qr" class="qr"${state.qr === undefined ? ' hidden' : ''}>
<img id="wechat-qr-image" alt="${escapeHtml(say(language, 'wechatQrAlt', { amount }))}"${state.qr === undefined ? '' : ` src="${escapeHtml(state.qr)}"`}>
<p>${escapeHtml(say(language, 'wechatScan', { amount }))}</p></div></div>` : '',
  ].join('');
  const passkeys = checkoutRelyingParty(origins.page) !== undefined;
  const config = {
    session: session.id, csrf: csrfToken(services, session.id), frameOrigin: origins.frame,
    // What the shopper is shown: sent back with every post, and refused if the payment has changed since.
    amount: session.amount_total.toString(), currency: session.currency, sandbox: !session.livemode,
    // What the page recomputes the order with when the shopper picks a shipping rate or a quantity (checkout/order-choices.ts).
    order: orderView(session, language),
    strings: {
      processing: say(language, 'processing'), waiting: say(language, 'waiting'), failed: say(language, 'failed'), passkeyFailed: say(language, 'stepUp_passkey_failed'),
      wechatNotCompleted: say(language, 'wechatNotCompleted'),
    },
  };
  const cancel = session.cancel_url === null ? '' : `<p class="links"><a href="${escapeHtml(session.cancel_url)}">${escapeHtml(say(language, 'cancel'))}</a></p>`;
  const body = `${orderSummary(session, merchantName, language, state.discountUsedUp)}
<section class="card" aria-labelledby="method-title">
<form id="payment-form" novalidate>
${detailsFields(session, language, state.merchantEmail)}
${shippingFields(session, language)}
<fieldset><legend id="method-title">${escapeHtml(say(language, 'chooseMethod'))}</legend><div class="methods">${radios}</div></fieldset>
${panels}
${consentFields(session, language, merchantName)}
${stepUpSection(language, passkeys)}
<p id="error" class="error" role="alert" tabindex="-1"${state.message === undefined ? ' hidden' : ''}>${escapeHtml(state.message ?? '')}</p>
<p id="status" class="status" role="status" aria-live="polite"${state.waiting === true ? '' : ' hidden'}>${state.waiting === true ? escapeHtml(say(language, 'waiting')) : ''}</p>
${customText(session, 'submit')}
<button id="pay" type="submit" disabled data-card="${escapeHtml(say(language, payWords, { amount }))}" data-alipay="${escapeHtml(say(language, 'payWithAlipay'))}" data-wechat_pay="${escapeHtml(say(language, state.jsapi === true ? 'payWithWechat' : 'showWechatCode'))}" data-verify="${escapeHtml(say(language, 'verify'))}">${escapeHtml(say(language, payWords, { amount }))}</button>
${customText(session, 'after_submit')}
</form>
${cancel}
</section>
${securityTips(language)}
<script type="application/json" id="checkout-config">${jsonForHtml(config)}</script>`;
  return shell({
    language, title: say(language, 'title'), nonce, body, script: 'checkout.js', sessionId: session.id, path: `/pay/${session.id}`,
    bodyAttributes: `${state.waiting === true ? ' data-waiting="true"' : ''}${state.resume === true ? ' data-resume="wechat_pay"' : ''}`,
  });
}

/** A message of the merchant's in its place on the page (`custom_text`), if the session has one there. */
function customText(session: CheckoutSessionRow, place: 'submit' | 'after_submit'): string {
  const message = session.custom_text?.[place]?.message;
  return message === undefined ? '' : `<p class="hint custom-text" id="custom-text-${place.replace('_', '-')}">${messageHtml(message)}</p>`;
}

/**
 * What the session asks the shopper to consent to (`consent_collection`): the merchant's terms, which they must tick
 * to pay (the text is the merchant's, with its link), and the merchant's offers by email, which they may.
 */
function consentFields(session: CheckoutSessionRow, language: Language, merchantName: string): string {
  const consent = session.consent_collection;
  const parts: string[] = [];
  if (consent?.promotions === 'auto') {
    const kept = session.collected?.promotions === 'opt_in' ? ' checked' : '';
    parts.push(`<label class="check"><input type="checkbox" id="promotions" data-detail="promotions" value="opt_in"${kept}> <span>${escapeHtml(say(language, 'promotionsOptIn', { merchant: merchantName }))}</span></label>`);
  }
  const terms = session.custom_text?.terms_of_service_acceptance?.message;
  if (consent?.terms_of_service === 'required' && terms !== undefined) {
    const kept = session.collected?.terms_of_service === 'accepted' ? ' checked' : '';
    parts.push(`<label class="check"><input type="checkbox" id="terms" data-detail="terms" value="accepted" required data-missing="${escapeHtml(say(language, 'termsMissing'))}"${kept}> <span id="terms-text">${messageHtml(terms)}</span></label>`);
  }
  return parts.join('\n');
}

/**
 * The line that tells the shopper their card will be kept, shown with the card (paying with it is the consent), and
 * only when the card would be kept: `off_session` lets the merchant charge it later without them, `on_session`
 * keeps it for their own later purchases.
 */
function cardConsent(language: Language, merchantName: string, keeps: SetupFutureUsage | undefined): string {
  if (keeps === undefined) return '';
  const key: StringKey = keeps === 'off_session' ? 'cardKeptOffSession' : 'cardKeptOnSession';
  return `<p id="card-consent" class="hint consent">${escapeHtml(say(language, key, { merchant: merchantName }))}</p>`;
}

/**
 * The step-up panel: a one-time code (by SMS or email; with it, the shopper may set a payment password or save a
 * passkey for next time), the payment password, or a passkey (offered where the page's origin can be a relying
 * party).
 */
function stepUpSection(language: Language, passkeys: boolean): string {
  const t = (key: StringKey) => escapeHtml(say(language, key));
  const method = (value: string, key: StringKey, checked: boolean) =>
    `<label class="method"><input type="radio" name="step-method" value="${value}"${checked ? ' checked' : ''}> ${t(key)}</label>`;
  return `<section id="step-up" class="step-up" aria-labelledby="step-up-title" hidden>
<h2 id="step-up-title">${t('stepUpTitle')}</h2>
<p>${t('stepUpText')}</p>
<fieldset><legend>${t('stepUpHow')}</legend><div class="methods">
${method('code', 'stepUpCodeMethod', true)}${method('password', 'stepUpPasswordMethod', false)}${passkeys ? method('passkey', 'stepUpPasskeyMethod', false) : ''}
</div></fieldset>
<div data-step="identity">
<label class="field" for="step-up-phone">${t('phone')}</label>
<input class="text" id="step-up-phone" type="text" autocomplete="tel" inputmode="email" maxlength="254">
</div>
<div data-step="code">
<p><button id="step-up-send" type="button">${t('sendCode')}</button></p>
<label class="field" for="step-up-code">${t('code')}</label>
<input class="text" id="step-up-code" inputmode="numeric" autocomplete="one-time-code" maxlength="6">
<label class="field" for="step-up-new-password">${t('newPassword')}</label>
<input class="text" id="step-up-new-password" type="password" inputmode="numeric" autocomplete="new-password" maxlength="6">
${passkeys ? `<label class="check"><input type="checkbox" id="step-up-save-passkey"> ${t('savePasskey')}</label>` : ''}
</div>
<div data-step="password" hidden>
<label class="field" for="step-up-password">${t('paymentPassword')}</label>
<input class="text" id="step-up-password" type="password" inputmode="numeric" autocomplete="current-password" maxlength="6">
<p class="hint">${t('passwordHelp')}</p>
</div>
<div data-step="passkey" hidden><p>${t('passkeyText')}</p></div>
</section>`;
}

function messagePage(language: Language, nonce: string, title: string, text: string, link?: { href: string; label: string }): string {
  const action = link === undefined ? '' : `<a class="button" href="${escapeHtml(link.href)}">${escapeHtml(link.label)}</a>`;
  return shell({ language, title, nonce, body: `<section class="card"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p>${action}</section>` });
}

/** The message a payment link's merchant gives the shopper once paid (`after_completion[hosted_confirmation][custom_message]`). */
async function linkMessage(services: Services, session: CheckoutSessionRow): Promise<string | undefined> {
  if (session.payment_link_id === null) return undefined;
  const link = await services.db.selectFrom('payment_links').select('after_completion').where('id', '=', session.payment_link_id).executeTakeFirst();
  return link?.after_completion.type === 'hosted_confirmation' ? link.after_completion.hosted_confirmation.custom_message ?? undefined : undefined;
}

/**
 * The "Continue to payment" button of a page that makes a session only when the shopper asks (a payment link's, a
 * recovery address's): a form post with the page's token, so that opening the address makes nothing.
 */
function continueForm(action: string, formToken: string, language: Language): string {
  return `<form method="post" action="${escapeHtml(action)}">
<input type="hidden" name="token" value="${escapeHtml(formToken)}">
<input type="hidden" name="lang" value="${language}">
<button id="continue" type="submit">${escapeHtml(say(language, 'linkContinue'))}</button>
</form>`;
}

/**
 * An order left (decision 0064): what a new session for it would hold now (today's prices), with the button that makes
 * it; undefined when it can no longer be made (an archived price, a deleted customer).
 */
async function recoveryPage(services: Services, expired: CheckoutSessionRow, merchant: string, language: Language, nonce: string): Promise<string | undefined> {
  let order: Awaited<ReturnType<typeof recoveryOrder>>;
  try {
    order = await recoveryOrder(services, expired);
  } catch (error) {
    if (error instanceof CofferError) return undefined;
    throw error;
  }
  const items = order.items.filter((item) => item.quantity > 0)
    .map((item) => itemRow(item.name, quantityWords(item.quantity, language), item.description, formatMoney(item.amount_total, order.currency, language))).join('');
  const body = `<section class="card" aria-labelledby="summary-title">
<h1>${escapeHtml(say(language, 'recoveryTitle'))}</h1>
<h2 id="summary-title">${escapeHtml(say(language, 'payTo', { merchant }))}</h2>
<ul class="items">${items}</ul>
<p class="total"><span>${escapeHtml(say(language, 'total'))}</span><span id="total">${escapeHtml(formatMoney(order.total, order.currency, language))}</span></p>
${continueForm(`/pay/recover/${expired.recovery_token ?? ''}`, token(services, `recover ${expired.id}`), language)}
</section>
${securityTips(language)}`;
  return shell({ language, title: say(language, 'recoveryTitle'), nonce, body });
}

/**
 * A payment link's page: the order it sells at today's prices, and the button that makes the shopper's session;
 * undefined when a price or product it sells (or offers to add) was archived since (the order can no longer be sold).
 */
async function linkPage(services: Services, link: PaymentLinkRow, merchant: string, language: Language, nonce: string): Promise<string | undefined> {
  const kept = link.session_params as unknown as LinkSessionParams;
  // The items it may add too (decision 0061): a session could not be made with one archived.
  const ids = [...kept.line_items, ...(kept.optional_items ?? [])].map((item) => item.price);
  const prices = await services.db.selectFrom('prices').innerJoin('products', (join) => join.onRef('products.id', '=', 'prices.product_id')
    .onRef('products.merchant_id', '=', 'prices.merchant_id').onRef('products.livemode', '=', 'prices.livemode'))
    .select(['prices.id', 'prices.unit_amount', 'prices.active', 'products.name', 'products.description', 'products.active as product_active', 'products.deleted_at'])
    .where('prices.merchant_id', '=', link.merchant_id).where('prices.livemode', '=', link.livemode).where('prices.id', 'in', ids).execute();
  const sold = (id: string) => prices.some((row) => row.id === id && row.active && row.product_active && row.deleted_at === null);
  if (!ids.every(sold)) return undefined;
  let total = 0n;
  const items = kept.line_items.map((item) => {
    const price = prices.find((row) => row.id === item.price);
    const amount = (price?.unit_amount ?? 0n) * BigInt(item.quantity);
    total += amount;
    return itemRow(price?.name ?? '', quantityWords(item.quantity, language), price?.description, formatMoney(amount, link.currency, language));
  }).join('');
  const shippingNote = (kept.shipping_options ?? []).length > 0 ? `<p class="hint">${escapeHtml(say(language, 'linkShippingNext'))}</p>` : '';
  const body = `<section class="card" aria-labelledby="summary-title">
<h1>${escapeHtml(say(language, 'payTo', { merchant }))}</h1>
<h2 id="summary-title">${escapeHtml(say(language, 'orderSummary'))}</h2>
<ul class="items">${items}</ul>
<p class="total"><span>${escapeHtml(say(language, 'total'))}</span><span id="total">${escapeHtml(formatMoney(total, link.currency, language))}</span></p>
${shippingNote}
${continueForm(`/buy/${link.id}`, token(services, `buy ${link.id}`), language)}
</section>
${securityTips(language)}`;
  return shell({ language, title: say(language, 'title'), nonce, body, sessionId: link.id, path: `/buy/${link.id}` });
}

function donePage(services: Services, session: CheckoutSessionRow, merchantName: string, language: Language, nonce: string, notice?: { text: string; error: boolean }, merchantMessage?: string): string {
  const amount = formatMoney(session.amount_total, session.currency, language);
  const receiptTo = session.customer_email ?? session.collected?.email ?? null;
  const sent = receiptTo === null ? '' : `<p>${escapeHtml(say(language, 'receiptSent', { email: receiptTo }))}</p>`;
  const noticeHtml = notice === undefined ? '' : `<p class="${notice.error ? 'error' : 'success'}" role="${notice.error ? 'alert' : 'status'}">${escapeHtml(notice.text)}</p>`;
  const body = `<section class="card" aria-labelledby="done-title">
<h1 id="done-title" class="success">${escapeHtml(say(language, 'doneTitle'))}</h1>
<p>${escapeHtml(say(language, 'doneText', { amount, merchant: merchantName }))}</p>
${merchantMessage === undefined ? '' : `<p id="merchant-message">${escapeHtml(merchantMessage)}</p>`}
<dl class="receipt"><dt>${escapeHtml(say(language, 'receiptReference'))}</dt><dd id="receipt-reference">${escapeHtml(session.payment_intent_id)}</dd></dl>
${sent}
${session.success_url === '' ? '' : `<a class="button" href="${escapeHtml(successUrlOf(session))}">${escapeHtml(say(language, 'continue'))}</a>`}
</section>
<section class="card" aria-labelledby="problem-title">
<h2 id="problem-title">${escapeHtml(say(language, 'problemTitle'))}</h2>
<p>${escapeHtml(say(language, 'problemText'))}</p>
${noticeHtml}
<form method="post" action="/pay/${session.id}/support">
<input type="hidden" name="csrf" value="${escapeHtml(csrfToken(services, session.id))}">
<input type="hidden" name="lang" value="${language}">
<label class="field" for="problem-message">${escapeHtml(say(language, 'problemMessage'))}</label>
<textarea id="problem-message" name="message" rows="3" maxlength="2000" required></textarea>
<label class="field" for="problem-contact">${escapeHtml(say(language, 'problemContact'))}</label>
<input class="text" id="problem-contact" name="contact" maxlength="200" autocomplete="email">
<p><button type="submit">${escapeHtml(say(language, 'problemSend'))}</button></p>
</form>
</section>
${securityTips(language)}`;
  return shell({ language, title: say(language, 'doneTitle'), nonce, body, sessionId: session.id, path: `/pay/${session.id}/done` });
}

function cardFramePage(session: CheckoutSessionRow, language: Language, origins: CheckoutOrigins, nonce: string): string {
  const config = {
    session: session.id, parentOrigin: origins.page,
    messages: {
      number: say(language, 'invalidCard', { reason: say(language, 'cardNumber') }), expiry: say(language, 'invalidCard', { reason: say(language, 'expiry') }),
      cvc: say(language, 'invalidCard', { reason: say(language, 'securityCode') }), failed: say(language, 'failed'),
    },
  };
  const body = `<form id="card-form" novalidate aria-label="${escapeHtml(say(language, 'cardDetails'))}">
<label class="field" for="number">${escapeHtml(say(language, 'cardNumber'))}</label>
<input class="text" id="number" name="number" inputmode="numeric" autocomplete="cc-number" maxlength="23" spellcheck="false">
<div class="row"><div><label class="field" for="expiry">${escapeHtml(say(language, 'expiry'))}</label>
<input class="text" id="expiry" name="expiry" inputmode="numeric" autocomplete="cc-exp" maxlength="7" placeholder="MM / YY"></div>
<div><label class="field" for="cvc">${escapeHtml(say(language, 'securityCode'))}</label>
<input class="text" id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" maxlength="4"></div></div>
</form>
<script type="application/json" id="frame-config">${jsonForHtml(config)}</script>`;
  return shell({ language, title: say(language, 'cardFrameTitle'), nonce, body, script: 'card-frame.js', bodyAttributes: ' class="frame"' });
}

/** What the page should do next, from the session's PaymentIntent (and the error of a confirmation just made). */
function nextStep(session: CheckoutSessionRow, intent: PaymentIntentRow, language: Language, error?: CofferError): Record<string, unknown> {
  if (session.status === 'complete') return { state: 'complete', redirect: `/pay/${session.id}/done?lang=${language}` };
  if (session.status === 'expired') return { state: 'expired', redirect: `/pay/${session.id}?lang=${language}` };
  if (error !== undefined) return { state: 'error', message: say(language, 'declined', { reason: declineReason(language, error.code, error.details.declineCode) }) };
  const action = intent.next_action as {
    type?: string; redirect_to_url?: { url?: string }; alipay_handle_redirect?: { url?: string }; wechat_pay_display_qr_code?: { image_data_url?: string };
    wechat_pay_jsapi?: Record<string, string>;
  } | null;
  if (intent.status === 'requires_action' && action !== null) {
    if (action.type === 'wechat_pay_display_qr_code' && action.wechat_pay_display_qr_code?.image_data_url !== undefined) return { state: 'qr', qr: action.wechat_pay_display_qr_code.image_data_url };
    if (action.type === 'wechat_pay_jsapi' && action.wechat_pay_jsapi !== undefined) return { state: 'jsapi', parameters: action.wechat_pay_jsapi };
    const url = action.redirect_to_url?.url ?? action.alipay_handle_redirect?.url;
    if (url !== undefined) return { state: 'redirect', redirect: url };
  }
  if (intent.status === 'processing' || intent.status === 'requires_action') return { state: 'waiting' };
  const last = intent.last_payment_error as { code?: string; decline_code?: string } | null;
  if (last !== null && intent.status === 'requires_payment_method') {
    return { state: 'open', message: say(language, 'declined', { reason: declineReason(language, last.code ?? '', last.decline_code) }) };
  }
  return { state: 'open' };
}

async function merchantName(services: Services, merchantId: string): Promise<string> {
  const row = await services.db.selectFrom('merchants').select('name').where('id', '=', merchantId).executeTakeFirst();
  return row?.name ?? '';
}

/** Whether a post names the amount and currency the PaymentIntent has now (the page the shopper saw is current). */
function showsPayment(body: { amount?: unknown; currency?: unknown }, intent: PaymentIntentRow): boolean {
  return typeof body.amount === 'string' && body.amount === intent.amount.toString() && body.currency === intent.currency;
}

function html(reply: FastifyReply, status: number, body: string, csp: string): FastifyReply {
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts, which the
  // origin check refuses; nothing leaves for other sites either way.
  return reply.code(status).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').header('content-security-policy', csp)
    .header('referrer-policy', 'same-origin').send(body);
}

function json(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store').send(JSON.stringify(body));
}

/**
 * The merchant whose test secret key opens the outbox (`Authorization: Bearer sk_test_…`, or the key as the user
 * name of HTTP basic authentication, which a browser asks for). The messages hold shoppers' addresses and orders,
 * so each merchant sees its own only, and nobody without a key sees any.
 */
async function outboxMerchant(services: Services, keys: ApiKeyCache, request: FastifyRequest, reply: FastifyReply): Promise<string> {
  try {
    const { actor, signingSecretSealed } = await authenticateMerchant(services.db, keys, services.logger, request.headers.authorization, undefined,
      new Date(services.clock.nowMs()), { resources: ['checkout'], method: 'GET', address: request.ip, publishableAllowed: false });
    if (actor.livemode || actor.keyKind !== 'secret' || signingSecretSealed !== null) {
      throw new CofferError('insufficient_permissions', 'The sandbox outbox shows test mode\'s messages: open it with a test secret key (not a restricted one) that does not require signed requests.');
    }
    return actor.merchantId;
  } catch (error) {
    if (error instanceof CofferError && error.httpStatus === 401) reply.header('www-authenticate', 'Basic realm="Coffer sandbox outbox (your test secret key as the user name)", charset="UTF-8"');
    throw error;
  }
}

/** Test mode's outbox: the receipts and codes Coffer would have sent to a merchant's shoppers, newest first. */
function registerSandboxOutbox(app: FastifyInstance, services: Services): void {
  const keys = new ApiKeyCache();
  app.get('/sandbox/outbox', async (request, reply) => {
    const merchantId = await outboxMerchant(services, keys, request, reply);
    const to = (request.query as { to?: string }).to;
    let query = services.db.selectFrom('shopper_messages').selectAll().where('merchant_id', '=', merchantId).where('livemode', '=', false);
    if (typeof to === 'string' && to !== '') query = query.where('recipient', '=', to);
    const rows = await query.orderBy('seq', 'desc').limit(50).execute();
    if ((request.query as { format?: string }).format === 'json') {
      return json(reply, 200, { object: 'list', data: rows.map((row) => ({ id: row.id, channel: row.channel, to: row.recipient, subject: row.subject, body: row.body, reference: row.reference, created: Math.floor(row.created_at.getTime() / 1000) })) });
    }
    const n = randomBytes(16).toString('base64');
    const items = rows.map((row) => `<article class="card"><h2>${escapeHtml(row.subject)}</h2><p>${escapeHtml(row.channel)} → ${escapeHtml(row.recipient)}</p><pre>${escapeHtml(row.body)}</pre></article>`).join('');
    return html(reply, 200, shell({ language: 'en', title: 'Sandbox outbox', nonce: n, body: `<h1>Sandbox outbox (test mode)</h1>${items || '<p>No messages.</p>'}` }), pageCsp(n, null));
  });
}

export function registerCheckoutPages(app: FastifyInstance, services: Services): void {
  registerSandboxOutbox(app, services);
  const origins = (): CheckoutOrigins => checkoutOrigins(services.connectors.publicUrl(), services.checkoutFrameOrigin);
  const onPageHost = (request: FastifyRequest) => request.headers.host === hostOf(origins().page);
  const onFrameHost = (request: FastifyRequest) => {
    const frame = origins().frame;
    return frame !== null && request.headers.host === hostOf(frame);
  };
  const language = (request: FastifyRequest, session: CheckoutSessionRow | undefined) =>
    chooseLanguage((request.query as { lang?: string }).lang, session?.locale ?? null, request.headers['accept-language']);
  const nonce = () => randomBytes(16).toString('base64');
  const notFound = (request: FastifyRequest, reply: FastifyReply) => {
    const lang = language(request, undefined);
    const n = nonce();
    return html(reply, 404, messagePage(lang, n, say(lang, 'notFound'), say(lang, 'notFound')), pageCsp(n, null));
  };
  /** A session for a page of the checkout origin, brought up to date; undefined answers 404. */
  const pageSession = async (request: FastifyRequest): Promise<CheckoutSessionRow | undefined> => {
    const id = (request.params as { id: string }).id;
    if (!onPageHost(request) || !idPattern.test(id)) return undefined;
    const found = await sessionForPage(services, id);
    return found === undefined ? undefined : found.status === 'open' ? settleCheckoutSession(services, found.id) : found;
  };
  const intentOf = (session: CheckoutSessionRow) => services.db.selectFrom('payment_intents').selectAll().where('id', '=', session.payment_intent_id).executeTakeFirstOrThrow();
  const sameOrigin = (request: FastifyRequest, origin: string | null) => origin !== null && request.headers.origin === origin;

  for (const name of ['checkout.js', 'card-frame.js', 'checkout.css']) {
    app.get(`/pay/assets/${name}`, async (_request, reply) => {
      const asset = checkoutAsset(name);
      if (asset === undefined) return reply.code(404).send();
      return reply.header('content-type', asset.type).header('cache-control', 'public, max-age=300').send(asset.body);
    });
  }

  app.get('/pay/:id', async (request, reply) => {
    const session = await pageSession(request);
    if (session === undefined) return notFound(request, reply);
    const lang = language(request, session);
    const n = nonce();
    if (session.status === 'complete') return reply.redirect(`/pay/${session.id}/done?lang=${lang}`, 303);
    if (session.status === 'expired') {
      const link = session.cancel_url === null ? undefined : { href: session.cancel_url, label: say(lang, 'returnToShop') };
      return html(reply, 200, messagePage(lang, n, say(lang, 'expiredTitle'), say(lang, 'expiredText'), link), pageCsp(n, null));
    }
    const intent = await intentOf(session);
    const step = nextStep(session, intent, lang);
    const changed = (request.query as { changed?: string }).changed === '1';
    if (changed && step.state === 'open' && step.message === undefined) step.message = say(lang, 'paymentChanged');
    const usedUp = step.state === 'open' && await sessionDiscountUsedUp(services.db, session);
    if (usedUp) step.message = say(lang, 'codeUsedUpRemove');
    const state: PageState = {
      merchantEmail: await merchantEmailOf(services, session), discountUsedUp: usedUp,
      ...(step.state === 'open' && typeof step.message === 'string' ? { message: step.message } : {}),
      ...(step.state === 'waiting' || step.state === 'qr' || step.state === 'jsapi' ? { waiting: true } : {}),
      ...(step.state === 'qr' ? { qr: step.qr as string } : {}),
    };
    const keepsCard = setupFutureUsageFor(intent, 'card');
    if (keepsCard !== null) state.keepsCard = keepsCard;
    state.savedCards = await savedCardsOf(services, session);
    state.offersSave = session.saved_payment_method_options?.payment_method_save === 'enabled';
    const jsapi = inWeChat(request) && services.connectors.wechatSignIn(session.livemode) !== undefined;
    const resume = (request.query as { resume?: string }).resume === 'wechat_pay' && session.wechat_openid !== null && step.state === 'open';
    return html(reply, 200, paymentPage(services, session, await merchantName(services, session.merchant_id), lang, origins(), n, { ...state, jsapi, resume }), pageCsp(n, origins().frame));
  });

  // Inside WeChat: back from WeChat's web sign-in with a code, traded (no transaction open) for the shopper's openid.
  app.get('/pay/:id/wechat-sign-in', async (request, reply) => {
    const session = await pageSession(request);
    if (session === undefined) return notFound(request, reply);
    const lang = language(request, session);
    const n = nonce();
    const query = request.query as { code?: unknown; state?: unknown };
    const signIn = services.connectors.wechatSignIn(session.livemode);
    if (signIn === undefined || typeof query.state !== 'string' || !tokenMatches(services, `wechat sign-in ${session.id}`, query.state)) {
      return html(reply, 403, messagePage(lang, n, say(lang, 'failed'), say(lang, 'failed')), pageCsp(n, null));
    }
    if (session.status !== 'open') return reply.redirect(`/pay/${session.id}?lang=${lang}`, 303);
    const answer = typeof query.code === 'string' ? await signIn.openidFor(query.code) : { error: 'no code' };
    if ('error' in answer) {
      services.logger.warn({ session: loggedSessionId(session.id), reason: answer.error }, 'checkout: WeChat sign-in failed');
      return html(reply, 400, messagePage(lang, n, say(lang, 'failed'), say(lang, 'wechatNotCompleted')), pageCsp(n, null));
    }
    await services.db.updateTable('checkout_sessions').set({ wechat_openid: answer.openid, updated_at: new Date(services.clock.nowMs()) })
      .where('id', '=', session.id).where('status', '=', 'open').execute();
    return reply.redirect(`/pay/${session.id}?lang=${lang}&resume=wechat_pay`, 303);
  });

  app.get('/pay/:id/status', async (request, reply) => {
    const session = await pageSession(request);
    if (session === undefined) return json(reply, 404, { state: 'error', message: 'not found' });
    return json(reply, 200, nextStep(session, await intentOf(session), language(request, session)));
  });

  app.post('/pay/:id/confirm', async (request, reply) => {
    const session = await pageSession(request);
    if (session === undefined) return json(reply, 404, { state: 'error', message: 'not found' });
    const lang = language(request, session);
    if (!sameOrigin(request, origins().page) || !csrfMatches(services, session.id, request.headers['x-coffer-csrf'])) {
      return json(reply, 403, { state: 'error', message: say(lang, 'failed') });
    }
    const body = (request.body ?? {}) as { method?: unknown; payment_method?: unknown; device?: unknown; amount?: unknown; currency?: unknown; details?: unknown; shipping_rate?: unknown; quantities?: unknown; save_card?: unknown };
    const method = typeof body.method === 'string' ? body.method : '';
    if (!session.payment_method_types.includes(method)) return json(reply, 400, { state: 'error', message: say(lang, 'failed') });
    if (session.status !== 'open') return json(reply, 200, nextStep(session, await intentOf(session), lang));
    const params: ConfirmParams = { return_url: `${origins().page}/pay/${session.id}/return?lang=${lang}` };
    let savedCard = false;
    // The addresses and phone the session asks for, as Stripe's Checkout collects them. A refusal names the field
    // to fix and changes nothing; they are kept (below) only once everything else the page sent is checked.
    const details = readDetails(session, body.details, lang, await merchantEmailOf(services, session));
    if ('refused' in details) return json(reply, 400, { state: 'error', message: details.refused.message, field: details.refused.field });
    const cardSent = typeof body.payment_method === 'string' && /^pm_[A-Za-z0-9]{24}$/.test(body.payment_method);
    // What the page shows as chosen (a shipping rate, adjustable quantities), within what the session allows, and
    // with the total it makes shown: set before anything else reads the amount. Anything else is refused, naming
    // the field (or showing the order as it stands), and changes nothing.
    const choices = choicesSent(session, body);
    if (choices !== undefined) {
      const checked = orderWith(session, choices);
      if ('refused' in checked) return json(reply, 400, { state: 'error', message: choiceMessage(checked.refused, session.currency, lang), field: checked.refused.field });
      if (body.amount !== checked.order.total.toString() || body.currency !== session.currency) {
        return json(reply, 200, { state: 'redirect', redirect: `/pay/${session.id}?lang=${lang}&changed=1` });
      }
      if (method === 'card' && !cardSent) return json(reply, 400, { state: 'error', message: say(lang, 'failed') });
      await applyShopperChoices(services, session, choices, request.ip);
    }
    const intent = await intentOf(session);
    if (!showsPayment(body, intent)) return json(reply, 200, { state: 'redirect', redirect: `/pay/${session.id}?lang=${lang}&changed=1` });
    params.expectedAmount = { amount: intent.amount, currency: intent.currency };
    // A proof the shopper gave for this payment is used whenever there is one; above the shop's amount it is needed.
    const proof = await verifiedStepUp(services.db, session, intent, services.clock.nowMs());
    if (proof !== undefined) params.shopperStepUp = proof.method;
    else if (await stepUpRequired(services, session, intent)) return json(reply, 200, { state: 'step_up' });
    params.askShopperForStepUp = true;
    if (typeof body.device === 'string' && /^dev_[0-9a-f]{32}$/.test(body.device)) params.radar_options = { session: body.device };
    if (method === 'card') {
      if (!cardSent) return json(reply, 400, { state: 'error', message: say(lang, 'failed') });
      params.payment_method = body.payment_method as string;
      // A saved card is one the page showed this shopper (their customer's, allowed to be shown again); the card
      // frame's are new and belong to no one.
      const sent = await services.db.selectFrom('payment_methods').select('customer_id').where('id', '=', params.payment_method)
        .where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode).executeTakeFirst();
      savedCard = sent !== undefined && sent.customer_id !== null;
      if (savedCard && !(await savedCardsOf(services, session)).some((card) => card.id === params.payment_method)) {
        return json(reply, 400, { state: 'error', message: say(lang, 'failed') });
      }
    } else if (method === 'alipay') {
      params.payment_method_data = { type: 'alipay' };
    } else {
      // Inside WeChat's browser the shopper pays in WeChat itself (JSAPI), which needs their openid: signed in first.
      const signIn = inWeChat(request) ? services.connectors.wechatSignIn(session.livemode) : undefined;
      if (signIn !== undefined && session.wechat_openid === null) {
        // What the shopper filled in is kept, so that the page they come back to from WeChat's sign-in shows it.
        if (Object.keys(details.collected).length > 0 && (intent.status === 'requires_payment_method' || intent.status === 'requires_confirmation') && intent.operation_in_flight === null) {
          await keepCollected(services, session, details.collected);
        }
        return json(reply, 200, { state: 'redirect', redirect: signIn.authorizeUrl(`${origins().page}/pay/${session.id}/wechat-sign-in`, token(services, `wechat sign-in ${session.id}`)) });
      }
      // Asked again while WeChat's payment sheet is open or was closed: the same parameters, not a second order.
      const step = nextStep(session, intent, lang);
      if (signIn !== undefined && step.state === 'jsapi') return json(reply, 200, step);
      params.payment_method_data = { type: 'wechat_pay' };
      params.payment_method_options = signIn !== undefined && session.wechat_openid !== null
        ? { wechat_pay: { client: 'jsapi', openid: session.wechat_openid } }
        : { wechat_pay: { client: 'web' } };
    }
    // The shopper's own choice to save a new card (decision 0063), made again with every try: a later try unticked,
    // with a saved card or with a wallet, keeps nothing ('none' overrides whatever else the PaymentIntent says).
    if (session.saved_payment_method_options?.payment_method_save === 'enabled') {
      const save = method === 'card' && !savedCard && body.save_card === true;
      params.payment_method_options = { ...params.payment_method_options, card: { setup_future_usage: save ? 'on_session' : 'none' } };
      details.collected.save_payment_method = save ? 'accepted' : 'declined';
    }
    if (Object.keys(details.collected).length > 0) {
      // The shipping address goes to the PaymentIntent with its confirmation, in the confirmation's transaction; the
      // billing address and phone are kept with the session for its customer_details, only while the PaymentIntent
      // can still be confirmed (a try while a payment is under way keeps nothing). When the session is paid, its
      // shipping details are read back from the PaymentIntent (settleCheckoutSession).
      const shipping = details.collected.shipping;
      if (shipping !== undefined) params.shipping = { name: shipping.name, address: shipping.address, ...(details.collected.phone === undefined ? {} : { phone: details.collected.phone }) };
      if ((intent.status === 'requires_payment_method' || intent.status === 'requires_confirmation') && intent.operation_in_flight === null) {
        await keepCollected(services, session, details.collected);
      }
    }
    // What the shopper answered besides the payment (consents, the merchant's own fields), kept by the attempt itself.
    const { terms_of_service, promotions, custom_fields, save_payment_method } = details.collected;
    params.pageAnswers = Object.fromEntries(Object.entries({ terms_of_service, promotions, custom_fields, save_payment_method }).filter(([, value]) => value !== undefined));
    if (session.customer_creation === 'always') params.newCustomer = newCustomerDetails(session, details.collected, lang);
    const capture = keepingResponder();
    try {
      await confirmPaymentIntent(services, systemContext(session, 'checkout', true, request.ip), session.payment_intent_id, params, capture.respond);
    } catch (error) {
      if (!(error instanceof CofferError)) throw error;
      if (error.code === 'shopper_step_up_required') return json(reply, 200, { state: 'step_up' });
      if (error.code === 'checkout_payment_changed') return json(reply, 200, { state: 'redirect', redirect: `/pay/${session.id}?lang=${lang}&changed=1` });
      // The page, shown again, says the discount has no use left and offers to remove it.
      if (error.code === 'checkout_discount_used_up') return json(reply, 200, { state: 'redirect', redirect: `/pay/${session.id}?lang=${lang}` });
      const current = await intentOf(session);
      return json(reply, 200, nextStep(session, current, lang, error));
    }
    const result = capture.last();
    const settled = await settleCheckoutSession(services, session.id);
    return json(reply, 200, nextStep(settled, result?.paymentIntent ?? (await intentOf(settled)), lang, result?.error));
  });

  // A promotion code the shopper types (`allow_promotion_codes`, decision 0062), or the one applied removed (''):
  // checked against the order the page shows (its choices come with it), then set with the order and its total, as
  // a choice is. A refusal names the code's field, in the shopper's language, and changes nothing.
  app.post('/pay/:id/promotion-code', async (request, reply) => {
    const session = await pageSession(request);
    if (session === undefined) return json(reply, 404, { state: 'error', message: 'not found' });
    const lang = language(request, session);
    const body = (request.body ?? {}) as { code?: unknown; shipping_rate?: unknown; quantities?: unknown };
    const word = typeof body.code === 'string' ? body.code.trim() : '';
    if (!sameOrigin(request, origins().page) || !csrfMatches(services, session.id, request.headers['x-coffer-csrf'])) {
      return json(reply, 403, { state: 'error', message: say(lang, 'failed') });
    }
    // A session that takes no codes takes none; its own discount may still be removed once it has no use left.
    if (!session.allow_promotion_codes && !(word === '' && session.discount !== null && await sessionDiscountUsedUp(services.db, session))) {
      return json(reply, 403, { state: 'error', message: say(lang, 'failed') });
    }
    if (session.status !== 'open') return json(reply, 200, nextStep(session, await intentOf(session), lang));
    const refuse = (key: StringKey) => json(reply, 400, { state: 'error', message: say(lang, key), field: 'promotion_code' });
    const choices = choicesSent(session, body) ?? {};
    const scope = { merchantId: session.merchant_id, livemode: session.livemode };
    let change: DiscountChange = { discount: null };
    if (word !== '') {
      // Each word takes one of the page's tries first, in one statement (tries made at once cannot pass the bound);
      // a code refused for what it is keeps it, one taken or refused for the order gives it back.
      const tries = (by: number) => services.db.updateTable('checkout_sessions').set((eb) => ({ promotion_code_refusals: eb('promotion_code_refusals', '+', by) }))
        .where('id', '=', session.id);
      const taken = await tries(1).where('promotion_code_refusals', '<', limits.promotionCodeRefusalsMax).returning('id').executeTakeFirst();
      if (taken === undefined) return refuse('codeTooManyTries');
      const givenBack = async (answer: () => unknown) => {
        await tries(-1).execute();
        return answer();
      };
      const found = await codeByWord(services.db, scope, word, session.customer_id);
      if (found === undefined) return refuse('codeUnknown');
      // The order the code is checked against: the page's, before any discount.
      const plain = orderWith(withDiscount(session, { discount: null }), choices);
      if ('refused' in plain) return givenBack(() => json(reply, 400, { state: 'error', message: choiceMessage(plain.refused, session.currency, lang), field: plain.refused.field }));
      const order = { currency: session.currency, customerId: session.customer_id, shipping: plain.order.amountShipping,
        items: plain.order.items.map((item) => ({ amount: item.amount_total, product: item.product_id })) };
      const checked = await checkDiscount(services.db, scope, found, order, services.clock.nowMs(), session.id);
      if ('refused' in checked) return ['codeExpired', 'codeUsedUp', 'codeNotForCustomer'].includes(checked.refused) ? refuse(checked.refused) : givenBack(() => refuse(checked.refused));
      await tries(-1).execute();
      change = { discount: checked.discount };
    }
    const chosen = orderWith(withDiscount(session, change), choices);
    if ('refused' in chosen) return json(reply, 400, { state: 'error', message: choiceMessage(chosen.refused, session.currency, lang), field: chosen.refused.field });
    const after = await applyShopperChoices(services, session, choices, request.ip, change);
    // Not set: a payment is under way (or the session changed meanwhile in another tab); the page shows what stands.
    if (after.discount_coupon_id !== (change.discount?.coupon.id ?? null) || after.discount_promotion_code_id !== (change.discount?.promotion_code?.id ?? null)) return refuse('codePaying');
    return json(reply, 200, { state: 'redirect', redirect: `/pay/${session.id}?lang=${lang}` });
  });

  // Step-up: a one-time code by SMS, bound to this session's payment.
  const stepUpPost = (path: string, act: (session: CheckoutSessionRow, body: Record<string, unknown>, origin: string, lang: Language) => Promise<Record<string, unknown>>) =>
    app.post(path, async (request, reply) => {
      const session = await pageSession(request);
      if (session === undefined) return json(reply, 404, { state: 'error', message: 'not found' });
      const lang = language(request, session);
      if (session.status !== 'open' || !sameOrigin(request, origins().page) || !csrfMatches(services, session.id, request.headers['x-coffer-csrf'])) {
        return json(reply, 403, { state: 'error', message: say(lang, 'failed') });
      }
      const body = (request.body ?? {}) as Record<string, unknown>;
      try {
        // Every step-up is for the payment the shopper sees: a page showing another amount is told so, and shown the new one.
        if (!showsPayment(body, await intentOf(session))) {
          return json(reply, 400, { state: 'redirect', redirect: `/pay/${session.id}?lang=${lang}&changed=1`, message: say(lang, 'stepUp_payment_changed') });
        }
        return json(reply, 200, await act(session, body, request.ip, lang));
      } catch (error) {
        if (!(error instanceof StepUpRefused)) throw error;
        return json(reply, 400, { state: 'error', message: say(lang, `stepUp_${error.reason}`, { remaining: String(error.remaining ?? 0) }) });
      }
    });
  const text = (body: Record<string, unknown>, key: string) => (typeof body[key] === 'string' ? body[key].trim() : '');
  stepUpPost('/pay/:id/step-up/send', async (session, body, origin, lang) => {
    await sendStepUpCode(services, session, text(body, 'destination') || text(body, 'phone'), origin);
    return { state: 'code_sent', message: say(lang, 'codeSent') };
  });
  stepUpPost('/pay/:id/step-up/verify', async (session, body, origin) => {
    const newPassword = text(body, 'new_password');
    if (newPassword === '') await verifyStepUpCode(services, session, text(body, 'code'), origin);
    else await verifyCodeAndSetPassword(services, session, text(body, 'code'), newPassword, origin);
    return { state: 'verified' };
  });
  stepUpPost('/pay/:id/step-up/password', async (session, body, origin) => {
    await verifyPaymentPassword(services, session, text(body, 'identity'), text(body, 'password'), origin);
    return { state: 'verified' };
  });
  // Passkeys: the relying party is the page's origin; none on an origin whose host is an IP address.
  const relyingParty = () => {
    const rp = checkoutRelyingParty(origins().page);
    if (rp === undefined) throw new StepUpRefused('passkey_unavailable');
    return rp;
  };
  const credentialOf = <T>(body: Record<string, unknown>): T => {
    const credential = body.credential;
    if (typeof credential !== 'object' || credential === null || typeof (credential as { id?: unknown }).id !== 'string') throw new StepUpRefused('passkey_failed');
    return credential as T;
  };
  stepUpPost('/pay/:id/step-up/passkey/options', async (session, _body, origin) => ({ state: 'passkey', options: await passkeyStepUpOptions(services, session, relyingParty(), origin) }));
  stepUpPost('/pay/:id/step-up/passkey/verify', async (session, body, origin) => {
    await verifyPasskeyStepUp(services, session, relyingParty(), credentialOf<AuthenticationResponseJSON>(body), origin);
    return { state: 'verified' };
  });
  stepUpPost('/pay/:id/step-up/passkey/register-options', async (session, _body, origin) => ({ state: 'passkey', options: await passkeyRegistrationOptions(services, session, relyingParty(), origin) }));
  stepUpPost('/pay/:id/step-up/passkey/register', async (session, body, origin) => {
    await registerShopperPasskey(services, session, relyingParty(), credentialOf<RegistrationResponseJSON>(body), origin);
    return { state: 'registered' };
  });

  // A PaymentIntent made through the API, paid on this page: opened with its client secret, which leaves the
  // address bar at once (the page session's id takes its place).
  app.get('/pay/intent', async (request, reply) => {
    const query = request.query as { client_secret?: unknown; return_url?: unknown };
    if (!onPageHost(request)) return notFound(request, reply);
    const secret = typeof query.client_secret === 'string' ? query.client_secret : '';
    const returnUrl = typeof query.return_url === 'string' && query.return_url !== '' ? query.return_url : undefined;
    let session: CheckoutSessionRow | undefined;
    try {
      session = await pageForPaymentIntent(services, secret, returnUrl);
    } catch (error) {
      if (!(error instanceof CofferError)) throw error;
      const lang = language(request, undefined);
      const n = nonce();
      return html(reply, 400, messagePage(lang, n, say(lang, 'failed'), error.message), pageCsp(n, null));
    }
    if (session === undefined) return notFound(request, reply);
    return reply.redirect(`/pay/${session.id}`, 303);
  });

  // Back from 3-D Secure or Alipay (through Coffer's keyed return link): done, or the page again with what happened.
  app.get('/pay/:id/return', async (request, reply) => {
    const session = await pageSession(request);
    if (session === undefined) return notFound(request, reply);
    const lang = language(request, session);
    return reply.redirect(session.status === 'complete' ? `/pay/${session.id}/done?lang=${lang}` : `/pay/${session.id}?lang=${lang}`, 303);
  });

  app.get('/pay/:id/done', async (request, reply) => {
    const session = await pageSession(request);
    if (session === undefined) return notFound(request, reply);
    const lang = language(request, session);
    if (session.status !== 'complete') return reply.redirect(`/pay/${session.id}?lang=${lang}`, 303);
    const n = nonce();
    return html(reply, 200, donePage(services, session, await merchantName(services, session.merchant_id), lang, n, undefined, await linkMessage(services, session)), pageCsp(n, null));
  });

  app.post('/pay/:id/support', async (request, reply) => {
    const session = await pageSession(request);
    if (session === undefined) return notFound(request, reply);
    const body = (request.body ?? {}) as { csrf?: unknown; message?: unknown; contact?: unknown; lang?: unknown };
    const lang = chooseLanguage(typeof body.lang === 'string' ? body.lang : undefined, session.locale, request.headers['accept-language']);
    const n = nonce();
    const name = await merchantName(services, session.merchant_id);
    if (session.status !== 'complete' || !sameOrigin(request, origins().page) || !csrfMatches(services, session.id, body.csrf)) {
      return html(reply, 403, messagePage(lang, n, say(lang, 'failed'), say(lang, 'failed')), pageCsp(n, null));
    }
    const message = typeof body.message === 'string' ? body.message.trim() : '';
    const contact = typeof body.contact === 'string' ? body.contact.trim() : '';
    if (message === '' || message.length > 2_000 || contact.length > 200) {
      return html(reply, 400, donePage(services, session, name, lang, n, { text: say(lang, 'problemEmpty'), error: true }), pageCsp(n, null));
    }
    const opened = await openSupportCase(services, session, { message, contact: contact === '' ? null : contact }, request.ip);
    if (opened === undefined) {
      return html(reply, 429, donePage(services, session, name, lang, n, { text: say(lang, 'problemTooMany'), error: true }), pageCsp(n, null));
    }
    return html(reply, 200, donePage(services, session, name, lang, n, { text: say(lang, 'problemThanks', { case: opened.id }), error: false }), pageCsp(n, null));
  });

  const inactiveLink = (lang: Language, n: string, link: PaymentLinkRow) => messagePage(lang, n, say(lang, 'linkInactiveTitle'), link.inactive_message ?? say(lang, 'linkInactiveText'));
  // A payment link (decision 0054): the order it sells, and a button that makes the shopper's own session. Opening
  // the address makes nothing, so that link previews (chat apps, crawlers) make no sessions or PaymentIntents.
  app.get('/buy/:id', async (request, reply) => {
    const link = onPageHost(request) ? await linkForPage(services, (request.params as { id: string }).id) : undefined;
    if (link === undefined) return notFound(request, reply);
    const lang = language(request, undefined);
    const n = nonce();
    const name = await merchantName(services, link.merchant_id);
    if (!link.active) return html(reply, 200, inactiveLink(lang, n, link), pageCsp(n, null));
    const page = await linkPage(services, link, name, lang, n);
    if (page === undefined) return html(reply, 200, messagePage(lang, n, say(lang, 'linkInactiveTitle'), say(lang, 'linkUnavailable')), pageCsp(n, null));
    return html(reply, 200, page, pageCsp(n, null));
  });
  app.post('/buy/:id', async (request, reply) => {
    const link = onPageHost(request) ? await linkForPage(services, (request.params as { id: string }).id) : undefined;
    if (link === undefined) return notFound(request, reply);
    const body = (request.body ?? {}) as { token?: unknown; lang?: unknown };
    const lang = chooseLanguage(typeof body.lang === 'string' ? body.lang : undefined, null, request.headers['accept-language']);
    const n = nonce();
    if (!sameOrigin(request, origins().page) || typeof body.token !== 'string' || !tokenMatches(services, `buy ${link.id}`, body.token)) {
      return html(reply, 403, messagePage(lang, n, say(lang, 'failed'), say(lang, 'failed')), pageCsp(n, null));
    }
    let session: CheckoutSessionRow | undefined;
    try {
      session = await sessionFromLink(services, link, request.ip);
    } catch (error) {
      if (!(error instanceof CofferError)) throw error;
      services.logger.warn({ link: link.id, code: error.code, param: error.details.param }, 'checkout: a payment link\'s order could not be made');
      return html(reply, 409, messagePage(lang, n, say(lang, 'linkInactiveTitle'), say(lang, 'linkUnavailable')), pageCsp(n, null));
    }
    if (session === undefined) return html(reply, 200, inactiveLink(lang, n, link), pageCsp(n, null));
    return reply.redirect(`/pay/${session.id}?lang=${lang}`, 303);
  });

  // An expired session's recovery address (decision 0064): opening it shows the order left and makes nothing (link
  // previews open addresses too); the shopper's "Continue to payment" makes a new session for it.
  app.get('/pay/recover/:token', async (request, reply) => {
    const expired = onPageHost(request) ? await sessionForRecovery(services, (request.params as { token: string }).token) : undefined;
    if (expired === undefined) return notFound(request, reply);
    const lang = language(request, expired);
    const n = nonce();
    const closed = await recoveryClosed(services, expired);
    if (closed !== undefined) return html(reply, 200, messagePage(lang, n, say(lang, 'linkInactiveTitle'), say(lang, closed === 'paid' ? 'recoveryPaid' : 'recoveryClosed')), pageCsp(n, null));
    const page = await recoveryPage(services, expired, await merchantName(services, expired.merchant_id), lang, n);
    if (page === undefined) return html(reply, 200, messagePage(lang, n, say(lang, 'linkInactiveTitle'), say(lang, 'linkUnavailable')), pageCsp(n, null));
    return html(reply, 200, page, pageCsp(n, null));
  });
  app.post('/pay/recover/:token', async (request, reply) => {
    const expired = onPageHost(request) ? await sessionForRecovery(services, (request.params as { token: string }).token) : undefined;
    if (expired === undefined) return notFound(request, reply);
    const body = (request.body ?? {}) as { token?: unknown; lang?: unknown };
    const lang = chooseLanguage(typeof body.lang === 'string' ? body.lang : undefined, expired.locale, request.headers['accept-language']);
    const n = nonce();
    if (!sameOrigin(request, origins().page) || typeof body.token !== 'string' || !tokenMatches(services, `recover ${expired.id}`, body.token)) {
      return html(reply, 403, messagePage(lang, n, say(lang, 'failed'), say(lang, 'failed')), pageCsp(n, null));
    }
    const closed = await recoveryClosed(services, expired);
    if (closed !== undefined) return html(reply, 200, messagePage(lang, n, say(lang, 'linkInactiveTitle'), say(lang, closed === 'paid' ? 'recoveryPaid' : 'recoveryClosed')), pageCsp(n, null));
    let session: CheckoutSessionRow;
    try {
      session = await recoverSession(services, expired, request.ip);
    } catch (error) {
      if (!(error instanceof CofferError)) throw error;
      services.logger.warn({ session: loggedSessionId(expired.id), code: error.code, param: error.details.param }, 'checkout: an order left could not be made again');
      return html(reply, 409, messagePage(lang, n, say(lang, 'linkInactiveTitle'), say(lang, 'linkUnavailable')), pageCsp(n, null));
    }
    return reply.redirect(`/pay/${session.id}?lang=${lang}`, 303);
  });

  // The card frame, on the vault's origin only.
  app.get('/pay/card-frame', async (request, reply) => {
    const id = (request.query as { session?: string }).session ?? '';
    const found = onFrameHost(request) && idPattern.test(id) ? await sessionForPage(services, id) : undefined;
    if (found === undefined || found.status !== 'open') return notFound(request, reply);
    const n = nonce();
    // Framed by the checkout origin, which X-Frame-Options cannot name: the CSP's frame-ancestors does.
    reply.removeHeader('x-frame-options');
    return html(reply, 200, cardFramePage(found, language(request, found), origins(), n), frameCsp(n, origins().page));
  });

  app.post('/pay/card-frame/:id/payment_method', async (request, reply) => {
    const id = (request.params as { id: string }).id;
    const frame = origins().frame;
    const found = onFrameHost(request) && idPattern.test(id) ? await sessionForPage(services, id) : undefined;
    if (found === undefined || found.status !== 'open') return json(reply, 404, { message: 'not found' });
    const lang = language(request, found);
    if (!sameOrigin(request, frame)) return json(reply, 403, { message: say(lang, 'failed') });
    const body = (request.body ?? {}) as { number?: unknown; exp_month?: unknown; exp_year?: unknown; cvc?: unknown };
    if (typeof body.number !== 'string' || typeof body.exp_month !== 'number' || typeof body.exp_year !== 'number' || typeof body.cvc !== 'string') {
      return json(reply, 400, { message: say(lang, 'failed') });
    }
    try {
      const method = await createCardPaymentMethod(services, systemContext(found, 'checkout', true, request.ip), {
        type: 'card', card: { number: body.number, exp_month: body.exp_month, exp_year: body.exp_year, cvc: body.cvc },
      });
      return json(reply, 200, { id: method.id });
    } catch (error) {
      if (!(error instanceof CofferError)) throw error;
      return json(reply, 400, { message: say(lang, 'invalidCard', { reason: declineReason(lang, error.code, error.details.declineCode) }) });
    }
  });
}
