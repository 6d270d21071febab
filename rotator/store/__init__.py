"""All Redis/Valkey I/O. Key names live in keys.py, Lua scripts in scripts/lua/."""
