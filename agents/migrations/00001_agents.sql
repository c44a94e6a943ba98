-- +goose Up
CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    repo       TEXT NOT NULL,
    name       TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX agents_repo ON agents (repo, created_at);
CREATE INDEX agents_state ON agents (state);
CREATE UNIQUE INDEX agents_repo_name ON agents (repo, name);

CREATE TABLE transitions (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL REFERENCES agents (id),
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX transitions_agent ON transitions (agent_id, seq);

-- +goose Down
DROP TABLE transitions;
DROP TABLE agents;
