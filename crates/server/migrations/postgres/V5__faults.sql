-- Issue 22: failures injected on purpose (`/simulate/faults`), kept across
-- restarts. `remaining` counts down a --count fault (NULL: no limit);
-- `every` fires on every Nth matching request; `injected` counts firings.
CREATE TABLE faults (
    id BIGSERIAL PRIMARY KEY,
    brand_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    kind TEXT NOT NULL,
    status BIGINT,
    code TEXT,
    delay_ms BIGINT,
    remaining BIGINT,
    every BIGINT,
    injected BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
