# The two commands a user needs: `make demo` (the main job) and `make test` (the whole suite).
# Both set themselves up on a fresh machine and can be run again at any time.
SHELL := /bin/bash  # recipes source scripts/env.sh, which needs bash
.PHONY: setup demo test test-e2e lint backend backend-stop drift-check bench record-cassettes

setup:
	bash scripts/setup.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

test-e2e:
	bash scripts/test.sh -m e2e

lint:
	bash scripts/setup.sh >/dev/null && bash scripts/lint.sh

backend:
	bash scripts/backend.sh start

backend-stop:
	bash scripts/backend.sh stop

drift-check:
	bash scripts/setup.sh >/dev/null && . scripts/env.sh && \
	  export VALOHAI_API_TOKEN="$${VALOHAI_API_TOKEN:-$$(cat .local-valohai/token 2>/dev/null)}" && \
	  drift-check --stack local

bench:
	bash scripts/setup.sh >/dev/null && . scripts/env.sh && for b in sweep_overhead nochange_preview state_shape backend_load train_throughput; do python bench/$$b.py || exit 1; done

record-cassettes:
	bash scripts/test.sh tests/providers --record-mode=rewrite
