-- purpose: version 6 — a recording's metadata warnings: what discovery refused in its header
-- (an AudioMoth comment or GUANO offset out of range) while the file itself stayed readable.
-- Frozen history: never edit.
alter table recordings add column warning varchar;
