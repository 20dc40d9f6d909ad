"""Training the demo model the project ships instead of downloading one."""
