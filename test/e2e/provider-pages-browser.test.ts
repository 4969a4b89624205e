import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type Stripe from 'stripe';
import { deliverSandboxNotifications } from '../../src/jobs/deliver-sandbox-notifications.ts';
import { browserMissing, launchTrusting } from '../support/browser.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

// Goal: in a real browser (headless chromium), a shopper completes a 3-D Secure challenge on the access control
// server's page, pays on Alipay's cashier and on WeChat Pay's scan page, and lands back on the merchant's page;
// each page runs under its own strict CSP (no script) and the payment succeeds exactly as the API says.
describe('provider pages in a browser: 3-D Secure, Alipay, WeChat Pay', { concurrency: false, skip: browserMissing() }, () => {
  let server: TestServer;
  let stripe: Stripe;
  let browser: Browser;
  let page: Page;
  let merchant: http.Server;
  let merchantUrl: string;
  const violations: string[] = [];
  // Screenshots for a person to look at, when asked for (COFFER_TEST_SCREENSHOTS=<dir>); never part of the verdict.
  const shots = process.env.COFFER_TEST_SCREENSHOTS;
  const screenshot = async (name: string) => {
    if (shots !== undefined) await page.screenshot({ path: path.join(shots, name) });
  };

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
    // The merchant's own site, where shoppers come back to.
    merchant = http.createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end('<p>Thank you</p>'));
    await new Promise<void>((resolve) => merchant.listen(0, '127.0.0.1', resolve));
    const address = merchant.address();
    merchantUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/done`;
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    page = await (await browser.newContext()).newPage();
    page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) violations.push(message.text()); });
  });
  after(async () => {
    await browser?.close();
    await new Promise((resolve) => merchant.close(resolve));
    await server.close();
  });

  test('3-D Secure challenge: the shopper types the one-time code and returns to the merchant, paid', async () => {
    const intent = await stripe.paymentIntents.create({
      amount: 5000, currency: 'eur', payment_method: 'pm_card_authenticationRequired', confirm: true, return_url: merchantUrl,
    });
    assert.equal(intent.status, 'requires_action');
    await page.goto(intent.next_action?.redirect_to_url?.url ?? '');
    await screenshot('acs.png');
    const code = (await page.locator('.code').textContent())?.trim() ?? '';
    assert.match(code, /^\d{6}$/);
    await page.fill('input[name=code]', code);
    await Promise.all([page.waitForURL((url) => url.href.startsWith(merchantUrl)), page.click('button:has-text("Complete")')]);
    const landed = new URL(page.url());
    assert.equal(landed.searchParams.get('payment_intent'), intent.id);
    assert.equal(landed.searchParams.get('redirect_status'), 'succeeded');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'succeeded');
  });

  test('Alipay: the shopper pays on the cashier and is sent back; the notification completes the payment', async () => {
    const intent = await stripe.paymentIntents.create({
      amount: 8800, currency: 'cny', allowed_payment_method_types: ['alipay'], confirm: true,
      payment_method_data: { type: 'alipay' }, return_url: merchantUrl,
    });
    await page.goto(intent.next_action?.alipay_handle_redirect?.url ?? '');
    assert.match(await page.content(), /88\.00/);
    await screenshot('alipay.png');
    await Promise.all([page.waitForURL((url) => url.href.startsWith(merchantUrl)), page.click('button[value=pay]')]);
    await deliverSandboxNotifications(server.coffer.services);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'succeeded');
  });

  test('WeChat Pay: the QR code Coffer drew shows; the shopper scans and pays on the scan page', async () => {
    const intent = await stripe.paymentIntents.create({
      amount: 1999, currency: 'cny', allowed_payment_method_types: ['wechat_pay'], confirm: true,
      payment_method_data: { type: 'wechat_pay' }, payment_method_options: { wechat_pay: { client: 'web' } },
    });
    const qr = intent.next_action?.wechat_pay_display_qr_code;
    assert.ok(qr !== undefined);
    // The PNG data URL renders as an image in the browser.
    await page.setContent(`<img id="qr" src="${qr.image_data_url}">`);
    const size = await page.locator('#qr').evaluate((image) => { const img = image as unknown as { naturalWidth: number; naturalHeight: number }; return [img.naturalWidth, img.naturalHeight]; });
    assert.ok((size[0] ?? 0) > 100 && size[0] === size[1], `a square QR image, got ${String(size)}`);
    await page.goto(qr.data);
    if (await page.locator('button[value=scan]').count() > 0) await page.click('button[value=scan]');
    await screenshot('wechat.png');
    await page.click('button[value=pay]');
    await page.waitForLoadState();
    await deliverSandboxNotifications(server.coffer.services);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'succeeded');
    assert.deepEqual(violations, [], 'no page broke its Content-Security-Policy');
  });
});
