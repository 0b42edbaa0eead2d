-- purpose: this connection's value of setting $1 (see shadow_settings); parameters: $1 key, $2 value
update temp.settings set value = $2 where key = $1
