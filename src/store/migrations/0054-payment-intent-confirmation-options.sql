-- The options a PaymentIntent's confirmation applies, kept with the PaymentIntent as Stripe keeps them when they are
-- given on create, update or confirm (decision 0044): the card's request_three_d_secure, and WeChat Pay's client
-- (Stripe's `web`, Coffer's `mobile_web` and `jsapi`) with the shopper's openid that `jsapi` needs. One column per
-- option, as 0053's, so that each value is checked here and read with the row; null means not given, which the
-- confirmation takes as `automatic` and a QR code. PaymentIntents made before these columns had none kept (the
-- parameters were refused without confirm=true), so null is their truth.
ALTER TABLE payment_intents ADD COLUMN card_request_three_d_secure text
  CHECK (card_request_three_d_secure IN ('automatic', 'any', 'challenge'));
ALTER TABLE payment_intents ADD COLUMN wechat_pay_client text CHECK (wechat_pay_client IN ('web', 'mobile_web', 'jsapi'));
ALTER TABLE payment_intents ADD COLUMN wechat_pay_openid text CHECK (char_length(wechat_pay_openid) BETWEEN 1 AND 128);
