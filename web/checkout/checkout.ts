/**
 * The hosted checkout page's script. It never sees a card number: card fields live in a frame served from the
 * card vault's origin, which turns them into a PaymentMethod id and hands only that id back by postMessage.
 * The page then asks its server to confirm, and follows what the server says (done, go to a provider or a 3-D
 * Secure page, show WeChat's QR code and wait).
 */
import type { FrameMessage, PageConfig, PageStep } from './protocol.ts';
import { discountOf } from '../../src/checkout/discount-math.ts';

const configElement = document.getElementById('checkout-config');
const config = JSON.parse(configElement?.textContent ?? '{}') as PageConfig;
const statusRegion = document.getElementById('status') as HTMLElement;
const errorRegion = document.getElementById('error') as HTMLElement;
const form = document.getElementById('payment-form') as HTMLFormElement;
const payButton = document.getElementById('pay') as HTMLButtonElement;
const frame = document.getElementById('card-frame') as HTMLIFrameElement | null;
const qrBox = document.getElementById('wechat-qr') as HTMLElement;
const qrImage = document.getElementById('wechat-qr-image') as HTMLImageElement;
const stepUp = document.getElementById('step-up') as HTMLElement;
const stepUpPhone = document.getElementById('step-up-phone') as HTMLInputElement;
const stepUpCode = document.getElementById('step-up-code') as HTMLInputElement;
const stepUpSend = document.getElementById('step-up-send') as HTMLButtonElement;
const stepUpNewPassword = document.getElementById('step-up-new-password') as HTMLInputElement;
const stepUpPassword = document.getElementById('step-up-password') as HTMLInputElement;
const savePasskey = document.getElementById('step-up-save-passkey') as HTMLInputElement | null;
let stepping = false;

