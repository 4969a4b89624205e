import type { DiscountTerms } from '../../src/checkout/discount-math.ts';

/** Messages between the checkout page and the card frame (two origins), and the page's server answers. */
export interface TokenizeRequest {
  type: 'coffer:tokenize' | 'coffer:ping';
}

export type FrameMessage =
  | { type: 'coffer:ready' }
  | { type: 'coffer:card'; paymentMethod: string }
  | { type: 'coffer:card-error'; message: string };

/** What the server says to do after a confirmation or a status check. */
export type PageStep =
  | { state: 'complete'; redirect: string }
  | { state: 'redirect'; redirect: string }
  | { state: 'qr'; qr: string }
  | { state: 'waiting' }
  | { state: 'open'; message?: string }
  | { state: 'expired'; redirect: string }
  | { state: 'error'; message: string; field?: string }
  | { state: 'step_up' }
  | { state: 'code_sent'; message: string }
  | { state: 'verified' }
  | { state: 'passkey'; options: unknown }
  | { state: 'jsapi'; parameters: Record<string, string> }
  | { state: 'registered' };

export interface PageConfig {
  session: string;
  csrf: string;
  frameOrigin: string | null;
  amount: string;
  currency: string;
  /** Test mode: WeChat's payment sheet is played by the sandbox's JSAPI page when there is no WeixinJSBridge. */
  sandbox: boolean;
  strings: { processing: string; waiting: string; failed: string; passkeyFailed: string; wechatNotCompleted: string };
  /**
   * What the page recomputes the order with when the shopper changes a choice (src/checkout/order-choices.ts): each
   * item's unit amount, quantity and bounds (adjustable ones), the shipping rates offered, and the words that show it.
   */
  order: {
    locale: string;
    exponent: number;
    items: Array<{ unit: number; quantity: number; minimum?: number; maximum?: number; optional?: true; product?: string }>;
    shipping?: Array<{ rate: string; amount: number; line: string }>;
    /** The session's discount, recomputed with the order (src/checkout/discount-math.ts). */
    discount?: { terms: DiscountTerms; step: number };
    words: { pay: string; free: string; empty: string };
  };
}
