import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { after, before } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium; `.ci/run` installs it. */
export const chromiumPath = '/usr/bin/chromium';

/** Why the browser tests cannot run here, or `false`. In CI the browser must be there, so a missing one fails. */
export function browserMissing(): string | false {
  if (fs.existsSync(chromiumPath)) return false;
  if (process.env.CI === 'true') throw new Error(`${chromiumPath} is missing: .ci/run must install the chromium package`);
  return 'chromium is not installed (apt-get install chromium)';
}

/**
 * Headless chromium that trusts one certificate by its public key (Coffer's self-signed one), as if a CA had
 * issued it: WebAuthn refuses pages served with certificate errors, so ignoring errors would not do.
 */
export async function launchTrusting(certificatePem: string): Promise<Browser> {
  const spki = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' });
  const pin = createHash('sha256').update(spki).digest('base64');
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run',
      `--ignore-certificate-errors-spki-list=${pin}`,
    ],
  });
}

/**
 * A Chromium page for the tests of one `describe`: launched before them (trusting the certificate the server's home
 * holds once it has started), closed after. `page()` is the page, for the tests to drive.
 */
export function browserPage(certificateFile: () => string | null | undefined, viewport = { width: 1280, height: 1600 }): { page: () => Page } {
  let browser: Browser | undefined;
  let page: Page | undefined;
  before(async () => {
    browser = await launchTrusting(fs.readFileSync(certificateFile() ?? '', 'utf8'));
    page = await (await browser.newContext({ locale: 'en-US', viewport })).newPage();
  });
  after(async () => {
    await browser?.close();
  });
  return {
    page: () => {
      if (page === undefined) throw new Error('the browser page is opened before the tests run');
      return page;
    },
  };
}

/**
 * A screenshot of the whole page. A cross-origin frame (the card frame) below the fold is left blank by a full-page
 * capture, so the window is made as tall as the page for the shot instead.
 */
export async function wholePageScreenshot(page: Page, file: string): Promise<void> {
  const viewport = page.viewportSize();
  const height = await page.evaluate('document.documentElement.scrollHeight') as number;
  if (viewport !== null) await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, Math.ceil(height)) });
  await page.screenshot({ path: file });
  if (viewport !== null) await page.setViewportSize(viewport);
}

/**
 * Clicks and waits for the page to move on to `url`. If it does not, the failure says what the page's last
 * confirmation answered and what the page shows, rather than only that the wait ran out.
 */
export async function clickThrough(page: Page, selector: string, url: RegExp): Promise<void> {
  let answered = 'no confirmation was posted';
  const watch = (response: { url(): string; status(): number; text(): Promise<string> }) => {
    if (!/\/confirm$/.test(new URL(response.url()).pathname)) return;
    answered = `the confirmation answered ${response.status()} (its body could not be read)`;
    void response.text().then((body) => { answered = `the confirmation answered ${response.status()} ${body.slice(0, 500)}`; }, () => undefined);
  };
  page.on('response', watch);
  try {
    await Promise.all([page.waitForURL(url), page.click(selector)]);
  } catch (error) {
    const shown = await page.evaluate(`[document.location.pathname, document.querySelector('#error')?.textContent ?? '', document.querySelector('#status')?.textContent ?? ''].join(' | ')`).catch(() => 'unreadable');
    throw new Error(`the page did not move on to ${url}: ${answered}; the page shows ${String(shown)}`, { cause: error });
  } finally {
    page.off('response', watch);
  }
}

/**
 * Types the shopper's email where the page asks for it (a session the merchant gave no email), unless one is typed
 * already.
 */
export async function fillEmail(page: Page, email = 'shopper@example.com'): Promise<void> {
  const field = page.locator('#email');
  if (await field.count() > 0 && await field.inputValue() === '') await field.fill(email);
}

/**
 * Types a test card into the hosted page's card frame (4242…, which pays, unless another number is given), and the
 * shopper's email where the page asks for it.
 */
export async function fillCard(page: Page, number = '4242 4242 4242 4242'): Promise<void> {
  await fillEmail(page);
  const frame = page.frameLocator('#card-frame');
  await frame.locator('#number').fill(number);
  await frame.locator('#expiry').fill('12 / 34');
  await frame.locator('#cvc').fill('123');
}

/**
 * A confirmation posted from the hosted page itself (its origin and CSRF token), as its script would send it but
 * with `extra` in place of what the page holds: how the tests play a forged or stale page. By default a card
 * payment with a made-up PaymentMethod id, for the amount the page shows.
 */
export async function confirmFromPage(page: Page, sessionId: string, extra: Record<string, unknown>): Promise<{ status: number; body: { state: string; field?: string; message?: string; redirect?: string } }> {
  return page.evaluate(`(async () => {
    const config = JSON.parse(document.getElementById('checkout-config').textContent);
    const response = await fetch('/pay/${sessionId}/confirm', { method: 'POST', headers: { 'content-type': 'application/json', 'x-coffer-csrf': config.csrf },
      body: JSON.stringify({ method: 'card', payment_method: 'pm_000000000000000000000000', amount: config.amount, currency: config.currency, details: { email: 'shopper@example.com' }, ...${JSON.stringify(extra)} }) });
    return { status: response.status, body: await response.json() };
  })()`);
}
