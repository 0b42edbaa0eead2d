-- purpose: this connection's value of setting $key back to the catalog's (see shadow_settings)
-- parameters: $key = the key
update temp.settings set value = (select value from lake.settings where key = $key) where key = $key
