"""Pure domain logic: models, errors, tokens, IP ranges, masking, clock. No Redis, no HTTP."""
