-- purpose: this connection's value of setting $1 back to the catalog's (see shadow_settings)
-- parameters: $1 = the key
update temp.settings set value = (select value from lake.settings where key = $1) where key = $1
