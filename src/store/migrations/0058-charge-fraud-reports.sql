-- The merchant's own report on a charge (Stripe's fraud_details[user_report]): 'fraudulent' or 'safe', null when
-- none was made. The report is also a risk label (source 'report'), learned from as reviews and disputes are.
ALTER TABLE charges ADD COLUMN fraud_user_report text CHECK (fraud_user_report IN ('fraudulent', 'safe'));
ALTER TABLE risk_labels DROP CONSTRAINT risk_labels_source_check;
ALTER TABLE risk_labels ADD CONSTRAINT risk_labels_source_check CHECK (source IN ('review', 'dispute', 'report'));
