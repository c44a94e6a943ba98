-- +goose Up
CREATE TABLE port_leases (
    start    INTEGER PRIMARY KEY,
    count    INTEGER NOT NULL,
    agent_id TEXT NOT NULL UNIQUE REFERENCES agents (id),
    at       TEXT NOT NULL
);

-- +goose Down
DROP TABLE port_leases;
