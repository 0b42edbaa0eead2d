-- purpose: the schema version and the views digest of a catalog, in one read (every open asks);
-- parameters: $version_key, $digest_key = their setting keys
select key, value from settings where key in ($version_key, $digest_key)
