-- Issue 24: every index on the outbox is rewritten when a claim leases a
-- notification and again when its attempt is recorded. These two had no
-- reader left: the claim reads `outbox_pending_by_brand` (state, brand,
-- due time), which also answers the console's count by state, since it
-- begins with the state. Fewer index pages written per delivery.
DROP INDEX outbox_due;
DROP INDEX outbox_by_state;
