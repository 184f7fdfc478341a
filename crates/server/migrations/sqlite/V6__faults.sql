-- Issue 22: failures injected on purpose (`/simulate/faults`), kept across
-- restarts. `remaining` counts down a --count fault (NULL: no limit);
-- `every` fires on every Nth matching request; `injected` counts firings.
CREATE TABLE faults (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    kind TEXT NOT NULL,
    status INTEGER,
    code TEXT,
    delay_ms INTEGER,
    remaining INTEGER,
    every INTEGER,
    injected INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
