"""Result files: the versioned schema, atomic storage, and migrations of older versions."""
