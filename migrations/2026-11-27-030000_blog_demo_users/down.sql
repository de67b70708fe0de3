DELETE FROM users WHERE id IN (1, 2, 3);
