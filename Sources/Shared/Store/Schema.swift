/// The schema of the whole system. Every table is STRICT (https://www.sqlite.org/stricttables.html),
/// so a wrongly typed write fails loudly instead of storing text in an integer column.
/// Times are integer microseconds since the Unix epoch, in columns named *_at.
enum TaskStatusList {
    static let valuesRows = TaskStatus.allCases.map { "('\($0.rawValue)')" }.joined(separator: ", ")
}

enum Schema {
    static let taskStatuses = "'queued','claimed','dispatched','running','succeeded','failed','canceled','dead','needs_review'"

    static let v1 = Migration(version: 1, name: "initial schema", sql: """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    CREATE TABLE tasks (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        title              TEXT NOT NULL,
        prompt             TEXT NOT NULL,
        lane               TEXT NOT NULL DEFAULT 'default',
        priority           INTEGER NOT NULL DEFAULT 0,
        capabilities       TEXT NOT NULL DEFAULT '[]',      -- JSON array: required capabilities
        profile            TEXT,                            -- requested, then chosen at claim
        status             TEXT NOT NULL DEFAULT 'queued' CHECK (status IN (\(taskStatuses))),
        attempt            INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
        max_attempts       INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
        not_before         INTEGER NOT NULL DEFAULT 0,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        claimed_at         INTEGER,
        dispatched_at      INTEGER,
        started_at         INTEGER,
        finished_at        INTEGER,
        last_event_at      INTEGER,
        agent_id           INTEGER,
        cost_usd           REAL NOT NULL DEFAULT 0,
        input_tokens       INTEGER NOT NULL DEFAULT 0,
        output_tokens      INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        result_summary     TEXT,
        error              TEXT,
        blocked_reason     TEXT,                            -- why the scheduler holds it (parked)
        idempotency_key    TEXT UNIQUE,
        request_hash       TEXT,
        requested_by       TEXT NOT NULL,
        cancel_requested   INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
        budget_usd         REAL CHECK (budget_usd IS NULL OR budget_usd >= 0)
    ) STRICT;
    -- The scheduler's candidates: queued, by priority then age; not_before is in the index so the
    -- walk in priority order skips tasks waiting for a retry without reading their rows.
    CREATE INDEX tasks_ready ON tasks (priority DESC, id, not_before) WHERE status = 'queued';
    -- When the next retry is due, and how many tasks are parked: answered from small indexes.
    CREATE INDEX tasks_retry_due ON tasks (not_before) WHERE status = 'queued' AND not_before > 0;
    CREATE INDEX tasks_parked ON tasks (id) WHERE status = 'queued' AND blocked_reason IS NOT NULL;
    -- Lane occupancy and the dashboard's per-status views.
    CREATE INDEX tasks_active_lane ON tasks (lane) WHERE status IN ('claimed', 'dispatched', 'running');
    CREATE INDEX tasks_status ON tasks (status, id);
    CREATE INDEX tasks_lane ON tasks (lane, id);
    CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;

    -- Counts per status, kept by triggers, so status and metrics answer in O(1) at any queue size.
    CREATE TABLE task_counts (
        status TEXT PRIMARY KEY CHECK (status IN (\(taskStatuses))),
        n      INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    INSERT INTO task_counts (status) VALUES \(TaskStatusList.valuesRows);
    CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks
        BEGIN UPDATE task_counts SET n = n + 1 WHERE status = new.status; END;
    CREATE TRIGGER task_counts_update AFTER UPDATE OF status ON tasks WHEN old.status != new.status
        BEGIN
            UPDATE task_counts SET n = n - 1 WHERE status = old.status;
            UPDATE task_counts SET n = n + 1 WHERE status = new.status;
        END;
    CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks
        BEGIN UPDATE task_counts SET n = n - 1 WHERE status = old.status; END;

    -- Spend per UTC day, kept by a trigger on tasks.cost_usd (which only ever grows).
    CREATE TABLE daily_spend (
        day      TEXT PRIMARY KEY,
        cost_usd REAL NOT NULL
    ) STRICT;
    CREATE TRIGGER daily_spend_update AFTER UPDATE OF cost_usd ON tasks WHEN new.cost_usd > old.cost_usd
        BEGIN
            INSERT INTO daily_spend (day, cost_usd) VALUES (date('now'), new.cost_usd - old.cost_usd)
            ON CONFLICT (day) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd;
        END;

    -- Dispatch latency (from a task becoming due to its dispatch), a cumulative histogram kept
    -- by a trigger, for /metrics.
    CREATE TABLE dispatch_latency (
        le    REAL PRIMARY KEY,
        count INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    INSERT INTO dispatch_latency (le) VALUES (0.001), (0.002), (0.005), (0.01), (0.025), (0.05), (0.1), (0.25), (0.5),
        (1), (2.5), (5), (10), (30), (60), (300);
    CREATE TABLE dispatch_latency_totals (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        count       INTEGER NOT NULL,
        sum_seconds REAL NOT NULL
    ) STRICT;
    INSERT INTO dispatch_latency_totals (id, count, sum_seconds) VALUES (1, 0, 0);
    CREATE TRIGGER dispatch_latency_record AFTER UPDATE OF dispatched_at ON tasks
        WHEN new.dispatched_at IS NOT NULL AND old.dispatched_at IS NULL
        BEGIN
            UPDATE dispatch_latency SET count = count + 1
                WHERE le >= (new.dispatched_at - max(new.created_at, new.not_before)) / 1e6;
            UPDATE dispatch_latency_totals SET count = count + 1,
                sum_seconds = sum_seconds + (new.dispatched_at - max(new.created_at, new.not_before)) / 1e6 WHERE id = 1;
        END;

    -- Append-only history of every task: the evidence behind every state.
    CREATE TABLE task_events (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id  INTEGER NOT NULL REFERENCES tasks (id),
        attempt  INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        payload  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
        source   TEXT NOT NULL,
        at       INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX task_events_task ON task_events (task_id, id);
    CREATE TRIGGER task_events_no_update BEFORE UPDATE ON task_events
        BEGIN SELECT RAISE(ABORT, 'task_events is append-only'); END;
    CREATE TRIGGER task_events_no_delete BEFORE DELETE ON task_events
        BEGIN SELECT RAISE(ABORT, 'task_events is append-only'); END;

    CREATE TABLE agents (
        id                     INTEGER PRIMARY KEY AUTOINCREMENT,
        profile                TEXT NOT NULL,
        mode                   TEXT NOT NULL CHECK (mode IN ('rpc', 'oneshot')),
        state                  TEXT NOT NULL DEFAULT 'starting'
                               CHECK (state IN ('starting', 'idle', 'busy', 'stopping', 'exited', 'lost', 'failed')),
        pid                    INTEGER,
        process_start_time     INTEGER,                     -- /proc/PID/stat field 22, clock ticks
        supervisor_incarnation INTEGER,
        task_id                INTEGER,
        task_attempt           INTEGER,
        capabilities           TEXT NOT NULL DEFAULT '[]',
        created_at             INTEGER NOT NULL,
        started_at             INTEGER,
        heartbeat_at           INTEGER,
        exited_at              INTEGER,
        exit_status            INTEGER,
        exit_signal            INTEGER,
        rusage                 TEXT CHECK (rusage IS NULL OR json_valid(rusage)),
        stderr_tail            TEXT NOT NULL DEFAULT '',
        output_lines           INTEGER NOT NULL DEFAULT 0,
        truncated_lines        INTEGER NOT NULL DEFAULT 0,
        dropped_lines          INTEGER NOT NULL DEFAULT 0,
        error                  TEXT
    ) STRICT;
    CREATE INDEX agents_live ON agents (profile, state) WHERE state IN ('starting', 'idle', 'busy', 'stopping');

    -- The supervisor's inbox. Rows are claimed by the supervisor and answered with a result.
    CREATE TABLE agent_commands (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT NOT NULL CHECK (kind IN ('spawn', 'prompt', 'close_stdin', 'signal', 'stop')),
        agent_id     INTEGER REFERENCES agents (id),
        profile      TEXT,
        task_id      INTEGER REFERENCES tasks (id),
        task_attempt INTEGER,
        payload      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
        status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
        result       TEXT,
        requested_by TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        handled_at   INTEGER
    ) STRICT;
    CREATE INDEX agent_commands_pending ON agent_commands (id) WHERE status = 'pending';

    -- What agents said, in commit order: the poller's input stream (resumed from its cursor).
    CREATE TABLE agent_output (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id  INTEGER NOT NULL REFERENCES agents (id),
        task_id   INTEGER,
        attempt   INTEGER,
        kind      TEXT NOT NULL CHECK (kind IN ('spawned', 'line', 'exit', 'spawn_failed', 'lost')),
        line      TEXT,
        truncated INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
        at        INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX agent_output_task ON agent_output (task_id, id);

    CREATE TABLE components (
        name             TEXT PRIMARY KEY,
        pid              INTEGER,
        incarnation      INTEGER NOT NULL DEFAULT 0,
        state            TEXT NOT NULL DEFAULT 'starting'
                         CHECK (state IN ('starting', 'ready', 'stopping', 'stopped', 'failed')),
        supervised_by    TEXT,
        started_at       INTEGER,
        ready_at         INTEGER,
        last_watchdog_at INTEGER,
        restarts         INTEGER NOT NULL DEFAULT 0,
        status_text      TEXT NOT NULL DEFAULT '',
        updated_at       INTEGER NOT NULL
    ) STRICT;

    -- Exactly one row of operator switches.
    CREATE TABLE control (
        id                    INTEGER PRIMARY KEY CHECK (id = 1),
        paused                INTEGER NOT NULL CHECK (paused IN (0, 1)),
        maintenance_mode      INTEGER NOT NULL CHECK (maintenance_mode IN (0, 1)),
        auto_dispatch         INTEGER NOT NULL CHECK (auto_dispatch IN (0, 1)),
        live_dispatch_enabled INTEGER NOT NULL CHECK (live_dispatch_enabled IN (0, 1)),
        updated_by            TEXT NOT NULL,
        reason                TEXT NOT NULL DEFAULT '',
        updated_at            INTEGER NOT NULL
    ) STRICT;
    -- A new database is safe by default, as Enoch's: paused, in maintenance, no automatic or live dispatch.
    INSERT INTO control (id, paused, maintenance_mode, auto_dispatch, live_dispatch_enabled, updated_by, reason, updated_at)
        VALUES (1, 1, 1, 0, 0, 'migration', 'new database', CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER));

    CREATE TABLE lane_limits (
        lane       TEXT PRIMARY KEY,
        max_active INTEGER NOT NULL CHECK (max_active >= 0)
    ) STRICT;

    -- Who did what: dispatch decisions, pause, resume, cancel, retry.
    CREATE TABLE audit_events (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        at             INTEGER NOT NULL,
        actor          TEXT NOT NULL,
        token_identity TEXT,
        action         TEXT NOT NULL,
        task_id        INTEGER,
        detail         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
    ) STRICT;
    CREATE INDEX audit_events_task ON audit_events (task_id) WHERE task_id IS NOT NULL;

    -- Where each daemon resumes after a restart (for example the poller's agent_output position).
    CREATE TABLE cursors (
        name       TEXT PRIMARY KEY,
        position   INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    """)

