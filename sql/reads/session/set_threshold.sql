-- purpose: this connection's value of setting $key (see shadow_settings); parameters: $key, $value
update temp.settings set value = $value where key = $key
