import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loggedUrl } from '../../src/platform/logger.ts';

// Goal: request URLs reach the logs without the secrets a caller can put in a query string: client secrets (one
// opens a PaymentIntent's hosted page), return-link signatures, and card data; other parameters stay readable.
test('client secrets, signatures and card data are redacted from logged URLs; other parameters are kept', () => {
  const secret = 'pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH';
  assert.equal(loggedUrl(`/pay/intent?client_secret=${secret}&return_url=https%3A%2F%2Fshop.example`), '/pay/intent?client_secret=[redacted]&return_url=https%3A%2F%2Fshop.example');
  assert.equal(loggedUrl(`/pay/cs_test_x/return?lang=en&payment_intent=pi_1&payment_intent_client_secret=${secret}&redirect_status=succeeded`),
    '/pay/cs_test_x/return?lang=en&payment_intent=pi_1&payment_intent_client_secret=[redacted]&redirect_status=succeeded');
  assert.equal(loggedUrl('/hooks/return/ch_1?sig=abc'), '/hooks/return/ch_1?sig=[redacted]');
  assert.equal(loggedUrl('/v1/tokens?card[cvc]=123'), '/v1/tokens?card[cvc]=[redacted]');
  assert.equal(loggedUrl('/v1/payment_intents?limit=3'), '/v1/payment_intents?limit=3');
  // A return link given to a provider, percent-encoded inside its gateway request: its signature is cut too.
  assert.equal(loggedUrl('/sandbox/alipay/gateway.do?method=alipay.trade.page.pay&return_url=https%3A%2F%2F127.0.0.1%2Fhooks%2Freturn%2Fch_1%3Fsig%3DVzheNJx_a-b%2B%3D%26x%3D1&sign=abc'),
    '/sandbox/alipay/gateway.do?method=alipay.trade.page.pay&return_url=https%3A%2F%2F127.0.0.1%2Fhooks%2Freturn%2Fch_1%3Fsig%3D[redacted]%26x%3D1&sign=[redacted]');
  assert.equal(loggedUrl(`/x?next=https%3A%2F%2Fshop.example%2Fdone%3Fpayment_intent_client_secret%3D${secret}`), '/x?next=https%3A%2F%2Fshop.example%2Fdone%3Fpayment_intent_client_secret%3D[redacted]');
});

// An API key in a URL (a client that put it in the query string, or in the path by mistake) and the personal data
// of searches and filters never reach a log line either.
test('API keys and signing secrets anywhere in a URL, and search queries, emails and phones, are redacted', () => {
  assert.equal(loggedUrl('/v1/balance?key=sk_live_6SKVa1b2C3d4E5f6G7h8L0iI'), '/v1/balance?key=sk_live_[redacted]');
  assert.equal(loggedUrl('/v1/sk_test_abcDEF123456/charges'), '/v1/sk_test_[redacted]/charges');
  assert.equal(loggedUrl('/x?token=rk_test_A1b2C3&other=pk_live_Z9y8&s=whsec_abc%2Bdef'), '/x?token=rk_test_[redacted]&other=pk_live_[redacted]&s=whsec_[redacted]');
  assert.equal(loggedUrl("/v1/customers/search?query=email%3A'ada%40example.com'&limit=3"), '/v1/customers/search?query=[redacted]&limit=3');
  assert.equal(loggedUrl('/v1/customers?email=ada@example.com&limit=2'), '/v1/customers?email=[redacted]&limit=2');
  assert.equal(loggedUrl('/v1/customers?phone=%2B4412345&starting_after=cus_1'), '/v1/customers?phone=[redacted]&starting_after=cus_1');
  assert.equal(loggedUrl('/v1/balance?key=sk%5Flive%5FAbC123'), '/v1/balance?key=sk%5Flive%5F[redacted]', 'percent-encoded underscores too');
  assert.equal(loggedUrl('/sandbox/outbox?format=json&to=shopper%40example.com'), '/sandbox/outbox?format=json&to=[redacted]');
  assert.equal(loggedUrl('/v1/payment_intents/pi_1'), '/v1/payment_intents/pi_1', 'object ids stay');
  // A hosted page's session id opens the page: cut to its first characters, in the page's URLs and in the API's.
  assert.equal(loggedUrl('/pay/cs_test_a1B2c3D4e5F6g7H8i9J0k1L2/status?lang=en'), '/pay/cs_test_a1B2c3…/status?lang=en');
  assert.equal(loggedUrl('/v1/checkout/sessions/cs_live_a1B2c3D4e5F6g7H8i9J0k1L2/expire'), '/v1/checkout/sessions/cs_live_a1B2c3…/expire');
  assert.equal(loggedUrl('/sandbox/wechat-pay/connect/oauth2/authorize?redirect_uri=https%3A%2F%2Fshop%2Fpay%2Fcs_test_a1B2c3D4e5F6g7H8i9J0k1L2%2Fwechat-sign-in'),
    '/sandbox/wechat-pay/connect/oauth2/authorize?redirect_uri=https%3A%2F%2Fshop%2Fpay%2Fcs_test_a1B2c3…%2Fwechat-sign-in', 'percent-encoded in another URL too');
});
