import assert from 'node:assert/strict';
import type Stripe from 'stripe';
import { rawRequest, type RawResponse, type TestServer } from './server.ts';

/** A Checkout Session's page as first served, and a poster that sends what its script would. */
export interface CheckoutPage {
  html: RawResponse;
  /** Posts to the page's `suffix` (`/confirm`, `/step-up/send` …) with its origin and token, and the amount it shows. */
  post: (suffix: string, body: Record<string, unknown>) => Promise<RawResponse>;
}

/** Opens a session's page, as a shopper's browser does, without a browser. */
export async function openCheckoutPage(server: TestServer, session: Stripe.Checkout.Session, defaults: Record<string, unknown> = {}): Promise<CheckoutPage> {
  const html = await rawRequest(server, 'GET', `/pay/${session.id}`);
  const csrf = /"csrf":"([^"]+)"/.exec(html.body)?.[1] ?? '';
  assert.notEqual(csrf, '', 'the page carries its token');
  const origin = new URL(session.url ?? '').origin;
  // The page's script sends the amount it shows with every post.
  const shown = { amount: String(session.amount_total), currency: session.currency };
  return {
    html,
    post: (suffix, body) => rawRequest(server, 'POST', `/pay/${session.id}${suffix}`, {
      body: JSON.stringify({ ...shown, ...defaults, ...body }), contentType: 'application/json', headers: { origin, 'x-coffer-csrf': csrf },
    }),
  };
}
