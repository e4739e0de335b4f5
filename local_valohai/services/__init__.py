"""Work that is not HTTP: commits, input resolution, the execution runner and the pipeline scheduler."""