    /// Cheaper status changes (each costs every index and trigger it touches, four times per task):
    /// - task_counts moves with one statement instead of two;
    /// - the dispatch-latency histogram keeps a count per bucket (one row changes per dispatch;
    ///   /metrics adds them up into Prometheus's cumulative buckets) instead of updating every
    ///   bucket at or above the value;
    /// - tasks_active_lane goes: it was rewritten on every change between active states, and
    ///   tasks_status (status, id) finds the few active tasks as fast.
    static let v2 = Migration(version: 2, name: "leaner status changes", sql: """
    DROP TRIGGER task_counts_update;
    CREATE TRIGGER task_counts_update AFTER UPDATE OF status ON tasks WHEN old.status != new.status
        BEGIN
            UPDATE task_counts SET n = n + iif(status = new.status, 1, -1) WHERE status IN (old.status, new.status);
        END;

    CREATE TABLE dispatch_latency_buckets (
        le    REAL PRIMARY KEY,
        count INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    -- From cumulative to per-bucket counts.
    INSERT INTO dispatch_latency_buckets (le, count)
        SELECT le, count - coalesce((SELECT d2.count FROM dispatch_latency d2 WHERE d2.le < d.le ORDER BY d2.le DESC LIMIT 1), 0)
        FROM dispatch_latency d;
    DROP TRIGGER dispatch_latency_record;
    DROP TABLE dispatch_latency;
    CREATE TRIGGER dispatch_latency_record AFTER UPDATE OF dispatched_at ON tasks
        WHEN new.dispatched_at IS NOT NULL AND old.dispatched_at IS NULL
        BEGIN
            UPDATE dispatch_latency_buckets SET count = count + 1
                WHERE le = (SELECT min(le) FROM dispatch_latency_buckets
                            WHERE le >= (new.dispatched_at - max(new.created_at, new.not_before)) / 1e6);
            UPDATE dispatch_latency_totals SET count = count + 1,
                sum_seconds = sum_seconds + (new.dispatched_at - max(new.created_at, new.not_before)) / 1e6 WHERE id = 1;
        END;

    DROP INDEX tasks_active_lane;
    """)
}

