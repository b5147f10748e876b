# yiqian (医签) — developer entry points. `make run` and `make test` work from a clean clone
# on Debian 12 + Node 20 as root: missing Debian packages are installed, then npm ci.
SHELL := /bin/bash
DATA ?= var
NODE_ENV_BUILD := npm_config_nodedir=/usr
CLI := node dist/appliance/src/cli/main.js

.PHONY: all deps build native typecheck lint test run bench clean

all: build

# Debian packages (idempotent, quiet when present) and node_modules when the lock changed.
# `npm install` with the committed lock, not `npm ci`: the registry this project reaches lacks
# some of msgpackr-extract's optional other-platform binaries, so npm writes a lock that
# `npm ci` calls out of sync; `npm install` installs exactly the locked tree (checked: the
# lock is left unchanged) and builds our native addons from binding.gyp.
deps: node_modules/.yiqian-stamp
	@bash ops/dev/ensure-packages.sh

node_modules/.yiqian-stamp: package.json package-lock.json
	@bash ops/dev/ensure-packages.sh
	$(NODE_ENV_BUILD) npm install --no-audit --no-fund --loglevel=error
	@touch $@

# The native addons are built by npm ci; rebuild them when their C sources change.
native: build/Release/yiqian_sm2.node build/Release/yiqian_hsm_tls.node build/Release/yiqian_pkcs11_sign.node
build/Release/%.node: binding.gyp appliance/native/sm2.c appliance/native/sm2p256-verify.c appliance/native/sm2p256-verify.h appliance/native/pool-thread.h firmware-bridge/pkcs11/native/hsm-tls-engine.c firmware-bridge/pkcs11/native/sign-async.c | node_modules/.yiqian-stamp
	$(NODE_ENV_BUILD) npx node-gyp rebuild --loglevel=error

build: deps native
	npx tsc -p tsconfig.json
	@chmod +x dist/appliance/src/cli/main.js

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

lint: deps
	npx eslint .

# Initialises ./var on first use (SoftHSM2 token, device keys, TLS certificate), then serves.
run: build
	@$(CLI) init --data $(DATA)
	@exec $(CLI) serve --data $(DATA)

test: build typecheck lint
	@bash test/run-suite.sh

bench: build
	node dist/bench/run.js

clean:
	rm -rf dist build
