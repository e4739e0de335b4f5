"""One router per API area, all mounted under /api/v0/."""
