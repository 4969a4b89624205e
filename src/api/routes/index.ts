import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { registerBalanceRoutes } from './balance.ts';
import { registerChargeRoutes } from './charges.ts';
import { registerEventRoutes } from './events.ts';
import { registerPaymentIntentRoutes } from './payment-intents.ts';
import { registerRefundRoutes } from './refunds.ts';
import { registerDisputeRoutes } from './disputes.ts';
import { registerCustomerRoutes } from './customers.ts';
import { registerPaymentMethodRoutes } from './payment-methods.ts';
import { registerSetupIntentRoutes } from './setup-intents.ts';
import { registerWebhookEndpointRoutes } from './webhook-endpoints.ts';
import { registerRiskLimitRoutes } from './risk-limits.ts';
import { registerReviewRoutes } from './reviews.ts';
import { registerProductRoutes } from './products.ts';
import { registerShippingRateRoutes } from './shipping-rates.ts';
import { registerCouponRoutes } from './coupons.ts';
import { registerPaymentLinkRoutes } from './payment-links.ts';
import { registerCheckoutSessionRoutes, registerSupportCaseRoutes } from './checkout-sessions.ts';

/** The merchant API under /v1, Stripe-compatible. */
export function registerMerchantRoutes(app: FastifyInstance, services: Services): void {
  registerPaymentIntentRoutes(app, services);
  registerChargeRoutes(app, services);
  registerRefundRoutes(app, services);
  registerDisputeRoutes(app, services);
  registerCustomerRoutes(app, services);
  registerPaymentMethodRoutes(app, services);
  registerSetupIntentRoutes(app, services);
  registerBalanceRoutes(app, services);
  registerEventRoutes(app, services);
  registerWebhookEndpointRoutes(app, services);
  registerRiskLimitRoutes(app, services);
  registerReviewRoutes(app, services);
  registerProductRoutes(app, services);
  registerShippingRateRoutes(app, services);
  registerCouponRoutes(app, services);
  registerPaymentLinkRoutes(app, services);
  registerCheckoutSessionRoutes(app, services);
  registerSupportCaseRoutes(app, services);
}
