"""Data and loaders: language definitions (languages.py, languages/*.toml) and seccomp profiles (seccomp/*.toml)."""
