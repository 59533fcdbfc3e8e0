"""Named model variants, one folder each (config.json, preprocessor_config.json, tokenizer files)."""
