-- Three demo users for the blog example (ids 1, 2, 3), so that posts have authors. The
-- password hashes are placeholders: the example signs nobody in (x-user-id names the user).
-- Applied after the audit migrations, so the trail records these inserts too, with no actor,
-- like any write from a migration or psql.

INSERT INTO users (id, name, email, password_hash) VALUES
    (1, 'Ada', 'ada@example.com', 'demo-not-a-real-hash-1'),
    (2, 'Grace', 'grace@example.com', 'demo-not-a-real-hash-2'),
    (3, 'Edsger', 'edsger@example.com', 'demo-not-a-real-hash-3');
SELECT setval(pg_get_serial_sequence('users', 'id'), 3);
