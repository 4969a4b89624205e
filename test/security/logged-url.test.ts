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
});
