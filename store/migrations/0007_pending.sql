-- The commands whose event Kafka has not acknowledged yet: the commands'
-- own outbox. The claim transaction inserts a row; the emitter deletes it
-- once Kafka acknowledges the event; the sweeper re-emits the rows past
-- their lease. The table holds only commands in flight, so the sweeper's
-- look costs the same with a thousand claims kept or a hundred million
-- (before, it searched every claim past its lease for those neither
-- published nor completed). A claim is ACCEPTED while its row exists,
-- PUBLISHED once it is gone, COMPLETED once its outbox row exists.
CREATE TABLE IF NOT EXISTS command_pending (
    operation_id UUID        NOT NULL PRIMARY KEY,
    lease_until  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS command_pending_lease ON command_pending (lease_until);