function deviceId(): string {
  const key = 'coffer-device';
  try {
    let id = localStorage.getItem(key);
    if (id === null) {
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      id = `dev_${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
      localStorage.setItem(key, id);
    }
    return id;
  } catch {
    return '';
  }
}

function show(region: HTMLElement, text: string): void {
  region.textContent = text;
  region.hidden = text === '';
}

function selectedMethod(): string {
  const checked = form.querySelector<HTMLInputElement>('input[name="method"]:checked');
  return checked?.value ?? 'card';
}

/** A saved card the shopper chose to pay with (decision 0063); '' for a new card (the card frame). */
function selectedSavedCard(): string {
  return form.querySelector<HTMLInputElement>('input[name="saved_card"]:checked')?.value ?? '';
}

const newCard = document.getElementById('new-card');
const saveCard = document.getElementById('save-card') as HTMLInputElement | null;
for (const radio of Array.from(form.querySelectorAll<HTMLInputElement>('input[name="saved_card"]'))) {
  radio.addEventListener('change', () => {
    if (newCard !== null) newCard.hidden = selectedSavedCard() !== '';
  });
}

function selectedShippingRate(): string | undefined {
  return form.querySelector<HTMLInputElement>('input[name="shipping_rate"]:checked')?.value;
}

const quantityInputs = Array.from(document.querySelectorAll<HTMLInputElement>('input.qty-input'));
const shippingRadios = Array.from(form.querySelectorAll<HTMLInputElement>('input[name="shipping_rate"]'));
const choosing = quantityInputs.length > 0 || shippingRadios.length > 0;

/** The choices can change only while no payment is under way: the amount being paid is the one shown. */
function allowChoices(allowed: boolean): void {
  for (const input of [...quantityInputs, ...shippingRadios]) input.disabled = !allowed;
}

function money(amount: number): string {
  return new Intl.NumberFormat(config.order.locale, { style: 'currency', currency: config.currency.toUpperCase() }).format(amount / 10 ** config.order.exponent);
}

function setText(id: string, text: string): void {
  const element = document.getElementById(id);
  if (element !== null) element.textContent = text;
}

/** The quantities the page shows, each within its item's bounds (the server refuses any other). */
function quantities(): number[] {
  return config.order.items.map((item, index) => {
    const input = quantityInputs.find((field) => field.dataset.item === String(index));
    // An item the shopper may add: ticked, the quantity it is added with; else none.
    if (input?.type === 'checkbox') return input.checked ? Number(input.value) : 0;
    const value = input === undefined ? Number.NaN : Math.round(Number(input.value));
    if (!Number.isFinite(value) || input?.value.trim() === '') return item.quantity;
    // An optional item may be left out (0); added, it is within its bounds as any item is.
    if (item.optional === true && value <= 0) return 0;
    return Math.min(item.maximum ?? item.quantity, Math.max(item.minimum ?? item.quantity, value));
  });
}

/**
 * A choice changed (a shipping rate, a quantity): each item's amount, the subtotal, shipping and total, and the pay
 * button show what the order now costs, and the amount sent with the payment is that total (the server sets the
 * choices with the confirmation, and refuses to charge another amount than the one shown).
 */
function showOrder(): void {
  let subtotal = 0;
  const amounts = quantities().map((quantity, index) => {
    const amount = (config.order.items[index]?.unit ?? 0) * quantity;
    subtotal += amount;
    setText(`item-amount-${index}`, money(amount));
    return { amount, product: config.order.items[index]?.product };
  });
  const option = config.order.shipping?.find((candidate) => candidate.rate === selectedShippingRate());
  const shipping = option?.amount ?? 0;
  // The discount as the server computes it (the same arithmetic, src/checkout/discount-math.ts).
  const terms = config.order.discount;
  const discount = terms === undefined ? 0 : discountOf(terms.terms, amounts, terms.step).total;
  const total = subtotal - discount + shipping;
  config.amount = String(total);
  setText('subtotal', money(subtotal));
  if (terms !== undefined) setText('discount-amount', `−${money(discount)}`);
  if (option !== undefined) {
    setText('shipping-line', option.line);
    setText('shipping-amount', shipping === 0 ? config.order.words.free : money(shipping));
  }
  setText('total', money(total));
  payButton.dataset.card = config.order.words.pay.replace('{amount}', money(total));
  if (!stepping) payButton.textContent = payButton.dataset[selectedMethod()] ?? payButton.textContent;
}

function showPanel(clearError: boolean): void {
  const method = selectedMethod();
  for (const panel of Array.from(document.querySelectorAll<HTMLElement>('[data-panel]'))) panel.hidden = panel.dataset.panel !== method;
  payButton.textContent = payButton.dataset[method] ?? payButton.textContent;
  // A message the server put on the page (a payment that failed at the provider) stays until the shopper acts.
  if (clearError) show(errorRegion, '');
}

async function post(path: string, body: unknown): Promise<PageStep> {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-coffer-csrf': config.csrf },
    // The amount the shopper sees goes with every post: the server refuses if the payment changed since.
    body: JSON.stringify({ ...(body as Record<string, unknown>), amount: config.amount, currency: config.currency }),
    credentials: 'same-origin',
  });
  return (await response.json()) as PageStep;
}

let polling: number | undefined;

async function poll(): Promise<void> {
  const response = await fetch(`/pay/${config.session}/status`, { credentials: 'same-origin' });
  const step = (await response.json()) as PageStep;
  // WeChat's payment sheet opens on the shopper's tap only, never again from a status check.
  follow(step.state === 'jsapi' ? { state: 'waiting' } : step);
}

interface WeixinJSBridge {
  invoke(name: 'getBrandWCPayRequest', parameters: Record<string, string>, callback: (answer: { err_msg?: string }) => void): void;
}

/**
 * Inside WeChat: its payment sheet, through the bridge WeChat puts in its browser. In test mode without the bridge
 * (a desktop browser saying it is WeChat), the sandbox's JSAPI page plays the sheet and comes back.
 */
function payInWeChat(parameters: Record<string, string>): void {
  const bridge = (window as unknown as { WeixinJSBridge?: WeixinJSBridge }).WeixinJSBridge;
  if (bridge === undefined) {
    if (config.sandbox) {
      const target = new URLSearchParams(parameters);
      target.set('redirect_url', `${window.location.origin}/pay/${config.session}/return`);
      window.location.assign(`/sandbox/wechat-pay/jsapi?${target.toString()}`);
      return;
    }
    document.addEventListener('WeixinJSBridgeReady', () => payInWeChat(parameters), { once: true });
    return;
  }
  bridge.invoke('getBrandWCPayRequest', parameters, (answer) => {
    // "ok" only says the sheet closed after paying: the payment itself is what the server learns from WeChat.
    if (answer.err_msg === 'get_brand_wcpay_request:ok') follow({ state: 'waiting' });
    else follow({ state: 'open', message: config.strings.wechatNotCompleted });
  });
}

function follow(step: PageStep): void {
  switch (step.state) {
    case 'complete':
    case 'redirect':
    case 'expired':
      window.clearInterval(polling);
      window.location.assign(step.redirect);
      return;
    case 'qr':
      qrImage.src = step.qr;
      qrBox.hidden = false;
      show(statusRegion, config.strings.waiting);
      polling ??= window.setInterval(() => void poll().catch(() => undefined), 2000);
      return;
    case 'waiting':
      show(statusRegion, config.strings.waiting);
      polling ??= window.setInterval(() => void poll().catch(() => undefined), 2000);
      return;
    case 'open':
      allowChoices(true);
      payButton.disabled = false;
      show(statusRegion, '');
      if (step.message !== undefined) show(errorRegion, step.message);
      return;
    case 'step_up':
      // Above the shop's amount: the shopper confirms it is them (a code, the payment password or a passkey), then pays.
      stepping = true;
      stepUp.hidden = false;
      showStepPanel();
      payButton.textContent = payButton.dataset.verify ?? payButton.textContent;
      payButton.disabled = false;
      show(statusRegion, '');
      stepUp.querySelector<HTMLInputElement>('input[name="step-method"]:checked')?.focus();
      return;
    case 'code_sent':
      show(errorRegion, '');
      show(statusRegion, step.message);
      stepUpCode.focus();
      return;
    case 'verified':
      stepping = false;
      stepUp.hidden = true;
      void pay();
      return;
    case 'jsapi':
      show(statusRegion, config.strings.waiting);
      payInWeChat(step.parameters);
      return;
    case 'passkey':
    case 'registered':
      return;
    case 'error': {
      if (!stepping) allowChoices(true);
      payButton.disabled = false;
      show(statusRegion, '');
      show(errorRegion, step.message);
      const named = step.field === undefined ? '' : CSS.escape(step.field);
      const field = step.field === undefined ? null : document.querySelector<HTMLElement>(`[data-detail="${named}"], [data-choice="${named}"]`);
      if (field !== null) {
        field.setAttribute('aria-invalid', 'true');
        field.focus();
      } else errorRegion.focus();
      return;
    }
  }
}

let frameReady = false;
window.addEventListener('message', (event: MessageEvent<FrameMessage>) => {
  if (frame !== null && event.origin === config.frameOrigin && event.source === frame.contentWindow && event.data.type === 'coffer:ready') frameReady = true;
});

/** Waits until the card frame's script listens (it says so; asked again every 200 ms), at most 10 seconds. */
async function frameListening(target: Window, origin: string): Promise<void> {
  for (let waited = 0; !frameReady; waited += 200) {
    if (waited >= 10_000) throw new Error(config.strings.failed);
    target.postMessage({ type: 'coffer:ping' }, origin);
    await new Promise((resolve) => window.setTimeout(resolve, 200));
  }
}

/** Asks the card frame for a PaymentMethod; only its id comes back (or an error, within 30 seconds). */
async function tokenizeCard(): Promise<string> {
  const target = frame?.contentWindow ?? null;
  const origin = config.frameOrigin;
  if (target === null || origin === null) throw new Error(config.strings.failed);
  await frameListening(target, origin);
  return new Promise((resolve, reject) => {
    const timer = window.setTimeout(() => {
      window.removeEventListener('message', onMessage);
      reject(new Error(config.strings.failed));
    }, 30_000);
    const onMessage = (event: MessageEvent<FrameMessage>) => {
      if (event.origin !== origin || event.source !== target) return;
      if (event.data.type === 'coffer:card') {
        window.clearTimeout(timer);
        window.removeEventListener('message', onMessage);
        resolve(event.data.paymentMethod);
      } else if (event.data.type === 'coffer:card-error') {
        window.clearTimeout(timer);
        window.removeEventListener('message', onMessage);
        reject(new Error(event.data.message));
      }
    };
    window.addEventListener('message', onMessage);
    target.postMessage({ type: 'coffer:tokenize' }, origin);
  });
}

function stepMethod(): string {
  return stepUp.querySelector<HTMLInputElement>('input[name="step-method"]:checked')?.value ?? 'code';
}

function showStepPanel(): void {
  const method = stepMethod();
  for (const panel of Array.from(stepUp.querySelectorAll<HTMLElement>('[data-step]'))) {
    const name = panel.dataset.step;
    panel.hidden = name === 'identity' ? method === 'passkey' : name !== method;
  }
}

/** A passkey ceremony: options from the server, the authenticator's answer back to it. */
async function passkeyCeremony(optionsPath: string, answerPath: string, register: boolean): Promise<PageStep> {
  const asked = await post(optionsPath, {});
  if (asked.state !== 'passkey') return asked;
  try {
    const credential = register
      ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(asked.options as PublicKeyCredentialCreationOptionsJSON) })
      : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(asked.options as PublicKeyCredentialRequestOptionsJSON) });
    if (!(credential instanceof PublicKeyCredential)) return { state: 'error', message: config.strings.passkeyFailed };
    return await post(answerPath, { credential: credential.toJSON() });
  } catch {
    // The shopper canceled, or the device could not verify them: nothing was sent.
    return { state: 'error', message: config.strings.passkeyFailed };
  }
}

async function confirmStepUp(): Promise<void> {
  payButton.disabled = true;
  const base = `/pay/${config.session}/step-up`;
  try {
    const method = stepMethod();
    if (method === 'passkey') {
      follow(await passkeyCeremony(`${base}/passkey/options`, `${base}/passkey/verify`, false));
    } else if (method === 'password') {
      follow(await post(`${base}/password`, { identity: stepUpPhone.value, password: stepUpPassword.value }));
    } else {
      const step = await post(`${base}/verify`, { code: stepUpCode.value, new_password: stepUpNewPassword.value });
      // Saving a passkey is for next time: if it fails, this payment goes on all the same.
      if (step.state === 'verified' && savePasskey?.checked === true) await passkeyCeremony(`${base}/passkey/register-options`, `${base}/passkey/register`, true);
      follow(step);
    }
  } catch {
    follow({ state: 'error', message: config.strings.failed });
  }
}

for (const radio of Array.from(stepUp.querySelectorAll<HTMLInputElement>('input[name="step-method"]'))) {
  radio.addEventListener('change', () => {
    showStepPanel();
    show(errorRegion, '');
  });
}

stepUpSend.addEventListener('click', () => {
  void post(`/pay/${config.session}/step-up/send`, { destination: stepUpPhone.value }).then(follow, () => follow({ state: 'error', message: config.strings.failed }));
});

async function pay(): Promise<void> {
  if (stepping) {
    await confirmStepUp();
    return;
  }
  // The addresses and phone the session asks for, checked here first so that no card is sent for an order that
  // cannot go on; the server checks them again.
  // A ticked box sends its value (the terms `accepted`, the offers `opt_in`), an unticked one nothing.
  const given = (field: HTMLInputElement | HTMLSelectElement) => (field instanceof HTMLInputElement && field.type === 'checkbox' ? (field.checked ? field.value : '') : field.value);
  const details: Record<string, string> = {};
  for (const field of Array.from(form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('[data-detail]'))) {
    field.removeAttribute('aria-invalid');
    details[field.dataset.detail ?? ''] = given(field);
  }
  const missing = Array.from(form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('[data-detail][required]')).find((field) => given(field).trim() === '');
  if (missing !== undefined) {
    follow({ state: 'error', message: missing.dataset.missing ?? config.strings.failed, field: missing.dataset.detail ?? '' });
    return;
  }
  // An order with nothing left in it cannot be paid: said before any card is sent (the server refuses it too).
  if (quantityInputs.length > 0 && quantities().every((quantity) => quantity === 0)) {
    follow({ state: 'error', message: config.order.words.empty, field: 'quantity.0' });
    return;
  }
  // The server's own check of a phone number (checkout/collected-details.ts), so that no card goes for a number it refuses.
  const phone = form.querySelector<HTMLInputElement>('[data-detail="phone"]');
  if (phone !== null && (!/^\+?[0-9][0-9 ().-]{4,38}$/.test(phone.value.trim()) || phone.value.replace(/\D/g, '').length < 5)) {
    follow({ state: 'error', message: phone.dataset.invalid ?? config.strings.failed, field: 'phone' });
    return;
  }
  payButton.disabled = true;
  allowChoices(false);
  show(errorRegion, '');
  show(statusRegion, config.strings.processing);
  const method = selectedMethod();
  try {
    const body: Record<string, unknown> = { method, device: deviceId(), details };
    const rate = selectedShippingRate();
    if (rate !== undefined) body.shipping_rate = rate;
    if (quantityInputs.length > 0) body.quantities = quantities();
    if (method === 'card') {
      const saved = selectedSavedCard();
      body.payment_method = saved === '' ? await tokenizeCard() : saved;
      if (saved === '' && saveCard !== null) body.save_card = saveCard.checked;
    }
    follow(await post(`/pay/${config.session}/confirm`, body));
  } catch (error) {
    follow({ state: 'error', message: error instanceof Error && error.message !== '' ? error.message : config.strings.failed });
  }
}

/**
 * A promotion code typed (or the one applied removed): the server checks it against the order the page shows (its
 * quantities and shipping rate go with it) and, if it takes it, the page is shown again with the discount. A code it
 * refuses is said under the field, and nothing changes.
 */
const promotionForm = document.getElementById('promotion-form') as HTMLFormElement | null;
const promotionInput = document.getElementById('promotion-code') as HTMLInputElement | null;
const promotionError = document.getElementById('promotion-error') as HTMLElement | null;
async function applyPromotionCode(code: string): Promise<void> {
  const body: Record<string, unknown> = { code };
  const rate = selectedShippingRate();
  if (rate !== undefined) body.shipping_rate = rate;
  if (quantityInputs.length > 0) body.quantities = quantities();
  let step: PageStep;
  try {
    step = await post(`/pay/${config.session}/promotion-code`, body);
  } catch {
    step = { state: 'error', message: config.strings.failed, field: 'promotion_code' };
  }
  if (step.state === 'error' && step.field === 'promotion_code' && promotionError !== null && promotionInput !== null) {
    show(promotionError, step.message);
    promotionInput.setAttribute('aria-invalid', 'true');
    promotionInput.focus();
    return;
  }
  follow(step);
}
promotionForm?.addEventListener('submit', (event) => {
  event.preventDefault();
  if (promotionInput === null || promotionInput.value.trim() === '') return;
  void applyPromotionCode(promotionInput.value.trim());
});
promotionInput?.addEventListener('input', () => {
  promotionInput.removeAttribute('aria-invalid');
  if (promotionError !== null) show(promotionError, '');
});
document.getElementById('promotion-remove')?.addEventListener('click', () => void applyPromotionCode(''));

for (const radio of Array.from(form.querySelectorAll<HTMLInputElement>('input[name="method"]'))) radio.addEventListener('change', () => showPanel(true));
for (const radio of shippingRadios) radio.addEventListener('change', showOrder);
for (const input of quantityInputs) {
  input.addEventListener('input', () => {
    for (const field of quantityInputs) field.removeAttribute('aria-invalid');
    showOrder();
  });
  // Left: the field shows the quantity the order has (within the item's bounds), as the total does.
  input.addEventListener('change', () => {
    if (input.type !== 'checkbox') input.value = String(quantities()[Number(input.dataset.item)] ?? input.value);
    showOrder();
  });
}
// A field marked as missing or refused is unmarked as soon as the shopper changes it.
for (const field of Array.from(form.querySelectorAll<HTMLElement>('[data-detail]'))) {
  field.addEventListener('input', () => field.removeAttribute('aria-invalid'));
  field.addEventListener('change', () => field.removeAttribute('aria-invalid'));
}
form.addEventListener('submit', (event) => {
  event.preventDefault();
  void pay();
});
showPanel(false);
// While a payment is under way (back from a provider, a QR code shown) the choices stay as they were paid.
if (document.body.dataset.waiting === 'true') allowChoices(false);
else if (choosing) showOrder();
payButton.disabled = false;
// Back from a provider with the payment still in progress: keep watching.
if (document.body.dataset.waiting === 'true') void poll().catch(() => undefined);
// Back from WeChat's sign-in: the shopper had chosen WeChat Pay and tapped pay; go on.
if (document.body.dataset.resume === 'wechat_pay') {
  const wechat = form.querySelector<HTMLInputElement>('input[name="method"][value="wechat_pay"]');
  if (wechat !== null) {
    wechat.checked = true;
    showPanel(true);
    void pay();
  }
}
