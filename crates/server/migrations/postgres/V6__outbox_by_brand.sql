-- Issue 24: the delivery worker claims each brand's due notifications in
-- turn; this index gives it the brands with pending ones by a skip scan and
-- each brand's earliest due ones by a range, whatever one brand's backlog.
CREATE INDEX outbox_pending_by_brand ON outbox (state, brand_id, next_attempt_at);
