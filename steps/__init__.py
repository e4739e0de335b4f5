"""The ML steps; each file also runs standalone as `python steps/<step>.py`."""
